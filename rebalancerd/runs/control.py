"""What operators steer: the scheduler state shared by every daemon (start, stop, update-config),
the configuration in force, and the errors a manual trigger answers with."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from rebalancerd.config import SchedulerSettings
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import Portfolio, Run, SchedulerState

ACTIONS = {
    "start": "Scheduler started successfully",
    "stop": "Scheduler stopped",
    "restart": "Scheduler restarted",
    "update-config": "Configuration updated",
    # safety controls: the kill switch (runs/loop.py Scheduler.halt)
    "halt": "Scheduler HALTED: no run is claimed or started; runs in flight stop before their "
    "next order and cancel what rests (resume to go on)",
    "resume": "Scheduler resumed after a halt",
}  # each action, and what the log says once it is done


class PortfolioNotFound(Exception):
    """No portfolio has that id."""


class PortfolioBusy(Exception):
    """The portfolio is running now (here or in another daemon)."""


class Halted(Exception):
    """The kill switch is set: nothing is claimed, triggered or approved until resume."""


class AccountTaken(Exception):
    """A real run would trade an account that another, enabled portfolio holds."""

    def __init__(self, account: str, holder: Portfolio) -> None:
        super().__init__(account)
        self.account = account
        self.holder_id = holder.id
        self.holder_name = holder.name


class AccountUnavailable(Exception):
    """The portfolio's account is not configured (a reload removed it, or it never was)."""

    def __init__(self, account: str) -> None:
        super().__init__(account)
        self.account = account


@dataclass(frozen=True)
class ManualRun:
    """How a manual trigger's run is opened."""

    dry_run: bool
    triggered_by: str
    owner: str
    lease_seconds: float


async def claim_manual(
    store: Store, portfolio_id: str, how: ManualRun, accounts: Collection[str]
) -> tuple[Run, Portfolio]:
    """Open a run of one portfolio now, under the same lock and slot key as the scheduler's."""
    async with store.transaction() as conn:
        portfolio = await store.try_lock_portfolio(conn, portfolio_id)
        if portfolio is None:
            if await store.get_portfolio(portfolio_id, conn) is None:
                raise PortfolioNotFound(portfolio_id)
            raise PortfolioBusy(portfolio_id)  # being claimed, triggered or finished
        if await store.is_halted(conn):
            raise Halted
        if not how.dry_run:  # one account's balance is one pool, as creation enforces
            holder = await store.account_holder(conn, portfolio.account, portfolio.id)
            if holder is not None:
                raise AccountTaken(portfolio.account, holder)
        run = await store.insert_run(
            conn, portfolio, None, how.triggered_by, how.dry_run, how.owner, how.lease_seconds
        )
        if run is None:
            raise PortfolioBusy(portfolio_id)
        if portfolio.account not in accounts:  # rolls the run back
            raise AccountUnavailable(portfolio.account)
    return run, portfolio


@dataclass(frozen=True)
class Effective:
    """The configuration in force: the file/environment, overridden by the shared state."""

    enabled: bool
    running: bool
    check_interval: str
    dry_run: bool
    halted: bool = False  # the kill switch (not claiming, whatever `running` was)


def effective(settings: SchedulerSettings, state: SchedulerState) -> Effective:
    """Merge the shared overrides over the configured defaults."""
    enabled = settings.enabled if state.enabled is None else state.enabled
    running = settings.auto_start if state.running is None else state.running
    return Effective(
        enabled=enabled,
        running=enabled and running and not state.halted,
        check_interval=state.check_interval or settings.check_interval,
        dry_run=settings.dry_run if state.dry_run is None else state.dry_run,
        halted=state.halted,
    )


def requested_state(
    state: SchedulerState, action: str, config: Mapping[str, Any]
) -> SchedulerState:
    """The shared state after `action`; ValueError for an unknown action or a bad config."""
    if action in ("start", "restart"):
        return replace(
            state, running=True, enabled=True if state.enabled is False else state.enabled
        )
    if action == "stop":
        return replace(state, running=False)
    if action != "update-config":
        raise ValueError(f"unknown action {action!r}")
    enabled = _flag(config, "enabled", state.enabled)
    dry_run = _flag(config, "dryRunMode", state.dry_run)
    interval = config.get("checkInterval", state.check_interval)
    if interval is not None:
        # A bad cron stored here would stop every daemon's loop: refuse it first.
        SchedulerSettings(check_interval=interval)
    return replace(state, enabled=enabled, dry_run=dry_run, check_interval=interval)


def _flag(config: Mapping[str, Any], key: str, current: bool | None) -> bool | None:
    value = config.get(key, current)
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"config.{key} must be true or false")
    return value
