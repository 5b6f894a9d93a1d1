"""Metadata and fee caches: known values never wait on Kraken; refreshes run owned, in the back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from rebalancerd.exchange.kraken.background import Background
from rebalancerd.exchange.kraken.fees import DEFAULT_TAKER_FEE, FALLBACK_FEE_TTL, FeeRates
from rebalancerd.exchange.kraken.meta import RETRY_PAUSE, Cached
from rebalancerd.exchange.protocol import RetryableError


class Clock:
    """Monotonic time that moves only when the test (or a sleep) says so."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Source:
    """A fetch that counts its calls, returns 1, 2, 3 ..., and can be held or made to fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> int:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RetryableError("Kraken is down", "EService:Unavailable")
        return self.calls


@pytest.fixture
async def background() -> AsyncIterator[Background]:
    owner = Background("test")
    yield owner
    await owner.close()


def cached(source: Source, clock: Clock, background: Background) -> Cached[int]:
    return Cached("Assets", source, ttl=300, clock=clock, background=background, max_age=3600)


async def test_fetched_once_then_served_within_ttl(background: Background) -> None:
    clock, source = Clock(), Source()
    cache = cached(source, clock, background)
    assert [await cache.get() for _ in range(3)] == [1, 1, 1]
    clock.now = 299.0
    assert await cache.get() == 1
    assert source.calls == 1 and not background.running("Assets")


async def test_concurrent_first_callers_share_one_fetch(background: Background) -> None:
    source = Source()
    cache = cached(source, Clock(), background)
    assert await asyncio.gather(*(cache.get() for _ in range(10))) == [1] * 10
    assert source.calls == 1


async def test_past_ttl_the_stale_value_is_served_while_one_refresh_runs(
    background: Background,
) -> None:
    clock, source = Clock(), Source()
    cache = cached(source, clock, background)
    await cache.get()
    clock.now = 301.0
    source.gate = asyncio.Event()  # the refresh hangs: no caller may wait for it
    assert await asyncio.gather(*(cache.get() for _ in range(5))) == [1] * 5
    await asyncio.sleep(0)
    assert background.running("Assets") and source.calls == 2  # one refresh, not five
    source.gate.set()
    await background.wait()
    assert await cache.get() == 2 and source.calls == 2


async def test_past_max_age_the_value_is_fetched_while_the_caller_waits(
    background: Background,
) -> None:
    clock, source = Clock(), Source()
    cache = cached(source, clock, background)
    await cache.get()
    clock.now = 3600.0
    assert await cache.get() == 2
    assert source.calls == 2 and not background.running("Assets")


async def test_a_failed_refresh_is_logged_keeps_the_value_and_pauses(
    background: Background, caplog: pytest.LogCaptureFixture
) -> None:
    clock, source = Clock(), Source()
    cache = cached(source, clock, background)
    await cache.get()
    clock.now = 301.0
    source.fail = True
    assert await cache.get() == 1
    await background.wait()
    assert "EService:Unavailable" in caplog.text and "Kraken is down" in caplog.text
    clock.now += RETRY_PAUSE - 1
    assert await cache.get() == 1
    assert not background.running("Assets") and source.calls == 2  # no retry within the pause
    clock.now += 1
    source.fail = False
    assert await cache.get() == 1
    await background.wait()
    assert await cache.get() == 3


async def test_a_failed_first_fetch_raises_to_the_caller(background: Background) -> None:
    source = Source()
    source.fail = True
    with pytest.raises(RetryableError):
        await cached(source, Clock(), background).get()


async def test_warm_fetches_only_what_is_missing_or_past_ttl(background: Background) -> None:
    clock, source = Clock(), Source()
    cache = cached(source, clock, background)
    await cache.warm()
    await cache.warm()
    assert source.calls == 1
    clock.now = 300.0
    await cache.warm()
    assert source.calls == 2 and await cache.get() == 2


async def test_close_cancels_running_tasks_and_refuses_new_ones() -> None:
    owner = Background("test")
    hang = asyncio.Event()
    owner.start("hang", hang.wait)
    owner.start("hang", hang.wait)  # one per name
    assert owner.running("hang")
    await owner.close()
    assert not owner.running("hang")
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "test hang"]
    owner.start("later", hang.wait)
    assert not owner.running("later")


# --- fees ------------------------------------------------------------------------------------


class Key:
    """The key's activity as FeeRates sees it: seconds since its last private call."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.last_call = 0.0
        self.busy = False

    def quiet_for(self) -> float:
        return 0.0 if self.busy else self.clock() - self.last_call


class TradeVolume:
    """A fetch of fee rates that records which pairs it was asked for."""

    def __init__(self, key: Key, rates: dict[str, str]) -> None:
        self.key = key
        self.rates = {pair: Decimal(rate) for pair, rate in rates.items()}
        self.asked: list[list[str]] = []
        self.fail = False

    async def __call__(self, pairs: list[str]) -> dict[str, Decimal]:
        self.asked.append(pairs)
        self.key.last_call = self.key.clock()
        if self.fail:
            raise RetryableError("Kraken is down", "EService:Unavailable")
        return {pair: rate for pair, rate in self.rates.items() if pair in pairs}


def fee_rates(
    background: Background, rates: dict[str, str] | None = None
) -> tuple[FeeRates, TradeVolume, Key, Clock]:
    clock = Clock()
    key = Key(clock)
    fetch = TradeVolume(key, rates if rates is not None else {"XXBTZEUR": "0.0026"})
    fees = FeeRates(
        fetch, key.quiet_for, background, ttl=3600, clock=clock, sleep=clock.sleep, quiet=5.0
    )
    return fees, fetch, key, clock


async def test_unknown_fee_is_the_default_at_once_and_fetched_once_the_key_is_quiet(
    background: Background,
) -> None:
    fees, fetch, key, clock = fee_rates(background)
    fees.track(["XETHZEUR"])
    key.busy = True  # a run is using the key
    assert fees.rate("XXBTZEUR") == DEFAULT_TAKER_FEE == Decimal("0.0040")
    for _ in range(10):
        await asyncio.sleep(0)
    assert fetch.asked == [] and clock.now >= 5.0  # it waited, never jumped the queue
    key.busy = False
    key.last_call = clock.now
    await background.wait()
    assert fetch.asked == [["XETHZEUR", "XXBTZEUR"]]  # one call for every pair seen
    assert fees.rate("XXBTZEUR") == Decimal("0.0026")


async def test_a_stale_fee_is_served_while_refreshed(background: Background) -> None:
    fees, fetch, _, clock = fee_rates(background)
    await fees.warm()  # nothing seen yet: nothing to ask
    assert fetch.asked == []
    fees.track(["XXBTZEUR"])
    await fees.warm()
    await fees.warm()
    assert len(fetch.asked) == 1
    clock.now = 3600.0 + 10.0
    fetch.rates["XXBTZEUR"] = Decimal("0.0020")
    assert fees.rate("XXBTZEUR") == Decimal("0.0026")
    await background.wait()
    assert fees.rate("XXBTZEUR") == Decimal("0.0020") and len(fetch.asked) == 2


async def test_a_failed_or_unanswered_fee_look_up_waits_before_the_next(
    background: Background, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fees, fetch, _, clock = fee_rates(background, {})
    fetch.fail = True
    clock.now = 10.0  # the key has been quiet for 10 s
    assert fees.rate("XXBTZEUR") == DEFAULT_TAKER_FEE
    await background.wait()
    assert "background TradeVolume failed" in caplog.text
    assert fees.rate("XXBTZEUR") == DEFAULT_TAKER_FEE
    assert not background.running("TradeVolume") and len(fetch.asked) == 1
    clock.now += FALLBACK_FEE_TTL
    fetch.fail = False  # answers, but not for this pair
    fees.rate("XXBTZEUR")
    await background.wait()
    assert "fee of XXBTZEUR unknown" in caplog.text and len(fetch.asked) == 2
    fees.rate("XXBTZEUR")
    assert not background.running("TradeVolume")
