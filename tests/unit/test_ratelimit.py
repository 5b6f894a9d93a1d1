"""The client's model of Kraken's counters, with a manual clock: no sleeping."""

from __future__ import annotations

import asyncio

import pytest

from rebalancerd.exchange.kraken.ratelimit import TIERS, DecayingCounter, RateLimiter, rest_cost
from tests.fake_kraken_book import Counter


class ManualClock:
    """A clock that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("tier", "rest_max", "rest_decay", "trade_max", "trade_decay"),
    [
        ("starter", 15, 0.33, 60, 1.0),
        ("intermediate", 20, 0.5, 125, 2.34),
        ("pro", 20, 1.0, 180, 3.75),
    ],
)
def test_tier_table(
    tier: str, rest_max: float, rest_decay: float, trade_max: float, trade_decay: float
) -> None:
    limits = TIERS[tier]
    assert (limits.rest_max, limits.rest_decay, limits.trade_max, limits.trade_decay) == (
        rest_max,
        rest_decay,
        trade_max,
        trade_decay,
    )


@pytest.mark.parametrize(
    ("method", "cost"),
    [
        ("BalanceEx", 1),
        ("QueryOrders", 1),
        ("Ledgers", 2),
        ("TradesHistory", 2),
        ("AddOrder", 0),
        ("CancelOrder", 0),
    ],
)
def test_rest_costs(method: str, cost: float) -> None:
    assert rest_cost(method) == cost


def test_counter_decays_linearly_and_never_below_zero() -> None:
    counter = DecayingCounter(limit=15, decay=0.5)
    counter.add(10, now=0.0)
    assert counter.level(4.0) == pytest.approx(8.0)
    assert counter.level(100.0) == 0.0
    assert counter.wait_for(1, now=0.0) == 0.0
    counter.add(5, now=0.0)
    assert counter.wait_for(1, now=0.0) == pytest.approx(2.0)  # (15 + 1 - 15) / 0.5


async def test_starter_burst_waits_exactly_as_kraken_decays() -> None:
    clock = ManualClock()
    limiter = RateLimiter("starter", clock=clock, sleep=clock.sleep, headroom=0)
    for _ in range(15):
        await limiter.acquire("BalanceEx")
    assert clock.slept == []  # 15 fit at once
    await limiter.acquire("BalanceEx")
    assert clock.now == pytest.approx(1 / 0.33)  # the 16th waits for one unit of decay
    for _ in range(10):
        await limiter.acquire("BalanceEx")
    assert clock.now == pytest.approx(11 / 0.33)


async def test_headroom_keeps_a_margin_below_the_limit() -> None:
    clock = ManualClock()
    limiter = RateLimiter("starter", clock=clock, sleep=clock.sleep, headroom=1)
    for _ in range(14):
        await limiter.acquire("OpenOrders")
    assert clock.slept == []
    await limiter.acquire("OpenOrders")
    assert clock.now > 0


async def test_heavy_calls_cost_two() -> None:
    clock = ManualClock()
    limiter = RateLimiter("pro", clock=clock, sleep=clock.sleep, headroom=0)
    for _ in range(10):
        await limiter.acquire("Ledgers")
    assert clock.slept == []
    await limiter.acquire("Ledgers")
    assert clock.now == pytest.approx(2.0)  # pro decays 1/s


async def test_orders_use_a_per_pair_trading_counter() -> None:
    clock = ManualClock()
    limiter = RateLimiter("starter", clock=clock, sleep=clock.sleep, headroom=0)
    for _ in range(60):
        await limiter.acquire("AddOrder", "XXBTZEUR")
    for _ in range(15):
        await limiter.acquire("BalanceEx")  # the REST counter is untouched by orders
    await limiter.acquire("AddOrder", "XETHZEUR")  # another pair has its own counter
    assert clock.slept == []
    await limiter.acquire("AddOrder", "XXBTZEUR")
    assert clock.now == pytest.approx(1.0)  # starter trading decay 1/s


async def test_saturate_after_a_rate_limit_reply() -> None:
    clock = ManualClock()
    limiter = RateLimiter("intermediate", clock=clock, sleep=clock.sleep, headroom=0)
    limiter.saturate("BalanceEx")
    await limiter.acquire("BalanceEx")
    assert clock.now == pytest.approx(1 / 0.5)


async def test_concurrent_acquirers_never_exceed_the_limit() -> None:
    clock = ManualClock()
    limiter = RateLimiter("starter", clock=clock, sleep=clock.sleep, headroom=0)
    times: list[float] = []

    async def call() -> None:
        await limiter.acquire("BalanceEx")
        times.append(clock.now)

    await asyncio.gather(*(call() for _ in range(30)))
    # Replay the fake Kraken's own counter (separate code) over the call times.
    kraken = Counter(limit=15 + 1e-9, decay=0.33)
    assert all(kraken.try_add(1, at) for at in sorted(times))
