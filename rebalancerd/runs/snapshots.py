"""Snapshots of a portfolio's value and weights: before and after each run, and at check ticks.

The dashboard draws its charts and its "current allocation" from them, so a page load never
costs exchange calls. A snapshot that cannot be written is logged and skipped: it must never
fail the run it describes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

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
Row = tuple[str, str, SnapshotFields, int | None, datetime | None]  # see Store.insert_snapshots
WEIGHT = Decimal("0.0001")  # percent to 4 places: far finer than a chart or a band needs
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Taken:
    """A run's valuation when it was planned: its "before" snapshot, written after the orders."""

    portfolio_id: str
    run_id: int | None
    fields: SnapshotFields | None  # None: the run could not value the portfolio
    at: datetime | None = None  # None: the time it is written


def fields_of(
    weights: Mapping[str, Decimal],
    value: Decimal,
    amounts: Mapping[str, Decimal],
    quotes: Mapping[str, Quote],
) -> SnapshotFields:
    """What a snapshot records of a plan's valuation (pure)."""
    holdings: dict[str, dict[str, Decimal]] = {}
    for symbol, amount in amounts.items():
        quote = quotes.get(symbol)
        price = Decimal(1) if symbol == CASH else mid(quote) if quote else Decimal(0)
        holdings[symbol] = {
            "amount": amount.normalize(),
            "value": (amount * price).quantize(CENT),
            "price": price.normalize(),  # the mid it was valued at (the "after" point reuses it)
        }
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


def taken(portfolio_id: str, run_id: int | None, planned: RunPlan, at: datetime) -> Taken:
    """The valuation of a run's planning, to be written later."""
    return Taken(portfolio_id, run_id, planned_fields(planned), at)


def after_fills(fields: SnapshotFields, orders: Iterable[Mapping[str, Any]]) -> SnapshotFields:
    """The holdings once `orders` filled, valued at the prices of `fields` (pure).

    A filled buy adds its volume and spends cost + fee in EUR; a sell the reverse. Pricing at the
    run's own quotes keeps the "after" point free of an extra exchange call on the run's path.
    """
    amounts = {s: Decimal(h["amount"]) for s, h in fields.holdings.items()}
    prices = {s: Decimal(h["price"]) for s, h in fields.holdings.items() if "price" in h}
    for order in orders:
        volume = Decimal(str(order.get("volumeExecuted") or 0))
        cost, fee = Decimal(str(order.get("cost") or 0)), Decimal(str(order.get("fee") or 0))
        sign = 1 if order["side"] == "buy" else -1
        symbol = str(order["symbol"])
        amounts[symbol] = amounts.get(symbol, Decimal(0)) + sign * volume
        if volume and cost and not prices.get(symbol):
            prices[symbol] = cost / volume  # an asset the run had no quote for: its fill price
        amounts[CASH] = amounts.get(CASH, Decimal(0)) - sign * cost - fee
    prices[CASH] = Decimal(1)
    values = {s: a * prices.get(s, Decimal(0)) for s, a in amounts.items()}
    total = sum(values.values(), Decimal(0))
    weights = {s: v * 100 / total if total else Decimal(0) for s, v in values.items()}
    return SnapshotFields(
        value=total.quantize(CENT),
        weights={s: w.quantize(WEIGHT) for s, w in weights.items()},
        holdings={
            s: {
                "amount": amounts[s].normalize(),
                "value": values[s].quantize(CENT),
                "price": prices.get(s, Decimal(0)),
            }
            for s in amounts
        },
    )


async def record_run(store: Store, before: Taken, orders: Iterable[Mapping[str, Any]]) -> None:
    """A run's two snapshots: as planned, and once the orders that filled are counted."""
    if before.fields is None:
        return
    filled = [o for o in orders if Decimal(str(o.get("volumeExecuted") or 0))]  # partial too
    after = after_fills(before.fields, filled) if filled else before.fields
    pid, run_id = before.portfolio_id, before.run_id
    await _write(store, pid, [(pid, "before", before.fields, run_id, before.at),
                              (pid, "after", after, run_id, None)])  # fmt: skip


async def _write(store: Store, pid: str, rows: list[Row]) -> None:
    try:
        await store.insert_snapshots(rows)
    except DB_ERRORS as exc:  # the run's result stands; only its chart points are missing
        log.warning("[Rebalance:%s] WARN: snapshot not written: %s", pid, exc)


async def tick(
    store: Store,
    runs: RunManager,
    keep_days: int,
    every_portfolio: bool,
    planned: Mapping[str, RunPlan | None],
) -> int:
    """A check tick: prune old snapshots, then snapshot every enabled portfolio; how many.
    `planned`: plannings this tick already made (the drift check's), not read again."""
    await store.prune_snapshots(keep_days)
    if not every_portfolio:
        return 0
    rows: list[Row] = []
    for portfolio in await store.list_portfolios():
        if not portfolio.rebalance_enabled:
            continue
        try:
            made = (
                planned[portfolio.id] if portfolio.id in planned else await runs.plan_run(portfolio)
            )
        except ExchangeError as exc:
            log.warning("[Scheduler] Snapshot of %s failed: %s", portfolio.id, exc)
            continue
        fields = None if made is None else planned_fields(made)
        if fields is not None:
            rows.append((portfolio.id, "tick", fields, None, None))
    if rows:
        await _write(store, "tick", rows)
    return len(rows)
