"""The benchmark's ceiling: the engagement job's SQL without Kafka, JSON or JDBC.

``jobs/engagement.build`` over the benchmark's observations generated inside the JVM (Flink's
datagen numbers them; :meth:`Shape.sql_columns` turns each number into its observation, event
time and watermark included), written to blackhole sinks with the real job's columns and keys.
The generator is bounded: the benchmark times its source from running to finished, which
backpressure ties to the processing of all but the records in flight; the watermark's final
jump (every window of the data firing at once) comes after and is not timed.

Submitted by ``bench/pipeline.py`` with ``flink run -d -py bench/ceiling_job.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pyflink.table import EnvironmentSettings, TableEnvironment

from creatorpulse.bench.dataset import Shape
from creatorpulse.jobs.engagement import (
    BUCKET_COLUMNS,
    DERIVED_COLUMNS,
    OBSERVATION_SINK_COLUMNS,
    RAW_LOG_COLUMNS,
    ROLLING_COLUMNS,
    build,
    configure,
)
from creatorpulse.jobs.tables import sql_interval
from creatorpulse.settings import Settings

JOB_NAME = "creatorpulse-bench-ceiling"
SINKS = {
    "bh_raw_log": (RAW_LOG_COLUMNS, ["event_id", "observed_at"]),
    "bh_late": (OBSERVATION_SINK_COLUMNS, []),
    "bh_buckets": (BUCKET_COLUMNS, [c for c, _ in BUCKET_COLUMNS[:4]]),
    "bh_rolling": (ROLLING_COLUMNS, [c for c, _ in ROLLING_COLUMNS[:5]]),
    "bh_aggregates": (ROLLING_COLUMNS, []),
    "bh_derived": (DERIVED_COLUMNS, ["influencer_id", "platform", "window_name", "window_end",
                                     "figure", "formula"]),
}


def generator_ddl(shape: Shape, count: int, settings: Settings) -> str:
    columns = ",\n  ".join(f"`{name}` AS {expr}" for name, expr in shape.sql_columns().items())
    delay = sql_interval(settings.watermark_delay)
    return f"""
        CREATE TABLE cp_generated (
          n BIGINT,
          {columns},
          proc AS PROCTIME(),
          WATERMARK FOR observed_at AS observed_at - {delay}
        ) WITH (
          'connector' = 'datagen',
          'fields.n.kind' = 'sequence',
          'fields.n.start' = '0',
          'fields.n.end' = '{count - 1}',
          'rows-per-second' = '1000000000',
          'scan.parallelism' = '1'
        )"""


def sink_ddl(name: str, columns: Sequence[tuple[str, str]], key: Sequence[str]) -> str:
    cols = ", ".join(f"`{c}` {t}" for c, t in columns)
    if key:
        cols += f", PRIMARY KEY ({', '.join(f'`{c}`' for c in key)}) NOT ENFORCED"
    return f"CREATE TABLE {name} ({cols}) WITH ('connector' = 'blackhole')"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/ceiling_job.py", description=__doc__)
    parser.add_argument("--observations", type=int, required=True)
    parser.add_argument("--accounts", type=int, default=Shape().accounts)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a Flink option for this job only, to try a setting out")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings = Settings.from_env(os.environ)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    configure(t_env, settings, JOB_NAME)
    # A finished source must say so at once, not at the next checkpoint: its end is the timing.
    t_env.get_config().set("execution.checkpointing.checkpoints-after-tasks-finish", "false")
    for option in args.set:
        key, _, value = option.partition("=")
        t_env.get_config().set(key, value)
    t_env.execute_sql(generator_ddl(Shape(accounts=args.accounts), args.observations, settings))
    for name, (columns, key) in SINKS.items():
        t_env.execute_sql(sink_ddl(name, columns, key))
    observed = ", ".join(f"`{c}`" for c, _ in OBSERVATION_SINK_COLUMNS)
    generated = t_env.sql_query(f"SELECT {observed}, proc FROM cp_generated")  # noqa: S608
    tables = build(t_env, generated, settings.windows)
    statements = t_env.create_statement_set()
    statements.add_insert("bh_raw_log", tables.raw_log)
    statements.add_insert("bh_late", tables.late)
    statements.add_insert("bh_buckets", tables.buckets)
    statements.add_insert("bh_rolling", tables.rolling)
    statements.add_insert("bh_aggregates", tables.rolling)
    statements.add_insert("bh_derived", tables.derived)
    statements.execute()


if __name__ == "__main__":
    main()
