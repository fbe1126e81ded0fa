from __future__ import annotations

from datetime import timedelta

import pytest

from creatorpulse.jobs.tables import (
    jdbc_options,
    jdbc_sink_ddl,
    observations_source_ddl,
    sql_interval,
)
from creatorpulse.observation import flink_columns
from creatorpulse.settings import Settings


def settings(**env: str) -> Settings:
    return Settings.from_env({f"CREATORPULSE_{k}": v for k, v in env.items()}, dotenv=None)


@pytest.mark.parametrize(
    ("delta", "literal"),
    [
        (timedelta(seconds=30), "INTERVAL '0 00:00:30.000' DAY TO SECOND(3)"),
        (timedelta(milliseconds=1500), "INTERVAL '0 00:00:01.500' DAY TO SECOND(3)"),
        (timedelta(days=7, hours=1), "INTERVAL '7 01:00:00.000' DAY TO SECOND(3)"),
    ],
)
def test_sql_interval(delta: timedelta, literal: str) -> None:
    assert sql_interval(delta) == literal


def test_source_ddl_has_every_observation_column_and_the_settings_watermark() -> None:
    ddl = observations_source_ddl(
        "obs", settings(WATERMARK_DELAY="45s", KAFKA_PORT="9192"), topic="t1", group_id="g1"
    )
    for column, kind in flink_columns():
        assert f"`{column}` {kind}" in ddl
    assert "WATERMARK FOR `observed_at` AS `observed_at` - INTERVAL '0 00:00:45.000'" in ddl
    assert "'properties.bootstrap.servers' = '127.0.0.1:9192'" in ddl
    assert "'topic' = 't1'" in ddl and "'properties.group.id' = 'g1'" in ddl


def test_option_values_are_quoted_safely() -> None:
    ddl = observations_source_ddl("obs", settings(), topic="it's", group_id="g")
    assert "'topic' = 'it''s'" in ddl


def test_identifiers_are_checked() -> None:
    with pytest.raises(ValueError, match="identifier"):
        observations_source_ddl("obs; DROP", settings(), topic="t", group_id="g")


def test_jdbc_options_from_a_url_with_a_password() -> None:
    s = settings(DATABASE_URL="postgresql://app:p%40ss@db:5432/cp")
    options = jdbc_options(s, "metric_buckets_1m")
    assert options["url"] == "jdbc:postgresql://db:5432/cp?reWriteBatchedInserts=true"
    assert (options["username"], options["password"]) == ("app", "p@ss")
    assert options["table-name"] == "metric_buckets_1m"


def test_jdbc_options_for_a_role_without_password_put_the_user_in_the_url() -> None:
    options = jdbc_options(settings(), "t")
    assert options["url"] == ("jdbc:postgresql://127.0.0.1:5433/creatorpulse"
                              "?reWriteBatchedInserts=true&user=creatorpulse")
    assert "username" not in options and "password" not in options


def test_jdbc_sink_ddl_declares_the_upsert_key() -> None:
    ddl = jdbc_sink_ddl("sink", settings(), table="t", columns=[("a", "STRING"), ("b", "BIGINT")],
                        primary_key=["a"])
    assert "PRIMARY KEY (`a`) NOT ENFORCED" in ddl and "'connector' = 'jdbc'" in ddl
