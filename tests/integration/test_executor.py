"""A portfolio's run against the fake Kraken over real HTTP, with the real store.

Each order's intent is committed before it is sent; crashes at each step are reconciled
from the exchange by client order id, and no client order id is ever placed twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from rebalancerd.config import SchedulerSettings
from rebalancerd.exchange.kraken.client import KrakenClient, LookupPolicy, RetryPolicy
from rebalancerd.exchange.protocol import Exchange, OrderRequest, OrderState
from rebalancerd.metrics import Metrics
from rebalancerd.runs.loop import Scheduler
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import HistoryRecord, Portfolio
from tests.factories import make_portfolio
from tests.fake_kraken import FakeKraken

SELL_SELL_BUY = {"BTC": 10, "ETH": 10, "ADA": 80}  # with the fake's balances: 2 sells, 1 buy
FAST_LOOKUP = LookupPolicy(delays=(0.0, 0.05))
FAST_RETRY = RetryPolicy(attempts=2, base=0.01, cap=0.05)


def client(fake: FakeKraken, **kwargs: Any) -> KrakenClient:
    return KrakenClient(
        fake.url,
        fake.api_key,
        fake.api_secret,
        "starter",
        retry=FAST_RETRY,
        lookup=FAST_LOOKUP,
        query_fill=False,  # as the daemon runs it: fills confirmed in one QueryOrders
        timeout=kwargs.pop("timeout", 2.0),
        **kwargs,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeKraken]:
    async with FakeKraken() as server:
        yield server


def make_scheduler(store: Store, exchange: Exchange, owner: str = "test:1:a") -> Scheduler:
    return Scheduler(
        SchedulerSettings(lease_seconds=30), store, {"default": exchange}, Metrics(), owner=owner
    )


async def trigger(store: Store, exchange: Exchange, portfolio: Portfolio) -> HistoryRecord:
    record = await make_scheduler(store, exchange).trigger(portfolio.id)
    assert record is not None
    return record


def assert_no_duplicate_client_ids(fake: FakeKraken) -> None:
    ids = Counter(o.cl_ord_id for o in fake.placed)
    assert all(n == 1 for n in ids.values()), ids


async def test_happy_path_trades_to_target_and_records_the_truth(
    store: Store, fake: FakeKraken
) -> None:
    exchange = client(fake)
    portfolio = await make_portfolio(store, rebalance_threshold=Decimal(10))
    record = await trigger(store, exchange, portfolio)
    assert record.success, record.errors
    assert record.triggered_by == "api"
    assert record.orders_planned == len(fake.placed) == record.orders_executed > 0
    assert record.orders_failed == 0
    # The history carries the exchange's real fills, and each order its client id.
    by_id = {o.cl_ord_id: o for o in fake.placed}
    assert {o["clientOrderId"] for o in record.orders} == set(by_id)
    traded = sum(Decimal(o["cost"]) for o in record.orders)
    assert record.total_value_traded == traded > 0
    sides = [o["side"] for o in record.orders]
    assert sides == sorted(sides, key=lambda s: s != "sell")  # sells first
    # One AddOrder per order and one QueryOrders for the whole run: no round trip wasted.
    assert len(fake.calls("AddOrder")) == len(fake.placed)
    assert len(fake.calls("QueryOrders")) == 1
    # After the run the holdings are near target (valued at the fake's mid prices).
    weights = await current_weights(exchange, portfolio)
    for symbol, target in portfolio.weights().items():
        assert abs(weights[symbol] - target) < Decimal("0.5"), (symbol, weights)
    await exchange.close()


async def current_weights(exchange: KrakenClient, portfolio: Portfolio) -> dict[str, Decimal]:
    bases = [s for s in portfolio.weights() if s != "EUR"]
    pairs = await exchange.pair_rules(bases, "EUR")
    quotes = await exchange.tickers([pairs[b].pair for b in bases])
    held = (await exchange.balances()).tradable
    values = {
        b: held.get(b, Decimal(0)) * (quotes[pairs[b].pair].bid + quotes[pairs[b].pair].ask) / 2
        for b in bases
    }
    values["EUR"] = held.get("EUR", Decimal(0))
    total = sum(values.values(), Decimal(0))
    return {k: v * 100 / total for k, v in values.items()}


async def test_below_minimum_orders_are_skipped_not_sent(store: Store, fake: FakeKraken) -> None:
    exchange = client(fake)
    # Targets close to the fake account's current mix, so every deviation is tiny.
    balances = await exchange.balances()
    assert balances.tradable
    portfolio = await make_portfolio(
        store, target_weights={"ADA": 100}, rebalance_threshold=Decimal(1_000_000)
    )
    record = await trigger(store, exchange, portfolio)
    assert record.success
    assert record.orders_planned == 0
    assert fake.placed == []
    await exchange.close()


async def test_failed_sell_is_recorded_and_never_becomes_a_buy(
    store: Store, fake: FakeKraken
) -> None:
    exchange = client(fake)
    # Mostly ADA: BTC and ETH are sold, SOL and ADA bought.
    portfolio = await make_portfolio(
        store, target_weights={"BTC": 10, "ETH": 10, "SOL": 10, "ADA": 70}
    )
    fake.inject("AddOrder", error="EOrder:Insufficient funds")  # the first order: a sell
    record = await trigger(store, exchange, portfolio)
    assert not record.success
    assert record.orders_failed == 1
    rejected = [o for o in record.orders if o["status"] == "rejected"]
    assert len(rejected) == 1 and rejected[0]["side"] == "sell"
    assert "Insufficient funds" in (record.errors or [""])[0]
    failed_symbol = rejected[0]["symbol"]
    assert not [o for o in fake.placed if o.side == "buy" and failed_symbol in o.pair]
    # The other sells still went through, and the ADA buy used only what they brought in.
    assert [o for o in record.orders if o["status"] == "filled" and o["side"] == "sell"]
    assert_no_duplicate_client_ids(fake)
    await exchange.close()


@pytest.mark.parametrize("how", ["drop", "502", "hang"])
async def test_lost_reply_is_found_by_client_id_and_not_placed_twice(
    store: Store, fake: FakeKraken, how: str
) -> None:
    exchange = client(fake, timeout=1.0)
    portfolio = await make_portfolio(store, target_weights={"BTC": 50, "ETH": 50})
    fake.lose_reply("AddOrder", how=how)
    record = await trigger(store, exchange, portfolio)
    assert record.success, record.errors
    assert len(fake.placed) == record.orders_executed == record.orders_planned
    assert len(fake.calls("AddOrder")) == len(fake.placed)  # never re-sent
    assert_no_duplicate_client_ids(fake)
    await exchange.close()


class Crash(BaseException):
    """The process dies here: nothing after this point runs."""


class CrashingExchange:
    """The real client, but the process 'dies' at one step of the n-th order."""

    def __init__(self, inner: KrakenClient, when: str, at_order: int = 1) -> None:
        self.inner = inner
        self.when = when
        self.at_order = at_order
        self.sent = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def place_order(self, request: OrderRequest) -> OrderState:
        self.sent += 1
        if self.sent == self.at_order and self.when == "before send":
            raise Crash
        state = await self.inner.place_order(request)
        if self.sent == self.at_order and self.when == "after send":
            raise Crash  # placed at the exchange; our intent still says "intent"
        return state

    async def query_orders(self, txids: list[str]) -> dict[str, OrderState]:
        if self.when == "before confirm":
            raise Crash  # every order placed; their fills never confirmed nor recorded
        return await self.inner.query_orders(txids)


@pytest.mark.parametrize("when", ["before send", "after send", "before confirm"])
async def test_crash_at_each_step_is_reconciled_after_restart(
    store: Store, fake: FakeKraken, when: str
) -> None:
    portfolio = await make_portfolio(store, target_weights=SELL_SELL_BUY)
    dead = CrashingExchange(client(fake), when, at_order=2)
    first = make_scheduler(store, dead, owner="host-gone:1:a")  # type: ignore[arg-type]
    with pytest.raises(Crash):
        await first.trigger(portfolio.id)
    placed_before = len(fake.placed)
    [open_run] = await store.open_runs()
    # A new daemon: the old owner is on another host, so it waits for the lease to end.
    fresh = client(fake)
    second = make_scheduler(store, fresh, owner="host-new:2:b")
    assert await second.reconcile_orphans() == 0
    await store.pool.execute(
        "UPDATE rebalance_runs SET lease_expires_at = now() - interval '1 second'"
    )
    assert await second.reconcile_orphans() == 1
    assert await store.open_runs() == []
    record = (await store.list_history(portfolio.id))[0]
    assert not record.success
    assert "interrupted" in (record.errors or [""])[0]
    statuses = [o["status"] for o in record.orders]
    assert statuses[0] == "filled"
    assert statuses[1] == ("not_placed" if when == "before send" else "filled")
    # Crashing at a sell, the buy was never reached; the one look-up comes after every order.
    assert len(statuses) == (3 if when == "before confirm" else 2)
    assert len(fake.placed) == placed_before  # reconciling placed nothing
    # The next run plans from real balances and places only new client ids.
    again = await second.trigger(portfolio.id)
    assert again is not None
    assert_no_duplicate_client_ids(fake)
    intents = await store.run_intents(open_run.id)
    assert all(i.status in ("filled", "not_placed") for i in intents)
    await dead.inner.close()
    await fresh.close()


async def test_crash_after_fill_recorded_is_reconciled(store: Store, fake: FakeKraken) -> None:
    portfolio = await make_portfolio(store, target_weights=SELL_SELL_BUY)
    # The daemon dies at the buy, after both sells were placed and their replies recorded.
    dead = CrashingExchange(client(fake), "before send", at_order=3)
    scheduler = make_scheduler(store, dead, owner="gone:1:a")  # type: ignore[arg-type]
    with pytest.raises(Crash):
        await scheduler.trigger(portfolio.id)
    [run] = await store.open_runs()
    intents = await store.run_intents(run.id)
    # The sells' replies were stored with the buy's intent, before the buy left.
    assert [i.status for i in intents] == ["placed", "placed", "intent"]
    fresh = client(fake)
    second = make_scheduler(store, fresh, owner="new:2:b")
    await store.pool.execute("UPDATE rebalance_runs SET lease_expires_at = now()")
    assert await second.reconcile_orphans() == 1
    record = (await store.list_history(portfolio.id))[0]
    assert [o["status"] for o in record.orders] == ["filled", "filled", "not_placed"]
    assert record.orders_executed == 2
    assert len(fake.placed) == 2
    await dead.inner.close()
    await fresh.close()


async def test_dry_run_places_nothing_and_records_the_plan(store: Store, fake: FakeKraken) -> None:
    exchange = client(fake)
    portfolio = await make_portfolio(store, target_weights={"BTC": 60, "ETH": 40})
    record = await make_scheduler(store, exchange).trigger(portfolio.id, dry_run=True)
    assert record is not None and record.success and record.dry_run
    assert record.orders_planned > 0 and record.orders_executed == 0
    assert {o["status"] for o in record.orders} == {"planned"}
    assert fake.placed == []
    await exchange.close()


async def test_unknown_outcome_blocks_the_next_run_until_resolved(
    store: Store, fake: FakeKraken
) -> None:
    exchange = client(fake, timeout=0.5)
    portfolio = await make_portfolio(store, target_weights={"BTC": 50, "ETH": 50})
    # Every AddOrder and every look-up fails: the order's fate cannot be learnt.
    fake.inject("AddOrder", status=502, times=None)
    fake.inject("OpenOrders", status=502, times=None)
    record = await trigger(store, exchange, portfolio)
    assert not record.success
    assert any(o["status"] == "unknown" for o in record.orders)
    assert len(fake.calls("AddOrder")) == 1  # the ambiguous order was not re-sent
    blocked = await trigger(store, exchange, portfolio)
    assert not blocked.success
    assert "unresolved" in (blocked.errors or [""])[0]
    assert len(fake.calls("AddOrder")) == 1
    # Kraken recovers: the order is looked up (it was never placed), then trading resumes.
    fake.clear_faults()
    recovered = await trigger(store, exchange, portfolio)
    assert recovered.success, recovered.errors
    first = (await store.list_history(portfolio.id))[-1]
    unknown = next(o for o in first.orders if o["status"] == "unknown")
    [intent] = [i for i in await store.unresolved_intents(portfolio.id)] or [None]
    assert intent is None  # nothing left unresolved
    assert unknown["clientOrderId"] not in {o.cl_ord_id for o in fake.placed}
    assert_no_duplicate_client_ids(fake)
    await exchange.close()


async def test_unconfirmed_fills_stop_the_run_and_are_settled_next_time(
    store: Store, fake: FakeKraken
) -> None:
    exchange = client(fake)
    portfolio = await make_portfolio(store, target_weights=SELL_SELL_BUY)
    fake.inject("QueryOrders", status=502, times=None)
    record = await trigger(store, exchange, portfolio)
    assert not record.success
    assert any("fills not confirmed" in e for e in record.errors or [])
    assert {o["status"] for o in record.orders} == {"placed"}
    # The buy was sized from the sells' bounded proceeds; only the final look-up failed.
    assert [o.side for o in fake.placed] == ["sell", "sell", "buy"]
    assert len(fake.calls("QueryOrders")) > 0
    fake.clear_faults()
    again = await trigger(store, exchange, portfolio)
    assert again.success, again.errors
    assert await store.unresolved_intents(portfolio.id) == []
    assert_no_duplicate_client_ids(fake)
    await exchange.close()
