"""Flink SQL DDL for the tables the jobs read and write, built from the settings.

The observation columns come from :func:`creatorpulse.observation.flink_columns`, so the Kafka
source table always matches the record the sources publish. Addresses come from
:class:`~creatorpulse.settings.Settings`; no job writes a broker or database literal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from urllib.parse import unquote, urlencode, urlsplit

from creatorpulse.observation import flink_columns
from creatorpulse.settings import Settings

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def milliseconds(delta: timedelta) -> int:
    """``delta`` in whole milliseconds, the unit of Flink's durations and of event-time math."""
    return round(delta.total_seconds() * 1000)


def sql_interval(delta: timedelta) -> str:
    """A Flink SQL interval literal for ``delta`` (up to 99 days, millisecond precision)."""
    total_ms = milliseconds(delta)
    if total_ms < 0:
        msg = f"interval must not be negative, got {delta}"
        raise ValueError(msg)
    seconds, ms = divmod(total_ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}' DAY TO SECOND(3)"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _options(options: dict[str, str]) -> str:
    return ",\n  ".join(f"{_quote(k)} = {_quote(v)}" for k, v in options.items())


def _identifier(name: str) -> str:
    if not _NAME.match(name):
        msg = f"not a plain SQL identifier: {name!r}"
        raise ValueError(msg)
    return f"`{name}`"


def observations_source_ddl(
    name: str,
    settings: Settings,
    *,
    topic: str,
    group_id: str,
    startup_mode: str = "group-offsets",
    processing_time: str | None = None,
) -> str:
    """A Kafka table of observations with an event-time watermark on ``observed_at``.

    ``startup_mode`` is Flink's ``scan.startup.mode``; with ``group-offsets`` a group that has no
    committed offsets yet starts from the earliest record. ``processing_time`` adds a computed
    processing-time column of that name.
    """
    columns = ",\n  ".join(f"{_identifier(col)} {kind}" for col, kind in flink_columns())
    if processing_time:
        columns += f",\n  {_identifier(processing_time)} AS PROCTIME()"
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": settings.kafka_bootstrap,
        "properties.group.id": group_id,
        "properties.auto.offset.reset": "earliest",
        "scan.startup.mode": startup_mode,
        "format": "json",
        "json.timestamp-format.standard": "ISO-8601",
        "json.fail-on-missing-field": "true",
    }
    delay = sql_interval(settings.watermark_delay)
    return (
        f"CREATE TABLE {_identifier(name)} (\n  {columns},\n"
        f"  WATERMARK FOR `observed_at` AS `observed_at` - {delay}\n"
        f") WITH (\n  {_options(options)}\n)"
    )


def jdbc_options(settings: Settings, table: str) -> dict[str, str]:
    """Options of Flink's JDBC connector for ``table`` in the CreatorPulse database."""
    url = urlsplit(settings.database_dsn.reveal())
    port = f":{url.port}" if url.port else ""
    # The driver sends a batch as multi-row INSERTs instead of one statement per row.
    query = {"reWriteBatchedInserts": "true"}
    options = {
        "connector": "jdbc",
        "table-name": table,
        "sink.buffer-flush.interval": "1s",
        "sink.buffer-flush.max-rows": "1000",
        "sink.max-retries": "5",
    }
    if url.password:
        options["username"] = unquote(url.username or "")
        options["password"] = unquote(url.password)
    elif url.username:
        # The connector wants both or neither; a password-less role goes in the URL instead.
        query["user"] = unquote(url.username)
    options["url"] = f"jdbc:postgresql://{url.hostname}{port}{url.path}?{urlencode(query)}"
    return options


def jdbc_sink_ddl(
    name: str,
    settings: Settings,
    *,
    table: str,
    columns: Sequence[tuple[str, str]],
    primary_key: Sequence[str],
) -> str:
    """A JDBC upsert table: rows with the same ``primary_key`` replace each other."""
    cols = ",\n  ".join(f"{_identifier(col)} {kind}" for col, kind in columns)
    key = ", ".join(_identifier(col) for col in primary_key)
    return (
        f"CREATE TABLE {_identifier(name)} (\n  {cols},\n  PRIMARY KEY ({key}) NOT ENFORCED\n"
        f") WITH (\n  {_options(jdbc_options(settings, table))}\n)"
    )


def kafka_sink_ddl(
    name: str,
    settings: Settings,
    *,
    topic: str,
    key_field: str,
    columns: Sequence[tuple[str, str]],
) -> str:
    """An append-only Kafka table writing JSON values keyed by ``key_field`` (as raw bytes)."""
    cols = ",\n  ".join(f"{_identifier(col)} {kind}" for col, kind in columns)
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": settings.kafka_bootstrap,
        "key.format": "raw",
        "key.fields": key_field,
        "value.format": "json",
        "value.fields-include": "ALL",
        "value.json.timestamp-format.standard": "ISO-8601",
        "sink.delivery-guarantee": "at-least-once",
    }
    return f"CREATE TABLE {_identifier(name)} (\n  {cols}\n) WITH (\n  {_options(options)}\n)"
