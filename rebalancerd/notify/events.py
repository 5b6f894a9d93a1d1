"""The events a daemon reports and the data each carries. Pure: every input is an argument.

Every builder returns a store NewEvent, so the caller records it in the same transaction as
the change it reports. The data never holds a secret, a key, a token or an account balance:
only the portfolio's own id, name and value, and what its run did.

Hooking up an event from another feature is one call inside the transaction that stores the
change: `await store.add_events(conn, [events.awaiting_approval(...)])` where a run is stored
as awaiting approval, and `store.set_scheduler_state(..., events=[events.scheduler_changed(
"scheduler.halted", "halt", owner, now, reason=...)])` where a halt is stored.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from rebalancerd.decimals import plain
from rebalancerd.notify.types import EVENT_TYPES, EventType
from rebalancerd.store.outbox import NewEvent
from rebalancerd.store.rows import HistoryRecord

__all__ = ["EVENT_TYPES", "EventType", "NewEvent"]
log = logging.getLogger(__name__)
TEST_EVENT = "notify.test"  # `rebalancerd notify test`: never stored, sent to every hook
NEEDS_LOOK_UP = ("intent", "placed", "unknown")  # a finished run's orders with no known fate


def new_event(type_: EventType, now: datetime, data: Mapping[str, Any]) -> NewEvent:
    """An event with a fresh id (kept by every retry of every delivery of it)."""
    return NewEvent(id=uuid.uuid4(), type=type_, created_at=now, data=dict(data))


def portfolio_ref(portfolio_id: str, name: str | None) -> dict[str, str]:
    return {"id": portfolio_id, "name": name if name is not None else portfolio_id}


def on_run_end(
    run_id: int, portfolio_name: str | None, clock: Callable[[], datetime]
) -> Callable[[HistoryRecord], list[NewEvent]]:
    """What finish_run calls inside its transaction to build the run's events."""

    def build(record: HistoryRecord) -> list[NewEvent]:
        try:
            return run_finished(run_id, portfolio_name, record, clock())
        except Exception:  # a notification's bug must not keep a run's record from closing
            log.exception("[Rebalance:%s] ERROR: notification not built", record.portfolio_id)
            return []

    return build


def run_finished(
    run_id: int, portfolio_name: str | None, record: HistoryRecord, now: datetime
) -> list[NewEvent]:
    """run.succeeded or run.failed, plus one order.unknown per order whose fate is unknown."""
    portfolio = portfolio_ref(record.portfolio_id, portfolio_name)
    run = run_json(run_id, record)
    events = [
        new_event(
            "run.succeeded" if record.success else "run.failed",
            now,
            {
                "portfolio": portfolio,
                "run": run,
            },
        )
    ]
    for order in record.orders:
        if order.get("status") in NEEDS_LOOK_UP:
            data = {"portfolio": portfolio, "run": {"id": run_id}, "order": order_json(order)}
            events.append(new_event("order.unknown", now, data))
    return events


def run_json(run_id: int, record: HistoryRecord) -> dict[str, Any]:
    """What a run did, as the events show it (money as decimal strings)."""
    # executionCostBps arrives with the maker execution feature; absent until then.
    cost_bps = getattr(record, "execution_cost_bps", None)
    return {
        "id": run_id,
        "historyId": record.id,
        "success": record.success,
        "dryRun": record.dry_run,
        "triggeredBy": record.triggered_by,
        "value": plain(record.portfolio_value),
        "traded": plain(record.total_value_traded),
        "ordersPlanned": record.orders_planned,
        "ordersExecuted": record.orders_executed,
        "ordersFailed": record.orders_failed,
        "errors": list(record.errors or []),
        "executionCostBps": None if cost_bps is None else plain(Decimal(cost_bps)),
        "durationMs": record.duration,
    }


def order_json(order: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an order that identify it for a look-up."""
    keys = ("clientOrderId", "txid", "symbol", "pair", "side", "volume", "status", "error")
    return {k: order.get(k) for k in keys}


def awaiting_approval(
    run_id: int,
    portfolio_id: str,
    portfolio_name: str | None,
    orders: Sequence[Mapping[str, Any]],
    expires_at: datetime | None,
    now: datetime,
) -> NewEvent:
    """run.awaiting_approval: a manual-approval run's plan waits for an operator."""
    return new_event(
        "run.awaiting_approval",
        now,
        {
            "portfolio": portfolio_ref(portfolio_id, portfolio_name),
            "run": {"id": run_id, "orders": [dict(o) for o in orders]},
            "expiresAt": None if expires_at is None else expires_at.isoformat(),
        },
    )


def scheduler_changed(
    type_: Literal["scheduler.started", "scheduler.stopped", "scheduler.halted"],
    action: str,
    owner: str,
    now: datetime,
    reason: str | None = None,
) -> NewEvent:
    """A scheduler start, stop or halt, and which daemon carried it out."""
    data: dict[str, Any] = {"scheduler": {"action": action, "by": owner}}
    if reason is not None:
        data["reason"] = reason
    return new_event(type_, now, data)


def scheduler_control(
    action: str, was_running: bool, running: bool, owner: str, now: datetime
) -> list[NewEvent]:
    """The events of a scheduler action: a restart always says started; others only a change."""
    if action == "restart" or (running and not was_running):
        return [scheduler_changed("scheduler.started", action, owner, now)]
    if was_running and not running:
        return [scheduler_changed("scheduler.stopped", action, owner, now)]
    return []


def daemon_event(
    type_: Literal["daemon.started", "daemon.stopping"], owner: str, version: str, now: datetime
) -> NewEvent:
    return new_event(type_, now, {"daemon": {"id": owner, "version": version}})
