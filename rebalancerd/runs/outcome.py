"""What a run did, typed: its orders as the history record shows them, its errors, and the
history fields handed to the store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Required, TypedDict

from rebalancerd.decimals import plain
from rebalancerd.planning.types import PlannedOrder
from rebalancerd.runs.chase import weighted_bps
from rebalancerd.store.history import HistoryFields
from rebalancerd.store.rows import OrderIntent, Run

FAILED = ("rejected", "unknown", "not_placed")  # order statuses counted as failed


class OrderJson(TypedDict, total=False):
    """One order of a history record: an intent as the exchange left it, or a dry run's plan."""

    symbol: Required[str]
    pair: Required[str]
    side: Required[str]
    volume: Required[str]
    status: Required[str]
    price: Required[str]
    fee: Required[str]
    clientOrderId: str
    txid: str | None
    volumeExecuted: str
    cost: str
    error: str | None
    value: str  # planned orders only
    # maker execution (issue 16)
    executionMode: str
    arrivalMid: str | None
    avgPrice: str
    costBps: str | None
    placements: int
    fallback: bool


@dataclass(frozen=True)
class RunOutcome:
    """What a run did, as its history row will say; each step of a run returns a new one."""

    portfolio_value: Decimal = Decimal(0)
    planned: int = 0  # orders in the plan
    orders: tuple[OrderJson, ...] = ()
    errors: tuple[str, ...] = ()
    # ----- safety controls: a plan held for a person's approval (nothing was placed) -----
    awaiting: dict[str, Any] | None = None  # the plan to approve (Plan.as_dict())
    changes: tuple[str, ...] = ()  # how it differs from the plan approved before (stale)

    def held_for_approval(self, plan: dict[str, Any], changes: tuple[str, ...] = ()) -> RunOutcome:
        """This outcome, with nothing placed: `plan` waits for approval."""
        return replace(self, awaiting=plan, changes=changes)

    def with_orders(self, orders: Iterable[OrderJson], errors: Iterable[str] = ()) -> RunOutcome:
        """This outcome with more orders (and the errors that came with them)."""
        return replace(self, orders=(*self.orders, *orders), errors=(*self.errors, *errors))

    def failed(self, error: str) -> RunOutcome:
        """This outcome with one more error."""
        return replace(self, errors=(*self.errors, error))

    def history(self, run: Run, duration_ms: int) -> HistoryFields:
        """The history row of `run` ending with this outcome."""
        executed = [o for o in self.orders if o["status"] == "filled"]
        return HistoryFields(
            success=not self.errors,
            dry_run=run.dry_run,
            portfolio_value=self.portfolio_value,
            orders_planned=self.planned,
            orders_executed=len(executed),
            orders_failed=sum(1 for o in self.orders if o["status"] in FAILED),
            total_value_traded=sum((Decimal(o["cost"]) for o in executed), Decimal(0)),
            orders=self.orders,
            errors=self.errors,
            triggered_by=run.triggered_by,
            duration=duration_ms,
            execution_cost_bps=_cost_bps(self.orders),
        )


def _cost_bps(orders: Iterable[OrderJson]) -> Decimal | None:
    """executionCostBps (issue 16): cost bps weighted by the value each order traded."""
    return weighted_bps(
        (Decimal(str(o["costBps"])), Decimal(o.get("cost", "0")))
        for o in orders
        if o.get("costBps") is not None
    )


def intent_json(intent: OrderIntent) -> OrderJson:
    """One placed (or held back) order of a history record."""
    return {
        "symbol": intent.symbol,
        "pair": intent.pair,
        "side": intent.side,
        "volume": plain(intent.volume),
        "status": intent.status,
        "clientOrderId": intent.client_order_id,
        "txid": intent.txid,
        "volumeExecuted": plain(intent.volume_executed),
        "cost": plain(intent.cost),
        "fee": plain(intent.fee),
        "price": plain(intent.avg_price),
        "error": intent.error,
    }


def planned_json(order: PlannedOrder) -> OrderJson:
    """One order of a dry run's history record: planned, never sent."""
    return {
        "symbol": order.symbol,
        "pair": order.pair,
        "side": order.side,
        "volume": plain(order.volume),
        "status": "planned",
        "price": plain(order.price),
        "value": plain(order.value),
        "fee": plain(order.fee),
    }
