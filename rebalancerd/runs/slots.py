"""Which slot a portfolio runs: its first, the next after a claim, the retry after a failure
(the maths is rebalancerd/schedule.py; this applies it to a portfolio's stored rule)."""

from __future__ import annotations

from datetime import datetime

from rebalancerd import schedule
from rebalancerd.store.rows import Portfolio

FIXED = ("hourly", "daily", "weekly", "monthly")


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
    """The slot after the one just claimed (missed ones coalesce)."""
    rule = schedule.parse_rule(portfolio.rebalance_interval, portfolio.schedule_tz)
    anchor = portfolio.schedule_anchor or slot
    return schedule.slot_after_run(rule, anchor, slot, now)


def retry_at(portfolio: Portfolio, slot: datetime, now: datetime) -> datetime:
    """When a portfolio whose run of `slot` failed tries again (backoff, never past its slot)."""
    rule = schedule.parse_rule(portfolio.rebalance_interval, portfolio.schedule_tz)
    anchor = portfolio.schedule_anchor or slot
    return schedule.retry_after_failure(rule, anchor, slot, now, portfolio.failure_count)
