"""The safety controls a run passes between planning and trading: the price-jump guard, the
plan it records, and approval (hold the plan for a person, or check an approved one still holds).
The pure checks are planning/safety.py; this adds the store and the clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from rebalancerd.exchange.protocol import Quote
from rebalancerd.planning import safety
from rebalancerd.planning.checks import mid
from rebalancerd.planning.types import Plan
from rebalancerd.runs.outcome import RunOutcome
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import Portfolio, Run

log = logging.getLogger(__name__)
OVERRIDE = "a manual trigger with force: true overrides it"


@dataclass(frozen=True)
class RunChecks:
    """How one run meets the controls: `force` passes the price-jump guard; `approved` holds
    the orders a person approved ((symbol, side) -> EUR) when this run executes them."""

    force: bool = False
    approved: Mapping[tuple[str, str], Decimal] | None = None


class SafetyGate:
    """Stands between a run's plan and its first order."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock

    async def review(
        self,
        run: Run,
        portfolio: Portfolio,
        quotes: Mapping[str, Quote],
        plan: Plan,
        outcome: RunOutcome,
        checks: RunChecks,
    ) -> RunOutcome | None:
        """None: trade the plan. Otherwise the run's outcome, and nothing is placed."""
        jumps, marking = await self._marks(portfolio, quotes, force=checks.force)
        if jumps:
            await marking
            return outcome.failed(
                f"price-jump guard: {'; '.join(jumps)}; nothing placed ({OVERRIDE})"
            )
        as_json = plan.as_dict()
        await asyncio.gather(marking, self.store.set_run_plan(run.id, as_json))  # 1 round trip
        for note in plan.notes:
            log.warning("[Rebalance:%s] WARN: %s", portfolio.id, note)
        if run.dry_run:
            return None
        if checks.approved is not None:
            tolerance = portfolio.approval_tolerance_pct
            changes = safety.approval_changes(checks.approved, plan, tolerance)
            return outcome.held_for_approval(as_json, tuple(changes)) if changes else None
        if portfolio.approval == "manual" and plan.orders:
            return outcome.held_for_approval(as_json)  # the one place a run starts to wait
        return None

    async def mark_prices(
        self, portfolio: Portfolio, quotes: Mapping[str, Quote], *, force: bool = False
    ) -> list[str]:
        """Record the prices read now as the guard's marks; why they jumped, if they did."""
        jumps, marking = await self._marks(portfolio, quotes, force=force)
        await marking
        return jumps

    async def _marks(
        self, portfolio: Portfolio, quotes: Mapping[str, Quote], *, force: bool
    ) -> tuple[list[str], Coroutine[object, object, None]]:
        """Why the prices read now jumped (if they did), and the write of the new marks, for
        the caller to await (alone, or alongside another write)."""
        prices = {symbol: mid(quote) for symbol, quote in quotes.items()}
        marks = await self.store.price_marks(portfolio.id)
        now = self.clock()
        limit = portfolio.price_jump_guard_pct
        jumps = [] if force else safety.price_jumps(marks, prices, now, limit)
        keep = prices if force else safety.new_marks(marks, prices, now, limit)
        return jumps, self.store.save_price_marks(portfolio.id, keep, now)
