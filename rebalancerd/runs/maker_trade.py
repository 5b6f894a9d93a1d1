"""A maker run (issue 16): sells rest and chase first; once they filled or timed out the buys
are sized from their real proceeds and worked the same way."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from rebalancerd.decimals import plain
from rebalancerd.exchange.maker import MakerExchange
from rebalancerd.exchange.protocol import PairRules, Quote
from rebalancerd.metrics import Metrics
from rebalancerd.planning.types import PlannedOrder
from rebalancerd.runs import chase
from rebalancerd.runs.execution import maker_json, observe
from rebalancerd.runs.maker import MakerEngine, MakerSettings
from rebalancerd.runs.outcome import FAILED, RunOutcome
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import OrderIntent, Portfolio, Run

log = logging.getLogger(__name__)
UNSETTLED = ("unknown", "placed", "intent")
Context = tuple[Mapping[str, Quote], Mapping[str, PairRules]]  # the plan's, by symbol


class MakerTrader:
    """Trades a planned run at the maker fee; the market path stays in runs/trade.py."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        engine: MakerEngine | None = None,
        halt: asyncio.Event | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.engine = engine or MakerEngine(store)
        self.halt = halt or asyncio.Event()  # the kill switch: says why `stopping` was set

    def _stopped(self) -> str:
        return "halted by the operator" if self.halt.is_set() else "the daemon is shutting down"

    async def trade(
        self,
        run: Run,
        portfolio: Portfolio,
        exchange: MakerExchange,
        sides: tuple[Sequence[PlannedOrder], Callable[[Decimal], Sequence[PlannedOrder]]],
        context: Context,
        outcome: RunOutcome,
        stopping: asyncio.Event,
    ) -> RunOutcome:
        """Sell, then buy with what the sells really brought; every order maker-first."""
        sells, size_buys = sides
        settings = MakerSettings(
            float(portfolio.maker_timeout_seconds), Decimal(portfolio.max_slippage_bps)
        )
        sold = await self._side(run, exchange, sells, 0, context, settings, stopping)
        outcome = self._record(run.portfolio_id, outcome, sold)
        if stopping.is_set() or any(i.status in UNSETTLED for i in sold):
            why = self._stopped() if stopping.is_set() else "a sell is unsettled"
            return outcome.failed(f"stopped before buying: {why}")
        proceeds = sum((i.cost - i.fee for i in sold), Decimal(0))
        buys = size_buys(proceeds)
        bought = await self._side(run, exchange, buys, len(sells), context, settings, stopping)
        outcome = self._record(run.portfolio_id, outcome, bought)
        if stopping.is_set() and bought:
            outcome = outcome.failed(f"stopped while buying: {self._stopped()}")
        return outcome

    async def _side(
        self,
        run: Run,
        exchange: MakerExchange,
        orders: Sequence[PlannedOrder],
        first_seq: int,
        context: Context,
        settings: MakerSettings,
        stopping: asyncio.Event,
    ) -> list[OrderIntent]:
        """Commit the side's intents (with their arrival mids), then work them together."""
        if not orders:
            return []
        quotes, pairs = context
        rows = [
            (seq, str(uuid.uuid4()), o.symbol, o.pair, o.side, o.volume, o.price,
             chase.mid(quotes[o.symbol]))
            for seq, o in enumerate(orders, start=first_seq)
        ]  # fmt: skip
        intents = await self.store.insert_maker_intents(run.id, rows)
        return await self.engine.run_side(
            run.portfolio_id, exchange, intents, pairs, settings, stopping
        )

    def _record(self, pid: str, outcome: RunOutcome, intents: list[OrderIntent]) -> RunOutcome:
        orders = [maker_json(i) for i in intents]
        observe(self.metrics, orders)
        for intent in intents:
            self.metrics.orders.labels(intent.status, intent.side).inc()
            log.info(
                "[Rebalance:%s] %s: Maker order %s: %s %s of %s %s at %s (%d price(s)%s)",
                pid,
                "SUCCESS" if intent.status == "filled" else "INFO",
                intent.status,
                intent.side,
                plain(intent.volume_executed),
                plain(intent.volume),
                intent.symbol,
                plain(intent.avg_price),
                intent.placements,
                ", IOC fallback" if intent.fallback else "",
            )
        errors = [
            f"{i.side} {i.symbol}: {i.error}"
            for i in intents
            if i.error and (i.status in FAILED or i.status in UNSETTLED)
        ]
        return outcome.with_orders(orders, errors)
