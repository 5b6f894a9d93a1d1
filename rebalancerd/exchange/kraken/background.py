"""Refreshes that run off a run's critical path: owned, one per name, logged, cancelled on close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from rebalancerd.exchange.protocol import ExchangeError

logger = logging.getLogger(__name__)


def describe(error: BaseException) -> str:
    """An error for a log line: message and Kraken's code, or type and message.

    Exchange errors carry no request (and so no API key): the transport drops library errors'
    context on purpose.
    """
    if isinstance(error, ExchangeError):
        return f"{error} ({error.code})" if error.code else str(error)
    return f"{type(error).__name__}: {error}"


class Background:
    """The background tasks of one owner (a client or a market); a failure is logged, never raised.

    A refresh that fails only means the next run uses what is cached, or fetches it itself, so
    nothing here may raise into a run. `close()` cancels and awaits every task: none outlives
    its owner.
    """

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def start(self, name: str, job: Callable[[], Awaitable[object]]) -> None:
        """Run `job` in the background, unless one of that name runs already or we are closed."""
        if self._closed or name in self._tasks:
            return
        task = asyncio.create_task(self._guarded(name, job), name=f"{self._owner} {name}")
        self._tasks[name] = task
        task.add_done_callback(lambda done: self._forget(name, done))

    def running(self, name: str) -> bool:
        """True while a task of that name runs."""
        return name in self._tasks

    def _forget(self, name: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(name) is task:
            del self._tasks[name]

    async def _guarded(self, name: str, job: Callable[[], Awaitable[object]]) -> None:
        try:
            await job()
        except Exception as exc:  # logged, never raised: a refresh must never fail a run
            logger.warning("kraken %s: background %s failed: %s", self._owner, name, describe(exc))

    async def wait(self) -> None:
        """Until the tasks running now (and any they start) are done: for tests and benchmarks."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        """Cancel every task and wait for it; start() does nothing afterwards."""
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
