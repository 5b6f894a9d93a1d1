"""Client-side model of Kraken's per-key call counters, so bursts wait instead of failing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class TierLimits:
    """Kraken's limits for one verification tier (REST counter and per-pair trading counter)."""

    name: str
    rest_max: float
    rest_decay: float  # counter units per second
    trade_max: float
    trade_decay: float


TIERS: dict[str, TierLimits] = {
    "starter": TierLimits("starter", rest_max=15, rest_decay=0.33, trade_max=60, trade_decay=1.0),
    "intermediate": TierLimits("intermediate", 20, 0.5, 125, 2.34),
    "pro": TierLimits("pro", 20, 1.0, 180, 3.75),
}

# Documented as +2; a newer support page (unconfirmed) says +4 and adds ClosedOrders. A
# rate-limit reply saturates the model anyway, so a low guess costs one backoff, not a ban.
HEAVY_CALLS = frozenset({"Ledgers", "QueryLedgers", "TradesHistory", "QueryTrades"})
# These use the per-pair trading counter instead of the REST counter.
TRADING_COSTS = {"AddOrder": 1.0, "CancelOrder": 8.0, "AmendOrder": 4.0}  # worst cases (age < 5 s)


def rest_cost(method: str) -> float:
    """What one call adds to the REST counter (0 for trading calls)."""
    if method in TRADING_COSTS:
        return 0.0
    return 2.0 if method in HEAVY_CALLS else 1.0


class DecayingCounter:
    """A counter that goes up by each call's cost and down linearly with time, never below 0."""

    def __init__(self, limit: float, decay: float) -> None:
        self.limit = limit
        self.decay = decay
        self._value = 0.0
        self._at = 0.0

    def level(self, now: float) -> float:
        """The counter's value at `now`."""
        return max(0.0, self._value - (now - self._at) * self.decay)

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until `cost` more fits under the limit (0 if it fits now)."""
        excess = self.level(now) + cost - self.limit
        return max(0.0, excess / self.decay)

    def add(self, cost: float, now: float) -> None:
        """Count a call of `cost` made at `now`."""
        self._value = self.level(now) + cost
        self._at = now

    def saturate(self, now: float) -> None:
        """Assume the exchange's counter is full (it just said so)."""
        self._value = max(self.level(now), self.limit)
        self._at = now


class RateLimiter:
    """Per-key limiter: `await acquire(method, pair)` before each private call."""

    def __init__(
        self,
        tier: str | TierLimits = "starter",
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        headroom: float = 1.0,
    ) -> None:
        self.tier = tier if isinstance(tier, TierLimits) else TIERS[tier]
        self._clock = clock
        self._sleep = sleep
        # Headroom absorbs the gap between our clock and Kraken's (latency jitter, step decay).
        self._headroom = headroom
        self._rest = DecayingCounter(self.tier.rest_max - headroom, self.tier.rest_decay)
        self._trade: dict[str, DecayingCounter] = {}

    def _counter(self, method: str, pair: str | None) -> tuple[DecayingCounter, float]:
        if method not in TRADING_COSTS:
            return self._rest, rest_cost(method)
        key = pair or "*"
        if key not in self._trade:
            limit = self.tier.trade_max - self._headroom
            self._trade[key] = DecayingCounter(limit, self.tier.trade_decay)
        return self._trade[key], TRADING_COSTS[method]

    def reserve(self, method: str, pair: str | None = None, cost: float | None = None) -> float:
        """Count the call and return 0 if it may go now, else the seconds to wait first."""
        counter, default = self._counter(method, pair)
        cost = default if cost is None else cost
        now = self._clock()
        delay = counter.wait_for(cost, now)
        if delay == 0.0:
            counter.add(cost, now)
        return delay

    async def acquire(
        self, method: str, pair: str | None = None, cost: float | None = None
    ) -> None:
        """Wait until the call fits under Kraken's counter, then count it (`cost`: if known)."""
        while (delay := self.reserve(method, pair, cost)) > 0.0:
            logger.debug("rate limit: %s waits %.2fs", method, delay)
            await self._sleep(delay)

    def trading_room(self, pair: str) -> float:
        """Points the pair's trading counter can take now (our side of the headroom)."""
        counter, _ = self._counter("AddOrder", pair)
        return counter.limit - counter.level(self._clock())

    def saturate(self, method: str, pair: str | None = None) -> None:
        """Record that Kraken refused a call for its rate limit, so the next ones wait."""
        counter, _ = self._counter(method, pair)
        counter.saturate(self._clock())
