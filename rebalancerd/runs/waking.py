"""When the loop wakes: a sleep until a wall-clock instant that notices clock steps, and the
warm-up of the accounts due next, a few seconds before their slot."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from rebalancerd.aio import wait_first
from rebalancerd.exchange.protocol import Exchange

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
STEP_CHECK = 10.0  # seconds between looks at the wall clock while asleep (no I/O)
STEP_TOLERANCE = 1.0  # a wall-clock jump larger than this (seconds) is a step
WARM_AHEAD = 5.0  # seconds before a due slot at which its account's exchange is warmed


def clock_offset(clock: Clock) -> float:
    """Wall clock minus monotonic clock, in seconds: constant unless the wall clock steps."""
    return clock().timestamp() - time.monotonic()


async def sleep_until(
    deadline: datetime,
    clock: Clock,
    *events: asyncio.Event,
    check_every: float = STEP_CHECK,
) -> None:
    """Return once the wall clock reads `deadline`, an event is set, or the wall clock steps.

    asyncio sleeps on the monotonic clock, so a sleep of "deadline - now" overshoots by as much
    as the wall clock jumps forward meanwhile (NTP correction, resumed VM); looking at the wall
    clock every `check_every` seconds bounds that lateness. A backward step also returns at once:
    the caller re-plans from the new reading rather than waking an hour early or late.
    """
    start = clock_offset(clock)
    while True:
        left = (deadline - clock()).total_seconds()
        if left <= 0:
            return
        await wait_first(*events, timeout=min(left, check_every))
        if any(event.is_set() for event in events):
            return
        step = clock_offset(clock) - start
        if abs(step) > STEP_TOLERANCE:
            log.warning("[Scheduler] The wall clock stepped by %+.0fs; re-planning", step)
            return


class Warmup:
    """Warms each due account's exchange once per slot, `ahead` seconds before that slot."""

    def __init__(self, exchanges: Mapping[str, Exchange], ahead: float = WARM_AHEAD) -> None:
        self.exchanges = exchanges
        self.ahead = timedelta(seconds=ahead)
        self._warmed: dict[str, datetime] = {}  # account -> the slot it was warmed for
        self._tasks: set[asyncio.Task[None]] = set()

    def wake_at(self, due: datetime | None, now: datetime) -> datetime | None:
        """When the loop should wake to warm the accounts due at `due` (None: not needed)."""
        if due is None or due - self.ahead <= now:
            return None
        return due - self.ahead

    async def warm_due(
        self,
        due: datetime | None,
        now: datetime,
        due_accounts: Callable[[datetime], Awaitable[list[tuple[str, datetime]]]],
    ) -> int:
        """Start warming the accounts whose slot falls within `ahead`; how many were started."""
        if due is None or not now < due <= now + self.ahead:
            return 0
        started = 0
        for account, slot in await due_accounts(now + self.ahead):
            exchange = self.exchanges.get(account)
            if exchange is None or self._warmed.get(account) == slot:
                continue
            self._warmed[account] = slot
            task = asyncio.create_task(_warm(account, exchange), name=f"warm-{account}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def close(self) -> None:
        """Cancel warm-ups still going (shutdown)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _warm(account: str, exchange: Exchange) -> None:
    try:
        await exchange.warm()
    except Exception as exc:  # warm() never raises by contract; a bug in it must not spread
        log.warning("[Scheduler] Warming account %s failed: %r", account, exc)
