"""Engagement job: cumulative counter readings in, gains per minute and per sliding window out.

The semantics (DESIGN.md, "The observation model"):

1. Duplicates (same ``event_id``) are dropped; Flink forgets an id after ``CREATORPULSE_STATE_TTL``.
2. Readings later than the watermark (``CREATORPULSE_WATERMARK_DELAY`` behind the newest event
   time) are *late*: they go to the late topic and the raw log, never into the figures below.
3. A counter is (platform, account, content, metric). Its readings, in event-time order, become
   *gains*: each reading minus the previous one (negative when a counter falls). The first
   reading is a baseline with no gain. Because readings are ordered by event time before the
   difference is taken, a reading older than one already seen never yields a false gain.
4. Gains are summed per influencer x platform x metric (and ``platform = 'all'``) into one-minute
   buckets, updated as gains arrive, and into sliding windows, emitted at every slide.
   ``value_at_end`` sums, over the counters with readings in the window, each counter's latest
   value in the window; ``value_at_start = value_at_end - gain``.
5. Derived figures per influencer x platform x window: follower growth (absolute, and relative
   to the followers at the window start) and engagement rate under named formulas, each with its
   numerator and denominator. A metric should be reported at one level only (account or content)
   so that its gains are not counted twice.

:func:`build` holds all of that as SQL over tables, with no connector in sight, so that a test
can run it in batch mode on rows of its own; :func:`main` wires it to Kafka and PostgreSQL from
the settings. Submit it to the session cluster with::

    FLINK_CONF_DIR=flink-conf flink run -d -py jobs/engagement.py -pyclientexec .venv/bin/python
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from pyflink.table import EnvironmentSettings, Table, TableEnvironment

from creatorpulse.jobs.tables import (
    jdbc_sink_ddl,
    kafka_sink_ddl,
    observations_source_ddl,
    sql_interval,
)
from creatorpulse.observation import flink_columns
from creatorpulse.settings import Settings, WindowSpec
from creatorpulse.topics import AGGREGATES, LATE, OBSERVATIONS

JOB_NAME = "creatorpulse-engagement"

# Metrics whose gains make up "engagements" in every engagement-rate formula.
ENGAGEMENT_METRICS = ("likes", "comments", "shares", "saves")
# Engagement-rate formulas: name -> the metric whose figure is the denominator, and which figure.
RATE_FORMULAS = {
    "by_followers": ("followers", "value_at_end"),
    "by_views": ("views", "gain"),
    "by_reach": ("reach", "gain"),
}

_OBSERVATION_COLUMNS = (
    "platform, account_id, influencer_id, content_id, content_kind, metric, `value`, "
    "observed_at, provenance, event_id"
)
# The latest value of a counter in a window must survive HOP's merging of slices, which
# LAST_VALUE cannot do. Each gain therefore carries (sequence number of the reading within its
# counter, value) packed into one DECIMAL(38, 0); MAX of that merges, and unpacks to the value of
# the counter's latest reading. The sequence number restarts only after STATE_TTL of silence,
# which the settings keep longer than any window.
_PACK = "CAST('100000000000000000000' AS DECIMAL(38, 0))"  # 10^20 > 2 * max |BIGINT|
_OFFSET = "CAST('10000000000000000000' AS DECIMAL(38, 0))"  # 10^19 > max |BIGINT|
_PROVENANCE_RANK = (
    "CASE provenance WHEN 'rounded' THEN 0 WHEN 'estimated' THEN 1 ELSE 2 END"
)
_PROVENANCE_NAME = (
    "CASE MIN(prank) WHEN 0 THEN 'rounded' WHEN 1 THEN 'estimated' ELSE 'measured' END"
)


@dataclass(frozen=True)
class EngagementTables:
    """What :func:`build` produces; each is written to its own sink."""

    raw_log: Table  # every reading, late or not, with a ``late`` flag
    late: Table  # late readings, in the observation's own columns
    buckets: Table  # one-minute gains, an updating table keyed by its first four columns
    rolling: Table  # sliding-window values, one insert per window and slide
    derived: Table  # follower growth and engagement rates per window


def build(
    t_env: TableEnvironment,
    observations: Table,
    windows: Sequence[WindowSpec],
    *,
    streaming: bool = True,
) -> EngagementTables:
    """The engagement logic over ``observations`` (the observation columns, ``observed_at`` the
    event time). In streaming mode the table also needs ``proc``, a processing-time attribute:
    duplicates keep their first arrival, which keeps the stream append-only."""
    t_env.create_temporary_view("cp_input", observations)
    late = "COALESCE(observed_at < CURRENT_WATERMARK(observed_at), FALSE)" if streaming else "FALSE"
    sql = t_env.execute_sql
    # Duplicates go first, so that a late copy of a reading already counted is not "late".
    sql(f"""
        CREATE TEMPORARY VIEW cp_unique AS
        SELECT {_OBSERVATION_COLUMNS} FROM (
            SELECT *, ROW_NUMBER() OVER (
                PARTITION BY event_id ORDER BY {"proc" if streaming else "observed_at"}) AS rn
            FROM cp_input)
        WHERE rn = 1""")
    sql(f"CREATE TEMPORARY VIEW cp_checked AS SELECT *, {late} AS late FROM cp_unique")
    sql(f"""
        CREATE TEMPORARY VIEW cp_gains AS
        SELECT influencer_id, platform, account_id, content_id, metric, observed_at,
               `value` - prev_value AS gain,
               LEAST(prank, prev_prank) AS prank,
               CAST(seq AS DECIMAL(38, 0)) * {_PACK} + CAST(`value` AS DECIMAL(38, 0)) + {_OFFSET}
                   AS packed
        FROM (
            SELECT *,
                LAG(`value`) OVER w AS prev_value,
                LAG(prank) OVER w AS prev_prank,
                COUNT(*) OVER w AS seq
            FROM (SELECT *, {_PROVENANCE_RANK} AS prank FROM cp_checked WHERE NOT late)
            WINDOW w AS (
                PARTITION BY platform, account_id, content_id, metric ORDER BY observed_at))
        WHERE prev_value IS NOT NULL""")
    sql("""
        CREATE TEMPORARY VIEW cp_gains_all AS
        SELECT * FROM cp_gains
        UNION ALL
        SELECT influencer_id, 'all', account_id, content_id, metric, observed_at, gain, prank,
               packed
        FROM cp_gains""")

    # JDBC has no TIMESTAMP_LTZ: the raw log gets the UTC wall time (the session zone is UTC).
    wall_time = "CAST(observed_at AS TIMESTAMP(3)) AS observed_at"
    raw_log = t_env.sql_query(
        f"SELECT {_OBSERVATION_COLUMNS.replace('observed_at', wall_time)}, late FROM cp_checked")
    late_readings = t_env.sql_query(f"SELECT {_OBSERVATION_COLUMNS} FROM cp_checked WHERE late")
    buckets = t_env.sql_query(f"""
        SELECT influencer_id, platform, metric,
               FLOOR(CAST(observed_at AS TIMESTAMP(3)) TO MINUTE) AS bucket_start,
               SUM(gain) AS gain, COUNT(*) AS observations, {_PROVENANCE_NAME} AS provenance
        FROM cp_gains_all
        GROUP BY influencer_id, platform, metric, FLOOR(CAST(observed_at AS TIMESTAMP(3)) TO MINUTE)
        """)
    rolling = [_rolling(t_env, spec) for spec in windows]
    derived = [_derived(t_env, spec) for spec in windows]
    return EngagementTables(
        raw_log=raw_log,
        late=late_readings,
        buckets=buckets,
        rolling=_union_all(rolling),
        derived=_union_all(derived),
    )


def _view_name(prefix: str, spec: WindowSpec) -> str:
    return f"{prefix}_{spec.name}"


def _rolling(t_env: TableEnvironment, spec: WindowSpec) -> Table:
    """One sliding window, from per-counter slide buckets, with no per-counter window state.

    A window holds whole slide buckets, so per counter only the last value of each bucket it
    gained in matters. Over the buckets of one window, ``value_at_end`` (each counter's latest
    value, summed) telescopes: the sum of every bucket's last value, minus, for each bucket
    whose counter also gained in an earlier bucket of the same window, that earlier bucket's
    last value. The first sum is a plain sliding sum per influencer x platform x metric; the
    second term of a bucket applies to exactly the windows that start at or before the
    counter's previous bucket: a sliding sum too, less the windows that start after it, which a
    few copies per metric and bucket settle exactly.
    """
    size, slide = sql_interval(spec.size), sql_interval(spec.slide)
    buckets, chained = _view_name("cp_cbucket", spec), _view_name("cp_cchain", spec)
    grouped, overlaps = _view_name("cp_grouped", spec), _view_name("cp_overlap", spec)
    rolling = _view_name("cp_rolling", spec)
    sql = t_env.execute_sql
    # Per counter and slide bucket: its gain, its last value, its weakest provenance.
    sql(f"""
        CREATE TEMPORARY VIEW {buckets} AS
        SELECT window_start AS b_start, window_time AS b_time,
               influencer_id, platform, account_id, content_id, metric, SUM(gain) AS gain,
               CAST(MOD(MAX(packed), {_PACK}) - {_OFFSET} AS BIGINT) AS latest,
               MIN(prank) AS prank
        FROM TABLE(TUMBLE(TABLE cp_gains, DESCRIPTOR(observed_at), {slide}))
        GROUP BY window_start, window_end, window_time, influencer_id, platform, account_id,
                 content_id, metric""")
    # Each bucket with the counter's previous bucket (start and last value), and the same rows
    # once more under platform 'all'.
    sql(f"""
        CREATE TEMPORARY VIEW {chained}_one AS
        SELECT b_start, b_time, influencer_id, platform, metric, gain, latest, prank,
               LAG(b_start) OVER w AS prev_start, LAG(latest) OVER w AS prev_value
        FROM {buckets}
        WINDOW w AS (PARTITION BY platform, account_id, content_id, metric ORDER BY b_time)""")
    sql(f"""
        CREATE TEMPORARY VIEW {chained} AS
        SELECT * FROM {chained}_one
        UNION ALL
        SELECT b_start, b_time, influencer_id, 'all', metric, gain, latest, prank,
               prev_start, prev_value
        FROM {chained}_one""")
    sql(f"""
        CREATE TEMPORARY VIEW {grouped} AS
        SELECT window_start AS h_start, window_end AS h_end, window_time AS w_time,
               influencer_id, platform, metric, SUM(gain) AS gain,
               SUM(latest) - SUM(CASE WHEN prev_start > b_start - {size} THEN prev_value
                                      ELSE 0 END) AS value_sum,
               MIN(prank) AS prank
        FROM TABLE(HOP(TABLE {chained}, DESCRIPTOR(b_time), {slide}, {size}))
        GROUP BY window_start, window_end, window_time, influencer_id, platform, metric""")
    # The previous bucket's value per metric, bucket and previous bucket. The sliding sum above
    # subtracts it in every window holding the bucket; it belongs back in those of them that
    # start after the previous bucket: as many as the buckets between the two, few when
    # counters are read often.
    sql(f"""
        CREATE TEMPORARY VIEW {overlaps}_rows AS
        SELECT * FROM {chained}
        WHERE prev_start IS NOT NULL AND prev_start > b_start - {size}""")
    sql(f"""
        CREATE TEMPORARY VIEW {overlaps}_sum AS
        SELECT window_time AS o_time, influencer_id, platform, metric, prev_start,
               SUM(prev_value) AS overlap_sum
        FROM TABLE(TUMBLE(TABLE {overlaps}_rows, DESCRIPTOR(b_time), {slide}))
        GROUP BY window_start, window_end, window_time, influencer_id, platform, metric,
                 prev_start""")
    sql(f"""
        CREATE TEMPORARY VIEW {overlaps} AS
        SELECT window_start AS h_start, window_end AS h_end, window_time AS w_time,
               influencer_id, platform, metric, CAST(0 AS BIGINT) AS gain,
               overlap_sum AS value_sum, 3 AS prank
        FROM TABLE(HOP(TABLE {overlaps}_sum, DESCRIPTOR(o_time), {slide}, {size}))
        WHERE prev_start < window_start""")
    # Both parts of one window carry the same w_time, so a tumble of one slide gathers exactly
    # that window's rows, and the result stays an append-only window result.
    sql(f"""
        CREATE TEMPORARY VIEW {rolling}_parts AS
        SELECT * FROM {grouped} UNION ALL SELECT * FROM {overlaps}""")
    sql(f"""
        CREATE TEMPORARY VIEW {rolling} AS
        SELECT influencer_id, platform, metric, '{spec.name}' AS window_name,
               h_end, h_start, SUM(gain) AS gain,
               SUM(value_sum) - SUM(gain) AS value_at_start, SUM(value_sum) AS value_at_end,
               {_PROVENANCE_NAME} AS provenance, window_time AS r_time
        FROM TABLE(TUMBLE(TABLE {rolling}_parts, DESCRIPTOR(w_time), {slide}))
        GROUP BY window_start, window_end, window_time, h_start, h_end, influencer_id, platform,
                 metric""")
    return t_env.sql_query(
        f"SELECT influencer_id, platform, metric, window_name, h_end AS window_end, "
        f"h_start AS window_start, gain, value_at_start, value_at_end, provenance FROM {rolling}"
    )


def _derived(t_env: TableEnvironment, spec: WindowSpec) -> Table:
    """Follower growth and engagement rates of one window, from its per-metric values."""
    slide = sql_interval(spec.slide)
    rolling, figures = _view_name("cp_rolling", spec), _view_name("cp_figures", spec)
    engagement_metrics = ", ".join(f"'{m}'" for m in ENGAGEMENT_METRICS)
    denominators = ",\n".join(
        f"SUM(CASE WHEN metric = '{metric}' THEN {column} END) AS d_{name}"
        for name, (metric, column) in RATE_FORMULAS.items()
    )
    t_env.execute_sql(f"""
        CREATE TEMPORARY VIEW {figures} AS
        SELECT influencer_id, platform, window_name, h_end AS window_end,
               SUM(CASE WHEN metric IN ({engagement_metrics}) THEN gain END) AS engagements,
               SUM(CASE WHEN metric = 'followers' THEN gain END) AS follower_gain,
               SUM(CASE WHEN metric = 'followers' THEN value_at_start END) AS followers_at_start,
               {denominators}
        FROM TABLE(TUMBLE(TABLE {rolling}, DESCRIPTOR(r_time), {slide}))
        GROUP BY window_start, window_end, influencer_id, platform, window_name, h_end""")
    head = "SELECT influencer_id, platform, window_name, window_end"
    parts = [
        f"{head}, 'follower_growth' AS figure, 'absolute' AS formula, follower_gain AS numerator,"
        f" CAST(NULL AS BIGINT) AS denominator, CAST(follower_gain AS DOUBLE) AS figure_value"
        f" FROM {figures} WHERE follower_gain IS NOT NULL",
        f"{head}, 'follower_growth', 'relative_to_start', follower_gain, followers_at_start,"
        f" CAST(follower_gain AS DOUBLE) / followers_at_start"
        f" FROM {figures} WHERE follower_gain IS NOT NULL AND followers_at_start > 0",
    ]
    parts += [
        f"{head}, 'engagement_rate', '{name}', engagements, d_{name},"
        f" CAST(engagements AS DOUBLE) / d_{name}"
        f" FROM {figures} WHERE engagements IS NOT NULL AND d_{name} > 0"
        for name in RATE_FORMULAS
    ]
    return t_env.sql_query("\nUNION ALL\n".join(parts))


def _union_all(tables: list[Table]) -> Table:
    result = tables[0]
    for table in tables[1:]:
        result = result.union_all(table)
    return result


# --- wiring ------------------------------------------------------------------------------------

OBSERVATION_SINK_COLUMNS = [(c, t.replace(" NOT NULL", "")) for c, t in flink_columns()]
RAW_LOG_COLUMNS = [
    *((c, "TIMESTAMP(3)" if c == "observed_at" else t) for c, t in OBSERVATION_SINK_COLUMNS),
    ("late", "BOOLEAN"),
]
BUCKET_COLUMNS = [
    ("influencer_id", "STRING"), ("platform", "STRING"), ("metric", "STRING"),
    ("bucket_start", "TIMESTAMP(3)"), ("gain", "BIGINT"), ("observations", "BIGINT"),
    ("provenance", "STRING"),
]
ROLLING_COLUMNS = [
    ("influencer_id", "STRING"), ("platform", "STRING"), ("metric", "STRING"),
    ("window_name", "STRING"), ("window_end", "TIMESTAMP(3)"), ("window_start", "TIMESTAMP(3)"),
    ("gain", "BIGINT"), ("value_at_start", "BIGINT"), ("value_at_end", "BIGINT"),
    ("provenance", "STRING"),
]
DERIVED_COLUMNS = [
    ("influencer_id", "STRING"), ("platform", "STRING"), ("window_name", "STRING"),
    ("window_end", "TIMESTAMP(3)"), ("figure", "STRING"), ("formula", "STRING"),
    ("numerator", "BIGINT"), ("denominator", "BIGINT"), ("figure_value", "DOUBLE"),
]


@dataclass(frozen=True)
class Targets:
    """Where the job reads and writes; tests point it at topics and tables of their own."""

    observations_topic: str = OBSERVATIONS.name
    late_topic: str = LATE.name
    aggregates_topic: str = AGGREGATES.name
    raw_log_table: str = "observations"
    buckets_table: str = "metric_buckets_1m"
    rolling_table: str = "rolling_windows"
    derived_table: str = "derived_figures"
    group_id: str = JOB_NAME


def register(t_env: TableEnvironment, settings: Settings, targets: Targets) -> None:
    """The source and sink tables of the job, all addresses from ``settings``."""
    sql = t_env.execute_sql
    sql(observations_source_ddl(
        "cp_observations", settings, topic=targets.observations_topic, group_id=targets.group_id,
        processing_time="proc"))
    sql(jdbc_sink_ddl("cp_raw_log", settings, table=targets.raw_log_table,
                      columns=RAW_LOG_COLUMNS, primary_key=["event_id", "observed_at"]))
    sql(jdbc_sink_ddl("cp_buckets", settings, table=targets.buckets_table,
                      columns=BUCKET_COLUMNS, primary_key=[c for c, _ in BUCKET_COLUMNS[:4]]))
    sql(jdbc_sink_ddl("cp_rolling_sink", settings, table=targets.rolling_table,
                      columns=ROLLING_COLUMNS, primary_key=[c for c, _ in ROLLING_COLUMNS[:5]]))
    sql(jdbc_sink_ddl("cp_derived_sink", settings, table=targets.derived_table,
                      columns=DERIVED_COLUMNS,
                      primary_key=["influencer_id", "platform", "window_name", "window_end",
                                   "figure", "formula"]))
    sql(kafka_sink_ddl("cp_late", settings, topic=targets.late_topic, key_field="account_id",
                       columns=OBSERVATION_SINK_COLUMNS))
    sql(kafka_sink_ddl("cp_aggregates", settings, topic=targets.aggregates_topic,
                       key_field="influencer_id", columns=ROLLING_COLUMNS))


def configure(t_env: TableEnvironment, settings: Settings, name: str) -> None:
    config = t_env.get_config()
    config.set("pipeline.name", name)
    config.set("table.local-time-zone", "UTC")
    config.set("table.exec.state.ttl", f"{int(settings.state_ttl.total_seconds() * 1000)} ms")
    idle_ms = int(settings.source_idle_timeout.total_seconds() * 1000)
    config.set("table.exec.source.idle-timeout", f"{idle_ms} ms")
    # Operator uids derived from the plan, so a restart from a savepoint of the same plan finds
    # every operator's state.
    config.set("table.exec.uid.generation", "ALWAYS")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    defaults = Targets()
    parser = argparse.ArgumentParser(prog="jobs/engagement.py",
                                     description="CreatorPulse engagement job (streaming).")
    for field_name, default in vars(defaults).items():
        parser.add_argument(f"--{field_name.replace('_', '-')}", default=default,
                            help=f"default: {default}")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    targets = Targets(**vars(args))
    settings = Settings.from_env(os.environ)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    name = JOB_NAME if targets == Targets() else f"{JOB_NAME} {targets.observations_topic}"
    configure(t_env, settings, name)
    register(t_env, settings, targets)
    tables = build(t_env, t_env.from_path("cp_observations"), settings.windows)
    statements = t_env.create_statement_set()
    statements.add_insert("cp_raw_log", tables.raw_log)
    statements.add_insert("cp_late", tables.late)
    statements.add_insert("cp_buckets", tables.buckets)
    statements.add_insert("cp_rolling_sink", tables.rolling)
    statements.add_insert("cp_aggregates", tables.rolling)
    statements.add_insert("cp_derived_sink", tables.derived)
    statements.execute()


if __name__ == "__main__":
    main()
