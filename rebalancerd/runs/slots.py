"""Which slot a portfolio runs: its first, the next after a claim, the retry after a failure
(the maths is rebalancerd/schedule.py; this applies it to a portfolio's stored rule)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from rebalancerd import schedule
from rebalancerd.store.rows import Portfolio

FIXED = ("hourly", "daily", "weekly", "monthly")
WEIGHT_TOLERANCE = Decimal("0.01")


def first_slot(
    interval: str, tz: str | None, now: datetime, requested: datetime | None = None
) -> tuple[datetime, datetime]:
    """(anchor, next_rebalance_at) of a newly scheduled portfolio; ValueError if invalid.

    Fixed intervals start at once (or at `requested`), as the original's NULL next run did;
    cron schedules start at their next fire time.
    """
    rule = schedule.parse_rule(interval, tz)
    if requested is not None:
        return requested, requested
    if interval in FIXED:
        return now, now
    first = schedule.next_slot(rule, now, now)
    return first, first


def next_after(portfolio: Portfolio, slot: datetime, now: datetime) -> datetime:
    """The slot after the one just claimed (missed ones coalesce).

    A stored schedule that no longer parses (written by hand or by an older version) has no
    next slot: the portfolio waits a backoff instead, so its failing run is not retried at once.
    """
    try:
        rule = schedule.parse_rule(portfolio.rebalance_interval, portfolio.schedule_tz)
    except ValueError:
        return now + schedule.backoff(portfolio.failure_count + 1)
    anchor = portfolio.schedule_anchor or slot
    return schedule.slot_after_run(rule, anchor, slot, now)


def retry_at(portfolio: Portfolio, slot: datetime, now: datetime) -> datetime:
    """When a portfolio whose run of `slot` failed tries again (backoff, never past its slot)."""
    failures = max(portfolio.failure_count, 1)
    try:
        rule = schedule.parse_rule(portfolio.rebalance_interval, portfolio.schedule_tz)
    except ValueError:
        return now + schedule.backoff(failures)
    anchor = portfolio.schedule_anchor or slot
    return schedule.retry_after_failure(rule, anchor, slot, now, failures)


def problem(portfolio: Portfolio) -> str | None:
    """Why a stored portfolio cannot run (a schedule or weights the API would refuse), if so."""
    try:
        schedule.parse_rule(portfolio.rebalance_interval, portfolio.schedule_tz)
    except ValueError as exc:
        return f"stored schedule is unusable: {exc}"
    reason = weights_problem(portfolio.target_weights)
    return None if reason is None else f"stored target weights are unusable: {reason}"


def weights_problem(weights: Any) -> str | None:
    """Why stored target weights are not {symbol: number >= 0} summing to 100, if they are not."""
    if not isinstance(weights, dict) or not weights:
        return f"expected an object of symbol: weight, got {_shown(weights)}"
    total = Decimal(0)
    for symbol, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float | str | Decimal):
            return f"weight of {symbol} is not a number: {_shown(weight)}"
        try:
            value = Decimal(str(weight))
        except InvalidOperation:
            return f"weight of {symbol} is not a number: {_shown(weight)}"
        if not value.is_finite() or value < 0:
            return f"weight of {symbol} is not a number >= 0: {_shown(weight)}"
        total += value
    if abs(total - 100) > WEIGHT_TOLERANCE:
        return f"weights sum to {total}, not 100"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
