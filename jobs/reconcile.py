"""Reconcile job (batch): recompute buckets, windows and figures of a time range from the raw log.

The streaming job leaves late readings out of its figures; the raw log keeps them. This job
reads the raw log for ``[--since, --until)`` plus enough history before it (the largest window
and the state TTL, which bound what the streaming job could have known), runs the same
:func:`build` in batch mode, and upserts the minute buckets that start in the range and the
windows and figures that end in ``(--since, --until]``. Running it twice writes the same rows:
it is idempotent, and it backfills.

    FLINK_CONF_DIR=flink-conf flink run -py jobs/reconcile.py -pyclientexec .venv/bin/python \\
        --since 2026-11-23T00:00:00Z --until 2026-11-24T00:00:00Z
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from pyflink.table import EnvironmentSettings, TableEnvironment

from creatorpulse.jobs.engagement import (
    BUCKET_COLUMNS,
    DERIVED_COLUMNS,
    ROLLING_COLUMNS,
    build,
    configure,
)
from creatorpulse.jobs.tables import jdbc_options, jdbc_sink_ddl
from creatorpulse.observation import flink_columns
from creatorpulse.settings import Settings

JOB_NAME = "creatorpulse-reconcile"


def utc_time(text: str) -> datetime:
    """An ISO 8601 time with a zone (``2026-11-23T00:00:00Z``), as UTC."""
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        msg = f"{text!r} has no time zone; write it in UTC, e.g. 2026-11-23T00:00:00Z"
        raise argparse.ArgumentTypeError(msg)
    return at.astimezone(UTC)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jobs/reconcile.py", description=__doc__.split("\n\n")[0])
    # Not --from: the flink client would take it for its own --fromSavepoint.
    parser.add_argument("--since", dest="start", type=utc_time, required=True,
                        help="start of the range, inclusive (ISO 8601 with zone)")
    parser.add_argument("--until", dest="end", type=utc_time, required=True,
                        help="end of the range, exclusive for buckets (ISO 8601 with zone)")
    parser.add_argument("--raw-log-table", default="observations")
    parser.add_argument("--buckets-table", default="metric_buckets_1m")
    parser.add_argument("--rolling-table", default="rolling_windows")
    parser.add_argument("--derived-table", default="derived_figures")
    args = parser.parse_args(argv)
    if args.start >= args.end:
        parser.error("--since must be before --until")
    return args


def _literal(at: datetime) -> str:
    return f"TIMESTAMP '{at.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}'"


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = Settings.from_env(os.environ)
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    configure(t_env, settings, f"{JOB_NAME} {args.start.isoformat()}..{args.end.isoformat()}")
    # A batch job that keeps failing (a table that is not there) fails for good after a few
    # tries, rather than restarting forever as the streaming job rightly does.
    config = t_env.get_config()
    config.set("restart-strategy.type", "fixed-delay")
    config.set("restart-strategy.fixed-delay.attempts", "2")
    config.set("restart-strategy.fixed-delay.delay", "2 s")
    history = max(w.size for w in settings.windows) + settings.state_ttl
    columns = ", ".join(
        f"`{c}` {'TIMESTAMP(3)' if c == 'observed_at' else t.replace(' NOT NULL', '')}"
        for c, t in flink_columns())
    options = {k: v for k, v in jdbc_options(settings, args.raw_log_table).items()
               if not k.startswith("sink.")}
    with_options = ", ".join(f"'{k}' = '{v}'" for k, v in options.items())
    t_env.execute_sql(f"CREATE TABLE cp_raw_log_source ({columns}) WITH ({with_options})")
    start, end = _literal(args.start), _literal(args.end)
    readings = t_env.sql_query(
        f"SELECT * FROM cp_raw_log_source WHERE observed_at >= {_literal(args.start - history)} "
        f"AND observed_at < {end}")
    tables = build(t_env, readings, settings.windows, streaming=False)
    for name, table, cols, key in (
        ("cp_buckets", args.buckets_table, BUCKET_COLUMNS, 4),
        ("cp_rolling_sink", args.rolling_table, ROLLING_COLUMNS, 5),
    ):
        t_env.execute_sql(jdbc_sink_ddl(name, settings, table=table, columns=cols,
                                        primary_key=[c for c, _ in cols[:key]]))
    t_env.execute_sql(jdbc_sink_ddl(
        "cp_derived_sink", settings, table=args.derived_table, columns=DERIVED_COLUMNS,
        primary_key=["influencer_id", "platform", "window_name", "window_end", "figure",
                     "formula"]))
    t_env.create_temporary_view("rc_buckets", tables.buckets)
    t_env.create_temporary_view("rc_rolling", tables.rolling)
    t_env.create_temporary_view("rc_derived", tables.derived)
    in_range = f"window_end > {start} AND window_end <= {end}"
    statements = t_env.create_statement_set()
    statements.add_insert("cp_buckets", t_env.sql_query(
        f"SELECT * FROM rc_buckets WHERE bucket_start >= {start} AND bucket_start < {end}"))
    statements.add_insert("cp_rolling_sink", t_env.sql_query(
        f"SELECT * FROM rc_rolling WHERE {in_range}"))
    statements.add_insert("cp_derived_sink", t_env.sql_query(
        f"SELECT * FROM rc_derived WHERE {in_range}"))
    statements.execute()


if __name__ == "__main__":
    main()
