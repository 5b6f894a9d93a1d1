"""Waiting for the first of several things (events, tasks, a timeout) without polling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any


async def wait_first(
    *events: asyncio.Event,
    tasks: Collection[asyncio.Task[Any]] = (),
    timeout: float | None = None,
) -> set[asyncio.Task[Any]]:
    """Return once any event is set or any task ends, or after `timeout`; the tasks that ended.

    The tasks are only watched: they are neither cancelled nor awaited for their result.
    """
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(
            [*waiters, *tasks], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return {task for task in tasks if task in done}


@asynccontextmanager
async def any_of(*events: asyncio.Event) -> AsyncIterator[asyncio.Event]:
    """An event set as soon as any of `events` is, kept up to date inside the block."""
    combined = asyncio.Event()

    async def follow() -> None:
        await wait_first(*events)
        combined.set()

    watcher = asyncio.create_task(follow())
    try:
        yield combined
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
