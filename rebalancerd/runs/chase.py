"""Maker execution's pure decisions (issue 16): where to rest, when to move, what it cost.

No I/O: every input (quote, counter room, ages) is an argument, so tables test them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from rebalancerd.exchange.protocol import OrderState, Quote

BPS = Decimal(10_000)
# Points kept free on the pair's trading counter so the final cancel never waits: Kraken's
# dearest cancel (an order younger than 5 s) costs 8.
CANCEL_RESERVE = 8.0


def touch(side: str, quote: Quote) -> Decimal:
    """The best price on the order's own side: a buy rests at the bid, a sell at the ask."""
    return quote.bid if side == "buy" else quote.ask


def mid(quote: Quote) -> Decimal:
    """The mid price."""
    return (quote.bid + quote.ask) / 2


def maker_price(side: str, quote: Quote, tick: Decimal) -> Decimal:
    """Join the touch, but never at a price that would take (a crossed or locked quote)."""
    if side == "buy":
        return min(quote.bid, quote.ask - tick)
    return max(quote.ask, quote.bid + tick)


def moved_away(side: str, resting: Decimal, best: Decimal) -> bool:
    """True when the touch left the order behind (a buy below the bid, a sell above the ask)."""
    return best > resting if side == "buy" else best < resting


def should_amend(
    side: str, resting: Decimal, best: Decimal, room: float, amend_points: float
) -> bool:
    """Chase the touch only when it moved away and the amend leaves room for a final cancel."""
    return moved_away(side, resting, best) and room - amend_points >= CANCEL_RESERVE


def fallback_price(side: str, mid_price: Decimal, slippage_bps: Decimal, tick: Decimal) -> Decimal:
    """The IOC limit at most `slippage_bps` through the mid, on the tick grid, never beyond."""
    if side == "buy":
        limit = mid_price * (1 + slippage_bps / BPS)
        return (limit / tick).to_integral_value(ROUND_FLOOR) * tick
    limit = mid_price * (1 - slippage_bps / BPS)
    return (limit / tick).to_integral_value(ROUND_CEILING) * tick


def cost_bps(
    side: str, arrival_mid: Decimal | None, volume: Decimal, cost: Decimal, fee: Decimal
) -> Decimal | None:
    """Fee plus shortfall against the arrival mid, in bps of the value traded (None: no fill)."""
    if arrival_mid is None or volume <= 0 or cost <= 0:
        return None
    at_mid = volume * arrival_mid
    shortfall = cost - at_mid if side == "buy" else at_mid - cost
    return ((shortfall + fee) / cost * BPS).quantize(Decimal("0.01"))


def weighted_bps(fills: Iterable[tuple[Decimal, Decimal]]) -> Decimal | None:
    """Value-weighted mean of (cost bps, value traded) pairs; None when nothing traded."""
    total = weight = Decimal(0)
    for bps, value in fills:
        total += bps * value
        weight += value
    return (total / weight).quantize(Decimal("0.01")) if weight > 0 else None


def child_id(client_order_id: str, child: int) -> str:
    """The client order id of an intent's child order: 0 is the intent's own, then derived."""
    if child == 0:
        return client_order_id
    return str(uuid.uuid5(uuid.UUID(client_order_id), f"child-{child}"))


def average_price(states: Iterable[OrderState]) -> Decimal:
    """The volume-weighted average fill price of several orders (their cost is rounded)."""
    volume = weighted = Decimal(0)
    for state in states:
        volume += state.volume_executed
        weighted += state.avg_price * state.volume_executed
    return weighted / volume if volume > 0 else Decimal(0)


@dataclass(frozen=True)
class Filled:
    """What several exchange orders of one intent filled together."""

    volume: Decimal
    cost: Decimal
    fee: Decimal
    avg_price: Decimal
    txid: str | None  # the newest order's


def filled_total(states: Sequence[OrderState]) -> Filled:
    """The fills of an intent's orders added up (the intent is one order to the history)."""
    return Filled(
        volume=sum((s.volume_executed for s in states), Decimal(0)),
        cost=sum((s.cost for s in states), Decimal(0)),
        fee=sum((s.fee for s in states), Decimal(0)),
        avg_price=average_price(states),
        txid=next((s.txid for s in reversed(states) if s.txid), None),
    )
