"""What an event says to a person: a title, a few lines and how urgent it is. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rebalancerd.decimals import eur

Level = Literal["good", "info", "warning", "danger"]

TITLES = {
    "run.succeeded": "Rebalance succeeded",
    "run.failed": "Rebalance failed",
    "order.unknown": "Order outcome unknown: needs a look-up",
    "run.awaiting_approval": "Rebalance awaiting approval",
    "scheduler.started": "Scheduler started",
    "scheduler.stopped": "Scheduler stopped",
    "scheduler.halted": "Scheduler halted",
    "daemon.started": "rebalancerd started",
    "daemon.stopping": "rebalancerd stopping",
    "notify.test": "Test notification from rebalancerd",
}
LEVELS: dict[str, Level] = {
    "run.succeeded": "good",
    "run.failed": "danger",
    "order.unknown": "danger",
    "run.awaiting_approval": "warning",
    "scheduler.halted": "danger",
    "scheduler.stopped": "warning",
}
MAX_ERRORS = 5


@dataclass(frozen=True)
class Summary:
    title: str
    lines: tuple[str, ...]
    level: Level


def summarize(type_: str, data: Mapping[str, Any]) -> Summary:
    """The title and lines a chat message or phone notification shows."""
    title = TITLES.get(type_, type_)
    portfolio = data.get("portfolio")
    if isinstance(portfolio, Mapping):
        title = f"{title}: {portfolio.get('name')}"
    return Summary(title, tuple(_lines(type_, data)), LEVELS.get(type_, "info"))


def _lines(type_: str, data: Mapping[str, Any]) -> list[str]:
    run = data.get("run") if isinstance(data.get("run"), Mapping) else None
    order = data.get("order") if isinstance(data.get("order"), Mapping) else None
    lines: list[str] = []
    if order is not None:
        lines.append(
            f"{order.get('side')} {order.get('volume')} {order.get('symbol')} "
            f"(client order id {order.get('clientOrderId')}): {order.get('error') or 'no answer'}"
        )
    if run is not None and "value" in run:
        lines += _run_lines(run)
    scheduler = data.get("scheduler")
    if isinstance(scheduler, Mapping):
        lines.append(f"action {scheduler.get('action')} by {scheduler.get('by')}")
    if data.get("reason"):
        lines.append(f"reason: {data['reason']}")
    daemon = data.get("daemon")
    if isinstance(daemon, Mapping):
        lines.append(f"daemon {daemon.get('id')} (version {daemon.get('version')})")
    if type_ == "notify.test":
        lines.append("If you can read this, the webhook works.")
    return lines


def _run_lines(run: Mapping[str, Any]) -> list[str]:
    dry = " (dry run)" if run.get("dryRun") else ""
    lines = [
        f"Run {run.get('id')}{dry}: value {eur_text(run.get('value'))}, "
        f"traded {eur_text(run.get('traded'))}, {run.get('ordersExecuted')} order(s) executed, "
        f"{run.get('ordersFailed')} failed",
    ]
    if run.get("executionCostBps") is not None:
        lines.append(f"execution cost {run['executionCostBps']} bps")
    errors = list(run.get("errors") or [])
    lines += [f"error: {e}" for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        lines.append(f"... and {len(errors) - MAX_ERRORS} more error(s)")
    return lines


def eur_text(value: Any) -> str:
    return "-" if value is None else eur(value)
