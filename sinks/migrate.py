"""Numbered SQL migrations for the CreatorPulse database, applied idempotently.

Files in ``migrations/`` are named ``NNNN_name.sql`` (for every server) or
``NNNN_name.plain.sql`` / ``NNNN_name.timescale.sql`` (two variants of one step: the TimescaleDB
one when the ``timescaledb`` extension is available, the plain one otherwise). Each applied step
is recorded in ``schema_migrations`` with its checksum; editing an applied file is an error
rather than a silent divergence. A file whose first line is ``-- creatorpulse: no-transaction``
runs statement by statement outside a transaction (TimescaleDB requires it for continuous
aggregates); such files must not contain ``;`` inside a statement.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
NO_TRANSACTION = "-- creatorpulse: no-transaction"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(plain|timescale))?\.sql$")
_LOCK_ID = 0x43505F4D49  # pg_advisory_lock key shared by every migrator of this schema


class MigrationError(RuntimeError):
    """The migrations or the recorded history are inconsistent; the message says how."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    variant: str  # "any", "plain" or "timescale"
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def transactional(self) -> bool:
        return not self.sql.startswith(NO_TRANSACTION)

    def statements(self) -> list[str]:
        body = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        return [s.strip() for s in re.split(r";\s*$", body, flags=re.MULTILINE) if s.strip()]


def discover(folder: Path = MIGRATIONS) -> list[Migration]:
    """Every migration file in ``folder``, ordered by version; bad names are errors."""
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            msg = f"{path.name}: expected NNNN_name.sql, NNNN_name.plain.sql or .timescale.sql"
            raise MigrationError(msg)
        version, name, variant = int(match.group(1)), match.group(2), match.group(3) or "any"
        found.append(Migration(version, name, variant, path.read_text(encoding="utf-8")))
    by_version: dict[int, set[str]] = {}
    for m in found:
        by_version.setdefault(m.version, set()).add(m.variant)
    for version, variants in by_version.items():
        if variants not in ({"any"}, {"plain", "timescale"}):
            msg = f"version {version:04d} needs one file, or exactly a .plain and a .timescale file"
            raise MigrationError(msg)
    return found


def plan(
    migrations: list[Migration], applied: dict[int, tuple[str, str]], timescale: bool
) -> list[Migration]:
    """The migrations still to apply, given ``applied`` (version -> (variant, checksum))."""
    wanted = {"any", "timescale" if timescale else "plain"}
    pending = []
    for m in migrations:
        if m.variant not in wanted and m.version not in applied:
            continue
        if m.version in applied:
            variant, checksum = applied[m.version]
            if variant == m.variant and checksum != m.checksum:
                msg = (
                    f"migration {m.version:04d}_{m.name} ({m.variant}) was changed after it was "
                    "applied; add a new migration instead of editing an applied one"
                )
                raise MigrationError(msg)
            continue
        pending.append(m)
    return pending


def migrate(conn: psycopg.Connection, say: Callable[[str], None]) -> list[Migration]:
    """Apply pending migrations on ``conn`` (autocommit); returns those applied."""
    if not conn.autocommit:
        msg = "migrate needs an autocommit connection (it manages its own transactions)"
        raise MigrationError(msg)
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
    try:
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version     integer PRIMARY KEY,
                   name        text NOT NULL,
                   variant     text NOT NULL,
                   checksum    text NOT NULL,
                   applied_at  timestamptz NOT NULL DEFAULT now())"""
        )
        rows = conn.execute("SELECT version, variant, checksum FROM schema_migrations").fetchall()
        applied = {version: (variant, checksum) for version, variant, checksum in rows}
        timescale = timescale_available(conn)
        say(f"database: {'TimescaleDB' if timescale else 'plain PostgreSQL'} schema")
        pending = plan(discover(), applied, timescale)
        for m in pending:
            say(f"database: applying {m.version:04d}_{m.name} ({m.variant})")
            _apply(conn, m)
        if not pending:
            say(f"database: up to date ({len(applied)} migrations applied)")
        return pending
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))


def timescale_available(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return row is not None


def _apply(conn: psycopg.Connection, m: Migration) -> None:
    record = (
        "INSERT INTO schema_migrations (version, name, variant, checksum) VALUES (%s, %s, %s, %s)",
        (m.version, m.name, m.variant, m.checksum),
    )
    try:
        if m.transactional:
            with conn.transaction():
                conn.execute(m.sql.encode())
                conn.execute(*record)
        else:
            for statement in m.statements():
                conn.execute(statement.encode())
            conn.execute(*record)
    except psycopg.Error as exc:
        msg = f"migration {m.version:04d}_{m.name} ({m.variant}) failed: {exc}"
        raise MigrationError(msg) from exc
