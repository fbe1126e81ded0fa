from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from creatorpulse.settings import (
    Secret,
    Settings,
    SettingsError,
    mask_url,
    parse_bool,
    parse_duration,
)


def load(env: dict[str, str], dotenv: Path | None = None) -> Settings:
    return Settings.from_env(env, dotenv=dotenv)


def test_defaults_describe_a_private_local_stack(tmp_path: Path) -> None:
    s = load({})
    assert s.manages_postgres and s.manages_redis and s.manages_kafka
    assert s.database_dsn.reveal() == "postgresql://creatorpulse@127.0.0.1:5433/creatorpulse"
    assert s.redis_dsn.reveal() == "redis://127.0.0.1:6380/0"
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.watermark_delay == timedelta(seconds=5)
    assert [(w.name, w.slide) for w in s.windows] == [
        ("1h", timedelta(minutes=1)), ("24h", timedelta(minutes=5)), ("7d", timedelta(hours=1))]
    assert s.state_dir.is_absolute() and s.flink_conf_dir.is_absolute()


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        load({}).kafka_port = 1  # type: ignore[misc]


def test_external_urls_replace_the_private_services() -> None:
    s = load({
        "CREATORPULSE_DATABASE_URL": "postgresql://app:pw@db.internal:5432/cp",
        "CREATORPULSE_REDIS_URL": "redis://cache:6379/2",
        "CREATORPULSE_KAFKA_BOOTSTRAP_SERVERS": "k1:9092, k2:9092",
    })
    assert not (s.manages_postgres or s.manages_redis or s.manages_kafka)
    assert s.database_dsn.reveal() == "postgresql://app:pw@db.internal:5432/cp"
    assert s.kafka_bootstrap == "k1:9092,k2:9092"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CREATORPULSE_KAFKA_PORT", "70000"),
        ("CREATORPULSE_KAFKA_PORT", "ninety"),
        ("CREATORPULSE_WATERMARK_DELAY", "30"),
        ("CREATORPULSE_LOG_LEVEL", "LOUD"),
        ("CREATORPULSE_ENV", "staging"),
        ("CREATORPULSE_DATABASE_URL", "mysql://x@y/z"),
        ("CREATORPULSE_KAFKA_BOOTSTRAP_SERVERS", "no-port-here"),
        ("CREATORPULSE_KAFKA_HEAP", "lots"),
    ],
)
def test_a_bad_value_names_its_key(key: str, value: str) -> None:
    with pytest.raises(SettingsError, match=key):
        load({key: value})


def test_an_unknown_setting_is_an_error_with_a_suggestion() -> None:
    hint = r"CREATORPULSE_KAFKA_PROT \(did you mean CREATORPULSE_KAFKA_PORT\?\)"
    with pytest.raises(SettingsError, match=hint):
        load({"CREATORPULSE_KAFKA_PROT": "9092"})


def test_other_environment_variables_are_ignored() -> None:
    assert load({"HOME": "/root", "KAFKA_PORT": "1"}).kafka_port == 9092


def test_a_bad_url_does_not_echo_its_password() -> None:
    with pytest.raises(SettingsError) as err:
        load({"CREATORPULSE_DATABASE_URL": "mysql://u:hunter2@db/x"})
    assert "hunter2" not in str(err.value)


def test_secrets_are_masked_everywhere_they_could_be_printed() -> None:
    s = load({"CREATORPULSE_DATABASE_URL": "postgresql://app:hunter2@db:5432/cp"})
    shown = repr(s) + str(s.database_url) + repr(s.database_dsn) + str(s.describe())
    assert "hunter2" not in shown
    assert ("CREATORPULSE_DATABASE_URL", "postgresql://app:***@db:5432/cp") in [
        (env, value) for env, value, _ in s.describe()
    ]


def test_every_setting_is_described_once_with_a_unique_name() -> None:
    rows = load({}).describe()
    names = [env for env, _, _ in rows]
    assert len(names) == len(set(names)) == len(dataclasses.fields(Settings))
    assert all(doc for _, _, doc in rows)


def test_dotenv_fills_in_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# local overrides\n"
        "CREATORPULSE_KAFKA_PORT=9192\n"
        "export CREATORPULSE_REDIS_PORT='6390'\n"
        "UNRELATED=1\n"
    )
    s = load({"CREATORPULSE_KAFKA_PORT": "9292"}, dotenv=dotenv)
    assert s.kafka_port == 9292
    assert s.redis_port == 6390


def test_a_malformed_dotenv_line_names_file_and_line(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("CREATORPULSE_KAFKA_PORT=9192\nnot a pair\n")
    with pytest.raises(SettingsError, match=r"\.env:2"):
        load({}, dotenv=dotenv)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("500ms", timedelta(milliseconds=500)), ("30s", timedelta(seconds=30)),
     ("5m", timedelta(minutes=5)), ("1h", timedelta(hours=1)), ("7d", timedelta(days=7))],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "1.5s", "-1s", "1w"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_booleans_are_strict() -> None:
    assert parse_bool("false") is False and parse_bool("TRUE") is True and parse_bool("0") is False
    with pytest.raises(ValueError, match="true or false"):
        parse_bool("maybe")


def test_mask_url_keeps_everything_but_the_password() -> None:
    assert mask_url("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert mask_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_secret_compares_by_value_without_revealing() -> None:
    assert Secret("a") == Secret("a") != Secret("b")
    assert "a" not in repr(Secret("a"))


def test_windows_parse_and_validate() -> None:
    s = load({"CREATORPULSE_WINDOWS": "10m/1m, 2h/30m"})
    assert [(w.name, w.size, w.slide) for w in s.windows] == [
        ("10m", timedelta(minutes=10), timedelta(minutes=1)),
        ("2h", timedelta(hours=2), timedelta(minutes=30))]
    assert ("CREATORPULSE_WINDOWS", "10m/1m,2h/30m") in [(e, v) for e, v, _ in s.describe()]
    for bad in ("1h", "1h/7m", "1m/1h", "1h/1m,1h/5m"):
        with pytest.raises(SettingsError, match="CREATORPULSE_WINDOWS"):
            load({"CREATORPULSE_WINDOWS": bad})


def test_state_must_outlive_the_largest_window() -> None:
    with pytest.raises(SettingsError, match="CREATORPULSE_STATE_TTL"):
        load({"CREATORPULSE_STATE_TTL": "1d"})
