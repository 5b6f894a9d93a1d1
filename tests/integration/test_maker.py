"""Maker execution (issue 16) against the fake Kraken over HTTP, with the real store.

Each order rests post-only at the touch with its committed client order id, follows the touch
with AmendOrder within the pair's trading counter, and after the timeout goes IOC within the
slippage cap; nothing is ever left resting and nothing is bought past the plan.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from rebalancerd.config import SchedulerSettings
from rebalancerd.exchange.kraken.client import KrakenClient, LookupPolicy, RetryPolicy
from rebalancerd.metrics import Metrics
from rebalancerd.runs.loop import Scheduler
from rebalancerd.runs.maker import MakerEngine
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import HistoryRecord, Portfolio
from tests.factories import make_portfolio
from tests.fake_kraken import FakeKraken, FastTime, Order

PAIR = "XXBTZEUR"
HALF_BTC = {"BTC": 50, "EUR": 50}  # an EUR-only account: one buy of BTC


class Rig:
    """A maker portfolio on its own fake account, its scheduler, and the fake.

    The fake, the client and the engine share one clock running `factor` times real time:
    timeouts, counter decay and order ages all pass faster, with the real maths.
    """

    def __init__(self, store: Store, fake: FakeKraken, clock: FastTime) -> None:
        self.store, self.fake, self.clock = store, fake, clock
        self.key, secret = fake.add_account({"ZEUR": "10000.0000"})
        self.client = KrakenClient(
            fake.url,
            self.key,
            secret,
            "starter",
            retry=RetryPolicy(attempts=2, base=0.01, cap=0.05),
            lookup=LookupPolicy(delays=(0.0, 0.05)),
            query_fill=False,
            timeout=2.0,
            clock=clock,
            sleep=clock.sleep,
        )
        self.metrics = Metrics()
        self.scheduler = Scheduler(
            SchedulerSettings(lease_seconds=30),
            store,
            {"default": self.client},
            self.metrics,
            owner="test:1:m",
        )
        self.scheduler.runs.executor.maker.engine = MakerEngine(store, clock=clock, poll=0.05)

    async def portfolio(self, **overrides: Any) -> Portfolio:
        values: dict[str, Any] = {
            "target_weights": HALF_BTC,
            "rebalance_threshold": Decimal(10),
            "execution_mode": "maker",
            "maker_timeout_seconds": 10,
            **overrides,
        }
        return await make_portfolio(self.store, **values)

    def start(self, portfolio: Portfolio) -> asyncio.Task[HistoryRecord | None]:
        return asyncio.create_task(self.scheduler.trigger(portfolio.id))

    def orders(self) -> list[Order]:
        return [o for o in self.fake.placed if o.account == self.key]

    def resting(self) -> list[Order]:
        return [o for o in self.fake.resting() if o.account == self.key]

    async def close(self) -> None:
        await self.client.close()
        await self.fake.stop()


async def make_rig(store: Store, factor: float) -> Rig:
    clock = FastTime(factor)
    fake = await FakeKraken(fee_rate=Decimal("0.004"), clock=clock).start()
    fake.venue.maker_fee_rate = Decimal("0.0025")
    fake.set_price(PAIR, "90000.0", "90010.0")
    return Rig(store, fake, clock)


async def until(
    check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 10
) -> None:
    """Poll a condition the system must reach, with a deadline (no sleep-and-hope)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def rig(store: Store) -> AsyncIterator[Rig]:
    made = await make_rig(store, 5)
    yield made
    await made.close()


@pytest.fixture
async def fast_rig(store: Store) -> AsyncIterator[Rig]:
    """20x: a 10 s maker timeout passes in half a second."""
    made = await make_rig(store, 20)
    yield made
    await made.close()


@pytest.fixture
async def real_time_rig(store: Store) -> AsyncIterator[Rig]:
    made = await make_rig(store, 1)
    yield made
    await made.close()


def assert_clean(rig: Rig) -> None:
    """Nothing resting, no rate-limit refusal, no client id placed twice."""
    assert rig.resting() == []
    assert rig.fake.errors("EOrder:Rate limit") == []
    ids = [o.cl_ord_id for o in rig.orders()]
    assert len(ids) == len(set(ids))


async def test_joins_the_touch_chases_with_amend_and_fills_at_the_maker_fee(rig: Rig) -> None:
    portfolio = await rig.portfolio()
    task = rig.start(portfolio)
    await until(lambda: bool(rig.resting()), "the order to rest")
    [order] = rig.resting()
    assert (order.side, order.ordertype, order.limit_price) == ("buy", "limit", Decimal("90000.0"))
    assert "post" in order.oflags.split(",")
    # The touch moves away: the same order (txid, client id) follows it by AmendOrder.
    rig.fake.set_price(PAIR, "90050.0", "90060.0")
    await until(lambda: order.limit_price == Decimal("90050.0"), "the amend to the new bid")
    assert order.misc == "amended" and rig.fake.calls("AmendOrder")[-1].params["post_only"]
    rig.fake.set_price(PAIR, "90040.0", "90050.0")  # a seller reaches our bid: filled there
    record = await asyncio.wait_for(task, 10)
    assert record is not None and record.success, record and record.errors
    [json] = record.orders
    assert await rig.store.open_runs() == []
    assert json["clientOrderId"] == order.cl_ord_id and json["txid"] == order.txid
    assert json["executionMode"] == "maker" and json["fallback"] is False
    assert json["placements"] == 2 and json["status"] == "filled"
    assert Decimal(json["avgPrice"]) == Decimal("90050.0")
    assert Decimal(json["fee"]) == (order.cost * Decimal("0.0025")).quantize(Decimal("0.00001"))
    assert Decimal(json["arrivalMid"]) == Decimal("90005.0")
    # 25 bps maker fee plus the chase: filled at 90050 against an arrival mid of 90005.
    assert Decimal(json["costBps"]) == record.execution_cost_bps == Decimal("30.00")
    metrics = rig.metrics.render().decode()
    assert 'rebalancerd_execution_cost_bps_count{mode="maker"} 1.0' in metrics
    assert 'rebalancerd_execution_cost_bps_bucket{le="30.0",mode="maker"} 1.0' in metrics
    assert_clean(rig)


async def test_partial_fill_then_timeout_sends_exactly_the_rest_as_ioc_within_the_cap(
    fast_rig: Rig,
) -> None:
    rig, fake = fast_rig, fast_rig.fake
    portfolio = await rig.portfolio()
    fake.venue.fill_fraction = Decimal("0.4")
    task = rig.start(portfolio)
    await until(lambda: bool(rig.resting()), "the order to rest")
    [resting] = rig.resting()
    fake.set_price(PAIR, "89990.0", "90000.0")  # crossed once: 40 % fills
    fake.set_price(PAIR, "90000.0", "90010.0")  # and the touch is back
    assert resting.volume_exec == (resting.volume * Decimal("0.4")).quantize(Decimal("1E-8"))
    record = await asyncio.wait_for(task, 10)
    assert record is not None and record.success, record and record.errors
    first, ioc = rig.orders()
    assert first is resting and first.status == "canceled"
    assert "post" not in ioc.oflags and ioc.ordertype == "limit"
    assert fake.calls("AddOrder")[-1].params["timeinforce"] == "IOC"
    # The cap: at most 50 bps through the mid, on the tick grid; the fill at the ask.
    assert ioc.limit_price == Decimal("90455.0")  # floor(90005 * 1.005 / 0.1) * 0.1
    assert ioc.price == Decimal("90010.0")
    # Exactly the plan: what rested filled plus what the IOC filled, never more.
    assert first.volume_exec + ioc.volume_exec == first.volume == ioc.volume + first.volume_exec
    [json] = record.orders
    assert json["fallback"] is True and json["status"] == "filled"
    assert Decimal(json["volumeExecuted"]) == first.volume
    assert_clean(rig)


async def test_fallback_beyond_the_cap_is_skipped_and_nothing_is_left(fast_rig: Rig) -> None:
    rig = fast_rig
    rig.fake.set_price(PAIR, "89400.0", "90700.0")  # 1.4 % spread: an IOC within 50 bps can't
    record = await asyncio.wait_for(rig.start(await rig.portfolio()), 10)
    assert record is not None
    [json] = record.orders
    assert json["status"] == "canceled" and json["volumeExecuted"] == "0"
    assert "skipped" in (json["error"] or "") and json["fallback"] is True
    [_rested, ioc] = rig.orders()
    assert ioc.limit_price == Decimal("90500.2") and ioc.volume_exec == 0
    assert_clean(rig)
    assert rig.fake.account(rig.key).balances["ZEUR"] == Decimal("10000.0000")


async def test_post_only_that_would_take_is_repriced_never_taken(rig: Rig) -> None:
    rig.fake.inject("AddOrder", error="EOrder:Post only order")  # the book moved under us
    task = rig.start(await rig.portfolio())
    await until(lambda: bool(rig.resting()), "the order to rest after the refusal")
    calls = rig.fake.calls("AddOrder")
    assert len(calls) == 2 and calls[0].params["cl_ord_id"] == calls[1].params["cl_ord_id"]
    assert all("post" in c.params["oflags"] for c in calls)
    rig.fake.set_price(PAIR, "89990.0", "90000.0")
    record = await asyncio.wait_for(task, 10)
    assert record is not None and record.success
    assert [o.price for o in rig.orders()] == [Decimal("90000.0")]  # the maker price, no taker
    assert_clean(rig)


async def test_fake_refuses_a_post_only_order_that_would_take(rig: Rig) -> None:
    from rebalancerd.exchange.maker import LimitRequest, would_take
    from rebalancerd.exchange.protocol import RejectedError

    request = LimitRequest(PAIR, "buy", Decimal("0.001"), Decimal("90010.0"), "0" * 32)
    with pytest.raises(RejectedError) as refused:
        await rig.client.place_limit(request)
    assert would_take(refused.value) and rig.orders() == []


async def test_a_fast_chase_never_exceeds_the_trading_counter(real_time_rig: Rig) -> None:
    rig = real_time_rig
    task = rig.start(await rig.portfolio(maker_timeout_seconds=60))
    await until(lambda: bool(rig.resting()), "the order to rest")
    [order] = rig.resting()
    counter = rig.fake.account(rig.key).trade_counter(PAIR)
    peak = 0.0
    bid = Decimal("90000.0")
    deadline = time.monotonic() + 30
    # The touch runs away faster than the counter decays (young amends cost 4, decay is 1/s).
    while len(rig.fake.calls("AmendOrder")) < 14 and time.monotonic() < deadline:
        bid += 10
        rig.fake.set_price(PAIR, bid, bid + 10)
        await asyncio.sleep(0.06)
        peak = max(peak, counter.value)
    assert len(rig.fake.calls("AmendOrder")) >= 14
    # Starter: 60 points. The engine stops chasing while a cancel (8) would not fit after.
    assert peak <= 60 - 8
    rig.fake.set_price(PAIR, order.limit_price - 10, order.limit_price)  # type: ignore[operator]
    record = await asyncio.wait_for(task, 15)
    assert record is not None and record.success
    assert_clean(rig)


async def test_market_mode_is_unchanged_and_reports_its_cost(rig: Rig) -> None:
    record = await rig.scheduler.trigger((await rig.portfolio(execution_mode="market")).id)
    assert record is not None and record.success
    [order] = rig.orders()
    assert order.ordertype == "market" and order.price == Decimal("90010.0")
    [json] = record.orders
    assert json["executionMode"] == "market" and json["placements"] == 0
    assert Decimal(json["costBps"]) > Decimal("40")  # taker fee + half the spread


async def test_where_amend_is_refused_it_cancels_and_rests_anew_under_a_derived_id(
    rig: Rig,
) -> None:
    from rebalancerd.runs.chase import child_id

    rig.fake.inject("AmendOrder", error="EGeneral:Invalid arguments:amend")
    task = rig.start(await rig.portfolio())
    await until(lambda: bool(rig.resting()), "the order to rest")
    [first] = rig.resting()
    rig.fake.set_price(PAIR, "90050.0", "90060.0")
    await until(lambda: len(rig.orders()) == 2 and bool(rig.resting()), "a new order at the bid")
    [second] = rig.resting()
    assert first.status == "canceled" and second.limit_price == Decimal("90050.0")
    assert first.cl_ord_id is not None and second.cl_ord_id == child_id(first.cl_ord_id, 1)
    rig.fake.set_price(PAIR, "90040.0", "90050.0")
    record = await asyncio.wait_for(task, 10)
    assert record is not None and record.success, record and record.errors
    [json] = record.orders
    assert json["clientOrderId"] == first.cl_ord_id and json["placements"] == 2
    assert Decimal(json["volumeExecuted"]) == first.volume == second.volume
    assert_clean(rig)


async def test_an_order_that_could_not_be_cancelled_is_cancelled_by_the_next_run(
    fast_rig: Rig,
) -> None:
    rig = fast_rig
    portfolio = await rig.portfolio()
    task = rig.start(portfolio)
    await until(lambda: bool(rig.resting()), "the order to rest")
    rig.fake.inject("CancelOrder", error="EService:Unavailable", times=None)
    record = await asyncio.wait_for(task, 15)
    assert record is not None and not record.success
    assert "may still rest" in " ".join(record.errors or [])
    [left] = rig.resting()  # the exchange would not cancel it: said so, not hidden
    rig.fake.clear_faults()
    rig.fake.set_price(PAIR, "90010.0", "90020.0")  # the next run: it rests at a new price
    second = rig.start(portfolio)
    await until(lambda: left.status == "canceled", "the next run to cancel the earlier order")
    await until(lambda: bool(rig.resting()), "the next run's own order")
    rig.fake.set_price(PAIR, "90000.0", "90010.0")
    record = await asyncio.wait_for(second, 15)
    assert record is not None and record.success, record.errors
    assert_clean(rig)


async def test_sells_settle_before_buys_are_sized_from_their_real_proceeds(
    store: Store,
) -> None:
    rig = await make_rig(store, 20)
    try:
        key, secret = rig.fake.add_account({"XXBT": "0.1000000000"})  # all BTC, no EUR
        rig.key = key
        rig.client = KrakenClient(
            rig.fake.url, key, secret, "starter", query_fill=False, clock=rig.clock,
            sleep=rig.clock.sleep,
        )  # fmt: skip
        rig.scheduler.exchanges["default"] = rig.client
        task = rig.start(await rig.portfolio(target_weights={"BTC": 50, "ETH": 50}))
        await until(lambda: bool(rig.resting()), "the sell to rest")
        [sell] = rig.resting()
        assert sell.side == "sell" and len(rig.orders()) == 1  # no buy while the sell works
        rig.fake.set_price(PAIR, "90010.0", "90020.0")  # a buyer reaches our ask: sold
        await until(lambda: any(o.side == "buy" for o in rig.resting()), "the buy to rest")
        [buy] = [o for o in rig.orders() if o.side == "buy"]
        assert buy.pair == "XETHZEUR" and sell.status == "closed"
        proceeds = sell.cost - sell.fee
        assert buy.volume * buy.limit_price * Decimal("1.004") <= proceeds  # type: ignore[operator]
        bid, _ = rig.fake.venue.prices["XETHZEUR"]
        rig.fake.set_price("XETHZEUR", bid - Decimal("0.02"), bid)
        record = await asyncio.wait_for(task, 15)
        assert record is not None and record.success, record.errors
        assert [o["side"] for o in record.orders] == ["sell", "buy"]
        assert_clean(rig)
    finally:
        await rig.close()


async def test_reconcile_after_a_crash_cancels_resting_children_and_skips_unsent_ones(
    rig: Rig,
) -> None:
    """A run a dead daemon left: child 0 rests partly filled, child 1 was committed, not sent."""
    from rebalancerd.exchange.maker import LimitRequest
    from rebalancerd.runs.chase import child_id
    from rebalancerd.runs.control import ManualRun, claim_manual

    portfolio = await rig.portfolio()
    # The run as the daemon that died left it (reconcile runs once its lease is taken over).
    how = ManualRun(dry_run=False, triggered_by="api", owner="test:1:m", lease_seconds=30)
    run, _ = await claim_manual(rig.store, portfolio.id, how, ["default"])
    cid = "5b0c3d6e-8f7a-4b1c-9d2e-3f4a5b6c7d8e"
    row = (0, cid, "BTC", PAIR, "buy", Decimal("0.05"), Decimal("90010"), Decimal("90005"))
    await rig.store.insert_maker_intents(run.id, [row])
    await rig.store.add_child_order(cid, 0)
    await rig.client.place_limit(
        LimitRequest(PAIR, "buy", Decimal("0.05"), Decimal("90000.0"), cid)
    )
    await rig.store.add_child_order(cid, 1)  # then the daemon died before sending child 1
    [resting] = rig.resting()
    rig.fake.endpoints.matcher.limits.fill(resting, Decimal("0.02"), Decimal("90000.0"), maker=True)

    record = await rig.scheduler.runs.reconcile(run)
    assert record is not None and not record.success
    [json] = record.orders
    assert json["status"] == "canceled" and Decimal(json["volumeExecuted"]) == Decimal("0.02")
    assert json["executionMode"] == "maker" and json["clientOrderId"] == cid
    assert resting.status == "canceled" and rig.resting() == []
    looked_up = {c.params.get("cl_ord_id") for c in rig.fake.calls("OpenOrders")}
    assert child_id(cid, 1) in looked_up  # the unsent child was looked for, not sent
    assert len(rig.orders()) == 1
