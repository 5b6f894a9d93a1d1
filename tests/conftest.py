"""A real PostgreSQL for every test: $DATABASE_URL, or one embedded server per session.

Each test gets a fresh database cloned from a template that was migrated once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from rebalancerd.store.embedded import EmbeddedPostgres, connect_pool
from rebalancerd.store.migrations import load_migrations, migrate
from rebalancerd.store.repository import Store

TEMPLATE = "rebalancerd_test_template"


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run set-up SQL to completion, even when called while a test's event loop runs."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def dsn_for(base: str, dbname: str) -> str:
    """The same server, another database."""
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path="/" + dbname))


async def _admin(base: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn_for(base, "postgres"))
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def _build_template(base: str) -> None:
    await _admin(
        base, f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)", f"CREATE DATABASE {TEMPLATE}"
    )
    conn = await asyncpg.connect(dsn_for(base, TEMPLATE))
    try:
        await migrate(conn, load_migrations())
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str]:
    """The server all test databases live on."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    directory = Path(tempfile.mkdtemp(prefix="rbd-pg-"))  # short: it holds the unix socket
    server = EmbeddedPostgres(directory)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(pg_base_url: str) -> str:
    run_sync(_build_template(pg_base_url))
    return TEMPLATE


@pytest.fixture
def empty_database_url(pg_base_url: str) -> Iterator[str]:
    """A fresh database with no tables at all (for migration tests)."""
    name = "t_" + uuid.uuid4().hex[:16]
    run_sync(_admin(pg_base_url, f"CREATE DATABASE {name}"))
    yield dsn_for(pg_base_url, name)
    run_sync(_admin(pg_base_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def database_url(pg_base_url: str, pg_template: str) -> Iterator[str]:
    """A fresh, fully migrated database for this test."""
    name = "t_" + uuid.uuid4().hex[:16]
    run_sync(_admin(pg_base_url, f"CREATE DATABASE {name} TEMPLATE {pg_template}"))
    yield dsn_for(pg_base_url, name)
    run_sync(_admin(pg_base_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    pool = await connect_pool(database_url, timeout=10)
    s = Store(pool)
    try:
        yield s
    finally:
        await s.close()
