"""Runs awaiting approval: hand one to this daemon to execute, end one as rejected or expired."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from rebalancerd.planning.safety import order_values
from rebalancerd.runs.control import AccountUnavailable, Halted, PortfolioBusy
from rebalancerd.runs.outcome import RunOutcome
from rebalancerd.runs.safety import RunChecks
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import HistoryRecord, Portfolio, Run

log = logging.getLogger(__name__)
AWAITING = "awaiting_approval"


class RunNotFound(Exception):
    """No run has that id."""


class RunNotAwaiting(Exception):
    """The run is not awaiting approval (any more): `status` says what it is."""

    def __init__(self, run_id: int, status: str) -> None:
        super().__init__(f"run {run_id} is {status}, not awaiting approval")
        self.status = status


@dataclass(frozen=True)
class Approving:
    """An awaiting run handed to this daemon, with the orders that were approved."""

    run: Run
    portfolio: Portfolio
    checks: RunChecks


async def claim_approved(
    store: Store,
    run_id: int,
    how: tuple[str, float],
    now: datetime,
    accounts: Collection[str],
) -> Approving:
    """Take an awaiting run to execute (owner, lease seconds in `how`), under the portfolio's
    lock like any claim; RunNotFound, RunNotAwaiting, PortfolioBusy, Halted or
    AccountUnavailable otherwise. An expired run is RunNotAwaiting("expired") (close_lapsed
    records it)."""
    found = await store.get_run(run_id)
    if found is None:
        raise RunNotFound(run_id)
    async with store.transaction() as conn:
        portfolio = await store.try_lock_portfolio(conn, found.portfolio_id)
        if portfolio is None:
            raise PortfolioBusy(found.portfolio_id)
        if await store.is_halted(conn):
            raise Halted
        run = await store.get_run(run_id, conn)
        assert run is not None
        if run.status != AWAITING:
            raise RunNotAwaiting(run_id, run.status)
        if run.expires_at is not None and run.expires_at <= now:
            raise RunNotAwaiting(run_id, "expired")
        if portfolio.account not in accounts:
            raise AccountUnavailable(portfolio.account)
        resumed = await store.resume_approved_run(conn, run_id, *how)
        assert resumed is not None  # the portfolio's lock keeps the run as it was read
    approved = order_values((run.plan or {}).get("orders", []))
    log.info("[Scheduler] Run %d of portfolio %s approved", run_id, portfolio.id)
    return Approving(resumed, portfolio, RunChecks(approved=approved))


async def close_awaiting(store: Store, run: Run, status: str, reason: str) -> HistoryRecord | None:
    """End an awaiting run as `status` (rejected | expired): a history row says nothing was
    placed and why. None when it was not awaiting any more."""
    plan = run.plan or {}
    outcome = RunOutcome(
        portfolio_value=Decimal(str(plan.get("value", 0))),
        planned=len(plan.get("orders", [])),
        errors=(f"skipped: {reason}; nothing was placed",),
    )
    record = await store.close_awaiting(run, status, outcome.history(run, 0))
    if record is not None:
        log.warning("[Rebalance:%s] WARN: run %d %s: %s", run.portfolio_id, run.id, status, reason)
    return record


async def close_lapsed(store: Store, now: datetime) -> int:
    """Record every run whose approval has lapsed by `now` as expired; how many."""
    closed = 0
    for run_id in await store.lapsed_runs(now):
        run = await store.get_run(run_id)
        if run is None or run.status != AWAITING:
            continue
        when = run.expires_at.isoformat() if run.expires_at else "its expiry"
        if await close_awaiting(store, run, "expired", f"approval expired at {when}"):
            closed += 1
    return closed
