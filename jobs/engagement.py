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
from datetime import timedelta

from pyflink.table import EnvironmentSettings, Table, TableEnvironment

from creatorpulse.jobs.tables import (
    jdbc_sink_ddl,
    kafka_sink_ddl,
    milliseconds,
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
# Provenance as a rank, so that the weakest of several is their MIN, and back to its name.
_PROVENANCE_RANK = (
    "CASE provenance WHEN 'rounded' THEN 0 WHEN 'estimated' THEN 1 ELSE 2 END"
)


def _provenance_name(rank: str) -> str:
    return f"CASE {rank} WHEN 0 THEN 'rounded' WHEN 1 THEN 'estimated' ELSE 'measured' END"


# Event time in epoch milliseconds, which LAG can carry and slot arithmetic can use.
_EPOCH_MS = ("(EXTRACT(EPOCH FROM observed_at) * 1000"
             " + MOD(EXTRACT(MILLISECOND FROM observed_at), 1000))")


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
               `value` - prev_value AS gain, prev_value, at_ms, prev_ms, seq,
               LEAST(prank, prev_prank) AS prank
        FROM (
            SELECT *,
                LAG(`value`) OVER w AS prev_value,
                LAG(at_ms) OVER w AS prev_ms,
                LAG(prank) OVER w AS prev_prank,
                COUNT(*) OVER w AS seq
            FROM (SELECT *, {_PROVENANCE_RANK} AS prank, {_EPOCH_MS} AS at_ms
                  FROM cp_checked WHERE NOT late)
            WINDOW w AS (
                PARTITION BY platform, account_id, content_id, metric ORDER BY observed_at))
        WHERE prev_value IS NOT NULL""")
    sql("""
        CREATE TEMPORARY VIEW cp_gains_all AS
        SELECT influencer_id, platform, metric, observed_at, gain, prank FROM cp_gains
        UNION ALL
        SELECT influencer_id, 'all', metric, observed_at, gain, prank FROM cp_gains""")

    # JDBC has no TIMESTAMP_LTZ: the raw log gets the UTC wall time (the session zone is UTC).
    wall_time = "CAST(observed_at AS TIMESTAMP(3)) AS observed_at"
    raw_log = t_env.sql_query(
        f"SELECT {_OBSERVATION_COLUMNS.replace('observed_at', wall_time)}, late FROM cp_checked")
    late_readings = t_env.sql_query(f"SELECT {_OBSERVATION_COLUMNS} FROM cp_checked WHERE late")
    buckets = t_env.sql_query(f"""
        SELECT influencer_id, platform, metric,
               FLOOR(CAST(observed_at AS TIMESTAMP(3)) TO MINUTE) AS bucket_start,
               SUM(gain) AS gain, COUNT(*) AS observations,
               {_provenance_name("MIN(prank)")} AS provenance
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


def _slot_ms(epoch_ms: str, slide: timedelta) -> str:
    """The start, in epoch milliseconds, of the slide-long slot holding ``epoch_ms``."""
    return f"({epoch_ms} - MOD({epoch_ms}, {milliseconds(slide)}))"


def _rolling(t_env: TableEnvironment, spec: WindowSpec) -> Table:
    """One sliding window per influencer x platform x metric, straight from the gains.

    A counter's gains in a window telescope: their sum is its latest value there minus the
    value before its first gain there (that gain's previous reading). So ``gain`` is a plain
    sliding sum, and ``value_at_start`` sums, per counter, the previous value of its first gain
    in the window; ``value_at_end`` is the two together. Which gain is a counter's first in a
    window follows from two slots, the gain's and its previous reading's:

    - after the counter's baseline, or a whole window or more after the previous reading, a
      gain is the first in every window holding it: a plain sliding sum again;
    - in the same slot as the previous reading, it is the first in none;
    - otherwise it is the first in the windows starting after the previous reading's slot, as
      many as the slots between the two (one, when a counter is read every slot). Such gains,
      summed per slot and previous slot, are spread over exactly those windows.

    Nothing here keeps state per counter beyond the gains' own; platform ``all`` sums the
    platforms' windows, which add up.
    """
    size, slide = sql_interval(spec.size), sql_interval(spec.slide)
    size_ms = milliseconds(spec.size)
    slotted, grouped = _view_name("cp_slotted", spec), _view_name("cp_grouped", spec)
    firsts = _view_name("cp_firsts", spec)
    by_platform, rolling = _view_name("cp_by_platform", spec), _view_name("cp_rolling", spec)
    sql = t_env.execute_sql
    # Each gain with the start of its previous reading's slot, and whether it is the first of
    # its counter in every window holding it, or at least the first in its own slot.
    sql(f"""
        CREATE TEMPORARY VIEW {slotted} AS
        SELECT influencer_id, platform, metric, observed_at, gain, prev_value, prank,
               seq = 2 OR p_slot <= r_slot - {size_ms} AS first_everywhere,
               p_slot < r_slot AS first_in_slot, p_slot
        FROM (SELECT *, {_slot_ms("at_ms", spec.slide)} AS r_slot,
                        {_slot_ms("prev_ms", spec.slide)} AS p_slot
              FROM cp_gains)""")
    # A gain after the counter's baseline, or a whole window after its previous reading, is
    # the first of its counter in every window holding it: a plain sliding sum.
    sql(f"""
        CREATE TEMPORARY VIEW {grouped} AS
        SELECT window_start AS h_start, window_end AS h_end, window_time AS w_time,
               influencer_id, platform, metric, SUM(gain) AS gain,
               SUM(CASE WHEN first_everywhere THEN prev_value ELSE 0 END) AS before_first,
               MIN(prank) AS prank
        FROM TABLE(HOP(TABLE {slotted}, DESCRIPTOR(observed_at), {slide}, {size}))
        GROUP BY window_start, window_end, window_time, influencer_id, platform, metric""")
    # Any other gain is the first of its counter only in the windows that start after its
    # previous reading's slot; with readings a slot or two apart, few of them.
    sql(f"""
        CREATE TEMPORARY VIEW {firsts}_rows AS
        SELECT * FROM {slotted} WHERE NOT first_everywhere AND first_in_slot""")
    sql(f"""
        CREATE TEMPORARY VIEW {firsts}_sum AS
        SELECT window_time AS f_time, influencer_id, platform, metric,
               CAST(TO_TIMESTAMP_LTZ(p_slot, 3) AS TIMESTAMP(3)) AS p_start,
               SUM(prev_value) AS before_first
        FROM TABLE(TUMBLE(TABLE {firsts}_rows, DESCRIPTOR(observed_at), {slide}))
        GROUP BY window_start, window_end, window_time, influencer_id, platform, metric,
                 p_slot""")
    sql(f"""
        CREATE TEMPORARY VIEW {firsts} AS
        SELECT window_start AS h_start, window_end AS h_end, window_time AS w_time,
               influencer_id, platform, metric, CAST(0 AS BIGINT) AS gain, before_first,
               3 AS prank
        FROM TABLE(HOP(TABLE {firsts}_sum, DESCRIPTOR(f_time), {slide}, {size}))
        WHERE p_start < window_start""")
    # Both parts of one window carry the same w_time, so a tumble of one slide gathers exactly
    # that window's rows, and the result stays an append-only window result.
    sql(f"""
        CREATE TEMPORARY VIEW {by_platform}_parts AS
        SELECT * FROM {grouped} UNION ALL SELECT * FROM {firsts}""")
    sql(f"""
        CREATE TEMPORARY VIEW {by_platform} AS
        SELECT influencer_id, platform, metric, h_start, h_end, SUM(gain) AS gain,
               SUM(before_first) AS value_at_start, MIN(prank) AS prank, window_time AS r_time
        FROM TABLE(TUMBLE(TABLE {by_platform}_parts, DESCRIPTOR(w_time), {slide}))
        GROUP BY window_start, window_end, window_time, h_start, h_end, influencer_id, platform,
                 metric""")
    sql(f"""
        CREATE TEMPORARY VIEW {rolling}_ranked AS
        SELECT * FROM {by_platform}
        UNION ALL
        SELECT influencer_id, 'all' AS platform, metric, h_start, h_end, SUM(gain) AS gain,
               SUM(value_at_start) AS value_at_start, MIN(prank) AS prank,
               window_time AS r_time
        FROM TABLE(TUMBLE(TABLE {by_platform}, DESCRIPTOR(r_time), {slide}))
        GROUP BY window_start, window_end, window_time, h_start, h_end, influencer_id, metric""")
    sql(f"""
        CREATE TEMPORARY VIEW {rolling} AS
        SELECT influencer_id, platform, metric, '{spec.name}' AS window_name, h_end, h_start,
               gain, value_at_start, value_at_start + gain AS value_at_end,
               {_provenance_name("prank")} AS provenance, r_time
        FROM {rolling}_ranked""")
    return t_env.sql_query(
        f"SELECT influencer_id, platform, metric, window_name, h_end AS window_end, "
        f"h_start AS window_start, gain, value_at_start, value_at_end, provenance FROM {rolling}"
    )


def _derived(t_env: TableEnvironment, spec: WindowSpec) -> Table:
    """Follower growth and engagement rates of one window, from its per-metric values.

    One aggregate gathers every numerator and denominator; UNNEST turns its row into one row per
    figure. (A union of one query per figure would make the planner prune each copy of the
    aggregate to its own columns, and run the window aggregate once per figure.)"""
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
    # (figure, formula, numerator, denominator); an absolute figure has no denominator.
    rows = [
        "ROW('follower_growth', 'absolute', follower_gain, CAST(NULL AS BIGINT))",
        "ROW('follower_growth', 'relative_to_start', follower_gain, followers_at_start)",
        *(f"ROW('engagement_rate', '{name}', engagements, d_{name})" for name in RATE_FORMULAS),
    ]
    return t_env.sql_query(f"""
        SELECT influencer_id, platform, window_name, window_end, f.figure, f.formula,
               f.numerator, f.denominator,
               CASE WHEN f.denominator IS NULL THEN CAST(f.numerator AS DOUBLE)
                    ELSE CAST(f.numerator AS DOUBLE) / f.denominator END AS figure_value
        FROM {figures}
        CROSS JOIN UNNEST(ARRAY[{", ".join(rows)}]) AS f(figure, formula, numerator, denominator)
        WHERE f.numerator IS NOT NULL AND (f.formula = 'absolute' OR f.denominator > 0)""")


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
    config.set("table.exec.state.ttl", f"{milliseconds(settings.state_ttl)} ms")
    config.set("table.exec.source.idle-timeout", f"{milliseconds(settings.source_idle_timeout)} ms")
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
