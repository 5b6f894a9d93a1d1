"""The connection pool: what a query through it costs, and what a release still undoes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from rebalancerd.store.embedded import connect_pool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(database_url, timeout=10, size=1)  # one connection: one log
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_query_through_the_pool_is_one_statement(pool: asyncpg.Pool) -> None:
    """Releasing a connection sends nothing (asyncpg's default reset is a round trip more)."""
    sent: list[str] = []
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda record: sent.append(record.query))
    for _ in range(3):
        assert await pool.fetchval("SELECT 1") == 1
    async with pool.acquire() as conn:
        await conn.execute("SELECT 2")
    assert sent == ["SELECT 1"] * 3 + ["SELECT 2"]


async def test_a_transaction_left_open_is_rolled_back_at_release(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("BEGIN")
        await conn.execute("CREATE TABLE left_open (x int)")
    async with pool.acquire() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT to_regclass('left_open')") is None


async def test_settings_made_local_do_not_outlive_their_transaction(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")
    assert await pool.fetchval("SHOW synchronous_commit") == "on"
