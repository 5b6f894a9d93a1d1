"""Migrations: fresh, idempotent, edited-file refusal, unknown versions, concurrent migrators."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from rebalancerd.store.migrations import MigrationError, load_migrations, migrate


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


def test_files_are_numbered_and_ordered() -> None:
    migrations = load_migrations()
    versions = [m.version for m in migrations]
    # Strictly increasing, not contiguous: features land their own numbers in any order.
    assert versions == sorted(set(versions)) and versions[0] == 1
    assert migrations[0].name == "0001_init.sql"


async def test_fresh_database_gets_every_table(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        applied = await migrate(conn, load_migrations())
        assert applied == [m.name for m in load_migrations()]
        assert {
            "portfolios",
            "rebalance_history",
            "rebalance_runs",
            "order_intents",
            "scheduler_state",
            "schema_migrations",
        } <= await _tables(conn)
        money = await conn.fetch(
            """SELECT table_name, column_name, data_type FROM information_schema.columns
                WHERE column_name IN ('rebalance_threshold', 'portfolio_value',
                                      'total_value_traded', 'volume', 'cost', 'fee')"""
        )
        assert money and all(r["data_type"] == "numeric" for r in money)
    finally:
        await conn.close()


async def test_second_run_applies_nothing(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, load_migrations())
        assert await migrate(conn, load_migrations()) == []
        count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(load_migrations())
    finally:
        await conn.close()


async def test_edited_migration_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    source = Path(__file__).parents[2] / "sql"
    for f in source.glob("*.sql"):
        shutil.copy(f, tmp_path / f.name)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, load_migrations(tmp_path))
        first = tmp_path / "0001_init.sql"
        first.write_text(first.read_text() + "\n-- a later edit\n")
        with pytest.raises(MigrationError, match=r"0001_init\.sql was edited"):
            await migrate(conn, load_migrations(tmp_path))
    finally:
        await conn.close()


async def test_unknown_applied_version_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    source = Path(__file__).parents[2] / "sql"
    for f in source.glob("*.sql"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "0099_future.sql").write_text("CREATE TABLE future (id int);")
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, load_migrations(tmp_path))
        (tmp_path / "0099_future.sql").unlink()
        with pytest.raises(
            MigrationError, match=r"0099_future\.sql that this version does not know"
        ):
            await migrate(conn, load_migrations(tmp_path))
    finally:
        await conn.close()


async def test_failed_migration_leaves_nothing_half_applied(
    empty_database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE a (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE b (id int); SELECT * FROM nowhere;")
    conn = await asyncpg.connect(empty_database_url)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await migrate(conn, load_migrations(tmp_path))
        assert "b" not in await _tables(conn)
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 1
    finally:
        await conn.close()


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share a version"):
        load_migrations(tmp_path)


async def test_concurrent_migrators_apply_once(empty_database_url: str) -> None:
    conns = [await asyncpg.connect(empty_database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c, load_migrations()) for c in conns))
        applied = [name for r in results for name in r]
        assert sorted(applied) == sorted(m.name for m in load_migrations())
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(load_migrations())
    finally:
        for c in conns:
            await c.close()
