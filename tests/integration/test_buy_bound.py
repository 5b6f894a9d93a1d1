"""Buys are sized from the sells' bounded proceeds, not from a status call, and never past the
cash that is really there: the fake Kraken refuses any order its account cannot pay for.

The account holds no EUR, so every buy lives on what the sells bring; the fake charges the
conservative fee the client plans with (0.40 %), so the only slack is BUY_BUDGET's margin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest

from rebalancerd.exchange.kraken.client import KrakenClient
from rebalancerd.exchange.protocol import OrderRequest, OrderState
from rebalancerd.runs import trade
from rebalancerd.runs.placement import Sent
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import OrderIntent
from tests.factories import make_portfolio
from tests.fake_kraken import FakeKraken
from tests.integration.test_executor import assert_no_duplicate_client_ids, client, trigger

ONLY_COINS = {"ZEUR": "0", "XXBT": "0.5", "XETH": "5"}
SELL_SELL_BUY_BUY = {"BTC": 20, "ETH": 20, "SOL": 30, "ADA": 30}
INSUFFICIENT = "EOrder:Insufficient funds"


@pytest.fixture
async def fake() -> AsyncIterator[FakeKraken]:
    async with FakeKraken(balances=ONLY_COINS, fee_rate=Decimal("0.004")) as server:
        yield server


@dataclass
class Slipping:
    """A KrakenClient whose first sell fills `slip` below the bid it was planned at."""

    inner: KrakenClient
    fake: FakeKraken
    slip: Decimal
    slipped: bool = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def place_order(self, request: OrderRequest) -> OrderState:
        if request.side == "sell" and not self.slipped:
            self.slipped = True
            bid, ask = self.fake.venue.prices[request.pair]
            self.fake.set_price(request.pair, bid * (1 - self.slip), ask)
        return await self.inner.place_order(request)


async def test_buys_wait_for_no_status_call_and_all_fills_are_confirmed_once(
    store: Store, fake: FakeKraken
) -> None:
    exchange = client(fake)
    portfolio = await make_portfolio(store, target_weights=SELL_SELL_BUY_BUY)
    record = await trigger(store, exchange, portfolio)
    assert record.success, record.errors
    assert [o.side for o in fake.placed] == ["sell", "sell", "buy", "buy"]
    assert [r.endpoint for r in fake.calls() if r.endpoint in ("AddOrder", "QueryOrders")] == [
        *["AddOrder"] * 4,
        "QueryOrders",
    ]
    assert {o["status"] for o in record.orders} == {"filled"}
    assert fake.errors() == []
    assert fake.account().balances["ZEUR"] >= 0
    await exchange.close()


@pytest.mark.parametrize(
    ("slip", "budget", "refused"),
    [
        (Decimal("0.002"), trade.BUY_BUDGET, False),  # within the margin: every buy fits
        (Decimal("0.002"), Decimal(1), True),  # no margin: the fake refuses a buy (test bites)
        # Beyond the margin the bound does not hold: the exchange refuses the buy (no cash moves)
        # and the run fails; its next run trades from the real balances.
        (Decimal("0.02"), trade.BUY_BUDGET, True),
    ],
)
async def test_a_sell_filling_below_its_bid_leaves_every_buy_paid_for(
    store: Store,
    fake: FakeKraken,
    monkeypatch: pytest.MonkeyPatch,
    slip: Decimal,
    budget: Decimal,
    refused: bool,
) -> None:
    monkeypatch.setattr(trade, "BUY_BUDGET", budget)
    exchange = Slipping(client(fake), fake, slip)
    portfolio = await make_portfolio(store, target_weights=SELL_SELL_BUY_BUY)
    record = await trigger(store, exchange, portfolio)  # type: ignore[arg-type]
    assert exchange.slipped
    assert (fake.errors(INSUFFICIENT) != []) is refused, fake.errors()
    assert record.success is not refused, record.errors
    sells = [o for o in record.orders if o["side"] == "sell"]
    assert len(sells) == 2 and all(o["status"] == "filled" for o in sells)
    assert len([o for o in record.orders if o["side"] == "buy"]) == 2
    assert fake.account().balances["ZEUR"] >= 0
    await exchange.inner.close()


async def test_a_rejected_sell_funds_no_buy(store: Store, fake: FakeKraken) -> None:
    exchange = client(fake)
    portfolio = await make_portfolio(store, target_weights=SELL_SELL_BUY_BUY)
    fake.inject("AddOrder", error="EOrder:Trading agreement required")  # the first sell
    record = await trigger(store, exchange, portfolio)
    assert not record.success
    rejected = [o for o in record.orders if o["status"] == "rejected"]
    assert [o["side"] for o in rejected] == ["sell"]
    # The buys were sized from the other sell alone: the fake refused none of them.
    assert fake.errors(INSUFFICIENT) == []
    bought = sum(o.cost + o.fee for o in fake.placed if o.side == "buy")
    sold = sum(o.cost - o.fee for o in fake.placed if o.side == "sell")
    assert 0 < bought <= sold
    assert fake.account().balances["ZEUR"] >= 0
    await exchange.close()


async def test_a_sell_of_unknown_outcome_funds_no_buy(store: Store, fake: FakeKraken) -> None:
    exchange = client(fake)
    portfolio = await make_portfolio(store, target_weights=SELL_SELL_BUY_BUY)
    fake.lose_reply("AddOrder", "502")
    fake.inject("OpenOrders", status=502, times=None)  # the look-up by client id fails too
    fake.inject("ClosedOrders", status=502, times=None)
    record = await trigger(store, exchange, portfolio)
    assert not record.success
    assert any(o["status"] == "unknown" for o in record.orders)
    assert [o.side for o in fake.placed] == ["sell"]  # nothing more rests on a guessed balance
    assert any("stopped before buying" in e for e in record.errors or [])
    assert_no_duplicate_client_ids(fake)
    await exchange.close()


def _intent(status: str, cost: str = "0", fee: str = "0") -> OrderIntent:
    return OrderIntent(
        1, 1, 0, "id", "BTC", "XXBTZEUR", "sell", Decimal("0.1"), Decimal("90000"), status,
        None, Decimal(0), Decimal(cost), Decimal(fee), Decimal(0), None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "cost", "fee", "bound"),
    [
        ("placed", "0", "0", Decimal("8964")),  # 0.1 at the planned bid, less 0.4 % fee
        ("filled", "8900", "35.6", Decimal("8864.4")),  # the reply carried its fill: used as is
        ("canceled", "4450", "17.8", Decimal("4432.2")),  # a partial fill counts what filled
        ("rejected", "0", "0", Decimal(0)),
        ("not_placed", "0", "0", Decimal(0)),
        ("unknown", "0", "0", Decimal(0)),
    ],
)
def test_proceeds_bound(status: str, cost: str, fee: str, bound: Decimal) -> None:
    sold = Sent((_intent(status, cost, fee),), ())
    assert trade.proceeds_bound(sold, Decimal("0.004")) == bound
