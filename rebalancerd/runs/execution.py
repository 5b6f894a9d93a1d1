"""How an order was executed and what it cost (issue 16): the history fields of both modes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from rebalancerd.decimals import plain
from rebalancerd.exchange.protocol import Quote
from rebalancerd.metrics import Metrics
from rebalancerd.runs import chase
from rebalancerd.runs.outcome import OrderJson, intent_json
from rebalancerd.store.rows import OrderIntent


def maker_json(intent: OrderIntent) -> OrderJson:
    """A maker order of a history record, with its execution fields."""
    return with_execution(
        intent_json(intent), "maker", intent.arrival_mid, intent.placements, intent.fallback
    )


def market_json(orders: Iterable[OrderJson], quotes: Mapping[str, Quote]) -> list[OrderJson]:
    """Market orders of a history record with their execution fields (arrival: the plan's mid)."""
    return [
        with_execution(
            o, "market", chase.mid(quotes[o["symbol"]]) if o["symbol"] in quotes else None, 0, False
        )
        for o in orders
    ]


def with_execution(
    order: OrderJson, mode: str, arrival: Decimal | None, placements: int, fallback: bool
) -> OrderJson:
    """`order` with executionMode, arrivalMid, avgPrice, costBps, placements and fallback."""
    cost = Decimal(order.get("cost", "0"))
    bps = chase.cost_bps(
        order["side"],
        arrival,
        Decimal(order.get("volumeExecuted", "0")),
        cost,
        Decimal(order.get("fee", "0")),
    )
    out: OrderJson = {**order}
    out["executionMode"] = mode
    out["arrivalMid"] = None if arrival is None else plain(arrival)
    out["avgPrice"] = order.get("price", "0")
    out["costBps"] = None if bps is None else plain(bps)
    out["placements"] = placements
    out["fallback"] = fallback
    return out


def observe(metrics: Metrics, orders: Iterable[OrderJson]) -> None:
    """The execution cost histogram, by mode."""
    for order in orders:
        bps = order.get("costBps")
        if bps is not None:
            metrics.execution_cost.labels(order.get("executionMode", "market")).observe(float(bps))
