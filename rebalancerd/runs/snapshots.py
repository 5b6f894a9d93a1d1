"""Snapshots of a portfolio's value and weights: before and after each run, and at check ticks.

The dashboard draws its charts and its "current allocation" from them, so a page load never
costs exchange calls. A snapshot that cannot be written is logged and skipped: it must never
fail the run it describes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from rebalancerd.exchange.protocol import ExchangeError, Quote
from rebalancerd.planning.checks import mid
from rebalancerd.store.database import DB_ERRORS
from rebalancerd.store.repository import Store
from rebalancerd.store.snapshots import SnapshotFields

if TYPE_CHECKING:  # runs/trade.py writes snapshots: imported for types only, no cycle
    from rebalancerd.runs.lifecycle import RunManager
    from rebalancerd.runs.trade import RunPlan

log = logging.getLogger(__name__)
CASH = "EUR"
WEIGHT = Decimal("0.0001")  # percent to 4 places: far finer than a chart or a band needs
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Taken:
    """A snapshot as written for a run (so its "after" can repeat it when nothing traded)."""

    portfolio_id: str
    run_id: int | None
    fields: SnapshotFields | None  # None: the run could not value the portfolio


def fields_of(
    weights: Mapping[str, Decimal],
    value: Decimal,
    amounts: Mapping[str, Decimal],
    quotes: Mapping[str, Quote],
) -> SnapshotFields:
    """What a snapshot records of a plan's valuation (pure)."""
    holdings = {}
    for symbol, amount in amounts.items():
        quote = quotes.get(symbol)
        worth = amount if symbol == CASH else amount * mid(quote) if quote else Decimal(0)
        holdings[symbol] = {"amount": amount.normalize(), "value": worth.quantize(CENT)}
    return SnapshotFields(
        value=value.quantize(CENT),
        weights={s: w.quantize(WEIGHT) for s, w in weights.items()},
        holdings=holdings,
    )


def planned_fields(planned: RunPlan) -> SnapshotFields | None:
    """The snapshot of a run's planning, None when it valued nothing (no market, no quote)."""
    plan = planned.plan
    if plan is None or not plan.current_weights:
        return None
    return fields_of(plan.current_weights, plan.value, planned.amounts, planned.quotes)


async def record(
    store: Store, portfolio_id: str, kind: str, planned: RunPlan, run_id: int | None
) -> Taken:
    """Write the snapshot of `planned` (if it valued anything); what was written."""
    taken = Taken(portfolio_id, run_id, planned_fields(planned))
    await record_again(store, taken, kind)
    return taken


async def record_again(store: Store, taken: Taken, kind: str) -> None:
    """Write `taken`'s holdings once more as `kind` (an "after" when nothing traded)."""
    if taken.fields is None:
        return
    try:
        await store.insert_snapshot(taken.portfolio_id, kind, taken.fields, taken.run_id)
    except DB_ERRORS as exc:
        log.warning("[Rebalance:%s] WARN: snapshot not written: %s", taken.portfolio_id, exc)


async def tick(store: Store, runs: RunManager, keep_days: int, every_portfolio: bool) -> int:
    """A check tick: prune old snapshots, then snapshot every enabled portfolio; how many."""
    await store.prune_snapshots(keep_days)
    if not every_portfolio:
        return 0
    written = 0
    for portfolio in await store.list_portfolios():
        if not portfolio.rebalance_enabled:
            continue
        try:
            planned = await runs.plan_run(portfolio)
        except ExchangeError as exc:
            log.warning("[Scheduler] Snapshot of %s failed: %s", portfolio.id, exc)
            continue
        if planned is not None and planned.plan is not None:
            await record(store, portfolio.id, "tick", planned, None)
            written += 1
    return written
