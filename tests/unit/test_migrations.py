from __future__ import annotations

from pathlib import Path

import pytest

from creatorpulse.sinks.migrate import Migration, MigrationError, discover, plan


def test_the_shipped_migrations_are_numbered_without_gaps_and_paired() -> None:
    migrations = discover()
    versions = sorted({m.version for m in migrations})
    assert versions == list(range(1, len(versions) + 1))
    for version in versions:
        variants = {m.variant for m in migrations if m.version == version}
        assert variants in ({"any"}, {"plain", "timescale"})


def test_both_rollup_variants_define_the_same_relations() -> None:
    plain, timescale = (next(m for m in discover() if m.version == 3 and m.variant == v)
                        for v in ("plain", "timescale"))
    for relation in ("metric_buckets_1h", "metric_buckets_1d"):
        assert relation in plain.sql and relation in timescale.sql
    assert not timescale.transactional and plain.transactional


def test_a_no_transaction_file_splits_into_statements() -> None:
    timescale = next(m for m in discover() if m.variant == "timescale")
    statements = timescale.statements()
    assert statements[0] == "CREATE EXTENSION IF NOT EXISTS timescaledb"
    assert sum(s.startswith("CREATE MATERIALIZED VIEW") for s in statements) == 2
    assert not any(s.startswith("--") or ";" in s for s in statements)


def m(version: int, variant: str = "any", sql: str = "SELECT 1") -> Migration:
    return Migration(version, f"step{version}", variant, sql)


def test_plan_on_an_empty_database_picks_the_servers_variant() -> None:
    migrations = [m(1), m(2, "plain"), m(2, "timescale"), m(3)]
    assert [(x.version, x.variant) for x in plan(migrations, {}, timescale=False)] == [
        (1, "any"), (2, "plain"), (3, "any")]
    assert [(x.version, x.variant) for x in plan(migrations, {}, timescale=True)] == [
        (1, "any"), (2, "timescale"), (3, "any")]


def test_plan_skips_what_is_applied() -> None:
    migrations = [m(1), m(2, "plain"), m(2, "timescale"), m(3)]
    applied = {1: ("any", m(1).checksum), 2: ("plain", m(2, "plain").checksum)}
    # TimescaleDB appearing later does not re-run step 2 in its other variant.
    assert [x.version for x in plan(migrations, applied, timescale=True)] == [3]


def test_editing_an_applied_migration_is_an_error() -> None:
    applied = {1: ("any", m(1, sql="SELECT 2").checksum)}
    with pytest.raises(MigrationError, match=r"0001_step1.*changed after it was applied"):
        plan([m(1)], applied, timescale=False)


def test_bad_file_names_and_unpaired_variants_are_errors(tmp_path: Path) -> None:
    (tmp_path / "1_short.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"1_short\.sql"):
        discover(tmp_path)
    (tmp_path / "1_short.sql").unlink()
    (tmp_path / "0001_only.plain.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="version 0001"):
        discover(tmp_path)
