"""The base every store part builds on: the pool, the named queries of queries.sql, and which
errors mean "the database could not serve this"."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from importlib import resources

import asyncpg

from rebalancerd.aio import wait_first

# Unreachable, restarting, timed out or failing the statement: the caller retries later (the
# loop), answers 503 (the API) or reports the database down (/healthz); it never crashes.
DB_ERRORS = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError)
NOTIFY_CHANNEL = "rebalancerd"
# The listener learns of a closed connection at once (asyncpg's termination callback); a query
# this often finds one whose server vanished without closing it. Idle, that query is the
# daemon's main cost (it ran every 5 s before).
PROBE_EVERY = 60.0
_BLOCK = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load_queries() -> dict[str, str]:
    """Parse queries.sql once into {name: sql}."""
    text = resources.files("rebalancerd.store").joinpath("queries.sql").read_text()
    parts = _BLOCK.split(text)[1:]
    return {name: sql.strip() for name, sql in zip(parts[::2], parts[1::2], strict=True)}


QUERIES = load_queries()


class Database:
    """A pool that runs the named queries; the store's parts subclass it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def ping(self) -> bool:
        """True when the database answers."""
        try:
            return bool(await self.pool.fetchval("SELECT true", timeout=2))
        except DB_ERRORS:
            return False

    async def listen(self, on_notify: Callable[[], None], until: asyncio.Event) -> None:
        """Call `on_notify` now and on every NOTIFY until `until` is set or the connection ends.

        Raises DB_ERRORS when the connection is lost; the caller listens again once it is back.
        """

        def notified(*_args: object) -> None:
            on_notify()

        lost = asyncio.Event()  # set by asyncpg the moment the connection closes

        def closed(_conn: object) -> None:
            lost.set()

        async with self.pool.acquire() as conn:
            await conn.add_listener(NOTIFY_CHANNEL, notified)
            conn.add_termination_listener(closed)
            try:
                on_notify()  # anything may have changed while nobody listened
                while not until.is_set() and not conn.is_closed():
                    await wait_first(until, lost, timeout=PROBE_EVERY)
                    if not until.is_set() and not lost.is_set():
                        # A connection whose server vanished without closing it shows here.
                        await conn.fetchval("SELECT 1", timeout=5)
            finally:
                conn.remove_termination_listener(closed)
                if not conn.is_closed():
                    await conn.remove_listener(NOTIFY_CHANNEL, notified)
        if lost.is_set() and not until.is_set():
            raise asyncpg.InterfaceError("the notification connection closed")

    async def notify(self, what: str) -> None:
        """Wake every daemon's loop (and API caches): `what` changed."""
        await self.pool.execute(QUERIES["notify"], what)


def columns(rows: Iterable[Sequence[object]], width: int) -> list[list[object]]:
    """Rows as `width` column lists, one array parameter each (INSERT ... SELECT FROM unnest)."""
    out: list[list[object]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(out, row, strict=True):
            column.append(value)
    return out
