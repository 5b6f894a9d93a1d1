"""The connection pool: what a query through it costs, and what a release still undoes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from rebalancerd.store.embedded import connect_pool
from rebalancerd.store.repository import Store


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


async def test_the_listener_learns_at_once_that_its_connection_closed(store: Store) -> None:
    """No polling: a listener whose backend is killed raises well within its probe interval."""
    woken, until = asyncio.Event(), asyncio.Event()
    listening = asyncio.create_task(store.listen(woken.set, until))
    try:
        await asyncio.wait_for(woken.wait(), 10)  # it calls back once it listens
        pid = await store.pool.fetchval(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        assert pid is not None
        killed = time.monotonic()
        await store.pool.execute("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(asyncpg.InterfaceError):
            await asyncio.wait_for(listening, 30)
        assert time.monotonic() - killed < 2.5  # it took a probe, every 5 s, to see it before
    finally:
        until.set()
        if not listening.done():
            await listening
