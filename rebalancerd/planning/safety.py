"""Pure checks of the safety controls: the price-jump guard and whether an approved plan still
holds. No I/O: marks, prices and `now` are arguments."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from rebalancerd.decimals import eur
from rebalancerd.planning.types import HUNDRED, ZERO, Plan

Mark = tuple[Decimal, datetime]  # an asset's mid price and when it was read
MARK_MAX_AGE = timedelta(hours=1)  # an older mark says nothing about a jump


def move_pct(old: Decimal, new: Decimal) -> Decimal:
    """How far a price moved, in percent of the old one (either way)."""
    return abs(new - old) * HUNDRED / old


def jumped(
    marks: Mapping[str, Mark],
    prices: Mapping[str, Decimal],
    now: datetime,
    limit_pct: Decimal | None,
) -> dict[str, Decimal]:
    """symbol -> % moved, for each price that moved more than `limit_pct` since its mark, when
    that mark is under an hour old. Empty when the guard is off (None)."""
    if limit_pct is None:
        return {}
    moves = {}
    for symbol, price in prices.items():
        mark = marks.get(symbol)
        if mark is None or now - mark[1] >= MARK_MAX_AGE or mark[0] <= 0:
            continue
        moved = move_pct(mark[0], price)
        if moved > limit_pct:
            moves[symbol] = moved
    return moves


def price_jumps(
    marks: Mapping[str, Mark],
    prices: Mapping[str, Decimal],
    now: datetime,
    limit_pct: Decimal | None,
) -> list[str]:
    """Why each jumped price is not to be trusted, one sentence per asset (empty: none)."""
    reasons = []
    for symbol, moved in sorted(jumped(marks, prices, now, limit_pct).items()):
        old, at = marks[symbol]
        minutes = int((now - at).total_seconds() // 60)
        reasons.append(
            f"{symbol} moved {moved:.1f}% ({old.normalize():f} -> "
            f"{prices[symbol].normalize():f}) in {minutes} min, over the "
            f"{limit_pct}% price-jump guard"
        )
    return reasons


def new_marks(
    marks: Mapping[str, Mark],
    prices: Mapping[str, Decimal],
    now: datetime,
    limit_pct: Decimal | None,
) -> dict[str, Decimal]:
    """The prices that become the next marks: a jumped price is not taken as the reference,
    so retrying a blocked run does not wave the jump through."""
    moved = jumped(marks, prices, now, limit_pct)
    return {s: p for s, p in prices.items() if s not in moved and p > 0}


def order_values(orders: Iterable[Mapping[str, object]]) -> dict[tuple[str, str], Decimal]:
    """(symbol, side) -> EUR value of a plan's orders as JSON (Plan.as_dict()["orders"])."""
    values: dict[tuple[str, str], Decimal] = {}
    for order in orders:
        key = (str(order["symbol"]), str(order["side"]))
        values[key] = values.get(key, ZERO) + Decimal(str(order["value"]))
    return values


def approval_changes(
    approved: Mapping[tuple[str, str], Decimal], fresh: Plan, tolerance_pct: Decimal
) -> list[str]:
    """How the fresh plan differs from the approved one by more than `tolerance_pct` of the
    portfolio value per order (an order only in one plan counts in full). Empty: it holds."""
    now = order_values({"symbol": o.symbol, "side": o.side, "value": o.value} for o in fresh.orders)
    allowed = fresh.value * tolerance_pct / HUNDRED
    changes = []
    for symbol, side in sorted(approved.keys() | now.keys()):
        was, will = approved.get((symbol, side), ZERO), now.get((symbol, side), ZERO)
        if abs(will - was) > allowed:
            changes.append(
                f"{side} {symbol}: {eur(was)} approved, {eur(will)} now (tolerance {eur(allowed)})"
            )
    return changes
