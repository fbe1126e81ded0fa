"""Smoke job: proves the riskiest wiring, Kafka -> watermark -> window -> JDBC upsert.

Reads observations from a Kafka topic with an event-time watermark, counts them per platform in
one-minute tumbling windows, and upserts the counts into a PostgreSQL table. It is throwaway
proof of the stack, to be replaced by the engagement job; run it the Flink way:

    FLINK_CONF_DIR=flink-conf flink run -d -py jobs/smoke.py -- --topic T --table smoke_counts

The target table needs a primary key on (platform, window_start).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pyflink.table import EnvironmentSettings, Table, TableEnvironment

from creatorpulse.jobs.tables import jdbc_sink_ddl, milliseconds, observations_source_ddl
from creatorpulse.settings import Settings

JOB_NAME = "creatorpulse-smoke"


def build(t_env: TableEnvironment, observations: Table) -> Table:
    """Observations per platform and one-minute event-time window."""
    t_env.create_temporary_view("smoke_observations", observations)
    return t_env.sql_query(
        """
        SELECT platform, window_start, COUNT(*) AS observations
        FROM TABLE(TUMBLE(TABLE smoke_observations, DESCRIPTOR(observed_at), INTERVAL '1' MINUTE))
        GROUP BY platform, window_start, window_end
        """
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jobs/smoke.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", required=True, help="Kafka topic of observations")
    parser.add_argument("--table", required=True, help="PostgreSQL table for the counts")
    parser.add_argument("--group-id", default=JOB_NAME, help="Kafka consumer group")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = Settings.from_env(os.environ)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = t_env.get_config()
    config.set("pipeline.name", f"{JOB_NAME} {args.topic}")
    config.set("table.local-time-zone", "UTC")
    # A partition that receives nothing must not hold the watermark back forever.
    config.set("table.exec.source.idle-timeout", f"{milliseconds(settings.source_idle_timeout)} ms")
    t_env.execute_sql(
        observations_source_ddl("observations", settings, topic=args.topic, group_id=args.group_id)
    )
    t_env.execute_sql(
        jdbc_sink_ddl(
            "counts",
            settings,
            table=args.table,
            columns=[("platform", "STRING"), ("window_start", "TIMESTAMP(3)"),
                     ("observations", "BIGINT")],
            primary_key=["platform", "window_start"],
        )
    )
    build(t_env, t_env.from_path("observations")).execute_insert("counts")


if __name__ == "__main__":
    main()
