"""Maker execution on a paper account (issue 16): a resting order fills at its own price when
the price path crosses it, at the maker fee; nothing rests after the run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from rebalancerd.config import SchedulerSettings
from rebalancerd.exchange.paper import MemoryLedger, PaperExchange
from rebalancerd.exchange.protocol import PairRules, Quote
from rebalancerd.exchange.simulated import ASSETS
from rebalancerd.metrics import Metrics
from rebalancerd.runs.loop import Scheduler
from rebalancerd.runs.maker import MakerEngine
from rebalancerd.store.repository import Store
from tests.factories import make_portfolio

BTC = ASSETS["BTC"].rules


class PricePath:
    """A market whose quote the test moves by hand."""

    def __init__(self, bid: str, ask: str) -> None:
        self.move(bid, ask)

    def move(self, bid: str, ask: str) -> None:
        self.bid, self.ask = Decimal(bid), Decimal(ask)

    async def pair_rules(self, bases: Sequence[str], quote: str) -> dict[str, PairRules]:
        return {"BTC": BTC} if "BTC" in bases else {}

    async def tickers(self, pairs: Sequence[str]) -> dict[str, Quote]:
        now = datetime.now(UTC)
        return {p: Quote(p, self.bid, self.ask, self.ask, now) for p in pairs}


async def test_paper_maker_order_fills_when_the_price_crosses_it(store: Store) -> None:
    path = PricePath("60000.0", "60010.0")
    paper = PaperExchange("default", path, MemoryLedger(), maker_fee_rate=Decimal("0.0016"))
    await paper.seed({"EUR": Decimal(10000)})
    scheduler = Scheduler(
        SchedulerSettings(lease_seconds=30), store, {"default": paper}, Metrics(), owner="t:1:p"
    )
    scheduler.runs.executor.maker.engine = MakerEngine(store, poll=0.02)
    portfolio = await make_portfolio(
        store, target_weights={"BTC": 50, "EUR": 50}, execution_mode="maker"
    )
    task = asyncio.create_task(scheduler.trigger(portfolio.id))
    deadline = time.monotonic() + 10
    while not paper._book.resting and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    [(state, price, _)] = paper._book.resting.values()
    assert price == Decimal("60000.0") and state.side == "buy"
    path.move("59990.0", "60000.0")  # a seller reaches the bid
    record = await asyncio.wait_for(task, 10)
    assert record is not None and record.success, record and record.errors
    [order] = record.orders
    assert order["status"] == "filled" and Decimal(order["avgPrice"]) == Decimal("60000.0")
    assert Decimal(order["fee"]) == Decimal(order["cost"]) * Decimal("0.0016")
    assert paper._book.resting == {}
    balances = (await paper.balances()).tradable
    assert balances["BTC"] == Decimal(order["volumeExecuted"])
