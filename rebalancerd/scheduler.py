"""The loop: sleep until the next thing is due, claim due portfolios safely, run them in turn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from . import planner, schedule
from .config import SchedulerSettings
from .exchange.base import Exchange, ExchangeError
from .metrics import Metrics
from .models import HistoryRecord, Portfolio, Run, SchedulerState
from .runner import RunManager, owner_is_dead
from .store import NOTIFY_CHANNEL, Store

log = logging.getLogger(__name__)
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
MAX_SLEEP = 300.0  # re-read the database at least this often, whatever the schedule says


class PortfolioNotFound(Exception):
    """No portfolio has that id."""


class PortfolioBusy(Exception):
    """The portfolio is running now (here or in another daemon)."""


class AccountTaken(Exception):
    """A real run would trade an account that another, enabled portfolio holds."""

    def __init__(self, account: str, holder: Portfolio) -> None:
        super().__init__(account)
        self.account = account
        self.holder_id = holder.id
        self.holder_name = holder.name


@dataclass(frozen=True)
class Effective:
    """The configuration in force: the file/environment, overridden by the shared state."""

    enabled: bool
    running: bool
    check_interval: str
    dry_run: bool

    def to_api(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "checkInterval": self.check_interval,
            "dryRunMode": self.dry_run,
        }


def effective(settings: SchedulerSettings, state: SchedulerState) -> Effective:
    """Merge the shared overrides over the configured defaults."""
    enabled = settings.enabled if state.enabled is None else state.enabled
    running = settings.auto_start if state.running is None else state.running
    return Effective(
        enabled=enabled,
        running=enabled and running,
        check_interval=state.check_interval or settings.check_interval,
        dry_run=settings.dry_run if state.dry_run is None else state.dry_run,
    )


class Scheduler:
    """Owns the loop; the API calls trigger/control/status on it."""

    def __init__(
        self,
        settings: SchedulerSettings,
        store: Store,
        exchanges: Mapping[str, Exchange],
        metrics: Metrics,
        *,
        owner: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.owner = owner
        self.clock = clock
        self.runs = RunManager(
            store,
            exchanges,
            metrics,
            owner=owner,
            lease_seconds=settings.lease_seconds,
            clock=clock,
        )
        self.exchanges = exchanges
        self.config = Effective(settings.enabled, False, settings.check_interval, settings.dry_run)
        self.next_wake: datetime | None = None
        self._wake = asyncio.Event()
        self.wake_hooks: list[Callable[[], None]] = []  # told of every wake (e.g. API caches)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sleeping = False
        self._check_due: datetime | None = None  # the next check tick (drift bands)

    @property
    def heartbeat(self) -> float:
        """Monotonic time of the loop's last sign of life; an idle sleep counts as alive."""
        return time.monotonic() if self._sleeping else self.runs.heartbeat

    def wake(self) -> None:
        """Re-plan the sleep now (portfolios, triggers or config changed)."""
        self._wake.set()
        for hook in self.wake_hooks:
            hook()

    async def refresh(self) -> Effective:
        fresh = effective(self.settings, await self.store.scheduler_state())
        if fresh.check_interval != self.config.check_interval:
            self._check_due = None  # the next tick follows the new interval
        self.config = fresh
        self.metrics.scheduler_running.set(1 if self.config.running else 0)
        return self.config

    # -- the loop

    async def run(self, shutdown: asyncio.Event) -> None:
        """Until shutdown: reconcile, claim what is due, run it, sleep until the next thing."""
        failures = 0
        while not shutdown.is_set():
            self.runs.heartbeat = time.monotonic()
            self._wake.clear()  # before reading state: a change during the reads wakes us again
            try:
                delay = await self._iteration()
                failures = 0
            except DB_ERRORS as exc:
                failures += 1
                delay = min(2.0**failures, 5.0)
                log.error(
                    "[Scheduler] Database unavailable (%s); retrying in %.0fs",
                    type(exc).__name__,
                    delay,
                )
            self._sleeping = True
            try:
                await _wait_any(shutdown, self._wake, delay)
            finally:
                self._sleeping = False
                self.runs.heartbeat = time.monotonic()
        await self._drain()

    async def _iteration(self) -> float:
        config = await self.refresh()
        if config.running:
            await self.reconcile_orphans()
            if self._check_due is not None and self.clock() >= self._check_due:
                self._check_due = None
                await self.check_bands()
            if await self._claim_and_start():
                return 0.0
        return await self._sleep_seconds(config)

    async def check_bands(self) -> int:
        """A check tick: portfolios drifted out of their bands become due now; how many."""
        now = self.clock()
        moved = 0
        for portfolio in await self.store.banded_portfolios(now):
            exchange = self.exchanges.get(portfolio.account)
            if exchange is None:
                continue
            try:
                plan = await self.runs.executor.current_plan(portfolio, exchange)
            except ExchangeError as exc:
                log.warning("[Scheduler] Drift check of %s failed: %s", portfolio.id, exc)
                continue
            if plan is None or not planner.out_of_band(
                plan.current_weights,
                plan.target_weights,
                portfolio.drift_band_abs,
                portfolio.drift_band_rel,
            ):
                continue
            log.info(
                "[Scheduler] Portfolio %s (%s) drifted out of its band; rebalancing now",
                portfolio.name,
                portfolio.id,
            )
            await self.store.set_next_rebalance(None, portfolio.id, now)
            moved += 1
        return moved

    async def _sleep_seconds(self, config: Effective) -> float:
        now = self.clock()
        candidates = [now + timedelta(seconds=MAX_SLEEP)]
        if config.running:
            if self._check_due is None:
                self._check_due = schedule.next_check(config.check_interval, now)
            candidates.append(self._check_due)
            for at in (
                await self.store.earliest_due(),
                await self.store.earliest_foreign_lease(self.owner),
            ):
                if at is not None:
                    candidates.append(at)
        self.next_wake = min(candidates)
        due = await self.store.earliest_due()
        self.metrics.next_due.set(due.timestamp() if due else 0)
        return max((self.next_wake - now).total_seconds(), 0.0)

    async def _claim_and_start(self) -> bool:
        """Claim up to the free concurrency; True if anything was claimed."""
        free = self.settings.max_concurrency - len(self.runs.active)
        if free <= 0 or self.runs.stopping.is_set():
            return False
        busy = sorted({r.account for r in self.runs.active.values()})
        claimed = await self.claim_due(free, busy)
        if not claimed:
            return False
        log.info("[Scheduler] Found %d portfolio(s) that need rebalancing", len(claimed))
        for run, portfolio in claimed:
            lag = (self.clock() - run.slot).total_seconds() if run.slot else 0.0
            self.metrics.loop_lag.observe(max(lag, 0.0))
            log.info("[Scheduler] Rebalancing portfolio: %s (%s)", portfolio.name, portfolio.id)
            if self.settings.max_concurrency == 1:
                await self.runs.execute(run, portfolio)
            else:
                self._spawn(self.runs.execute(run, portfolio), f"run-{run.id}")
        return self.settings.max_concurrency == 1 or len(claimed) == free

    async def claim_due(self, limit: int, busy_accounts: list[str]) -> list[tuple[Run, Portfolio]]:
        """Claim due portfolios: row locks skip what others hold; the slot key runs each once."""
        now = self.clock()
        claimed = []
        async with self.store.transaction() as conn:
            for portfolio in await self.store.lock_due(conn, now, limit, busy_accounts):
                slot = portfolio.next_rebalance_at or now
                run = await self.store.insert_run(
                    conn,
                    portfolio,
                    slot,
                    "scheduler",
                    self.config.dry_run,
                    self.owner,
                    self.settings.lease_seconds,
                )
                await self.store.set_next_rebalance(
                    conn, portfolio.id, _next_after(portfolio, slot, now)
                )
                if run is not None:
                    claimed.append((run, portfolio))
        return claimed

    async def reconcile_orphans(self) -> int:
        """Take over and finish runs whose daemon died; returns how many."""
        done = 0
        for run in await self.store.open_runs():
            if run.owner == self.owner:
                continue
            dead = run.owner if owner_is_dead(run.owner) else ""
            taken = await self.store.take_over_run(
                run.id, self.owner, self.settings.lease_seconds, dead
            )
            if taken is not None:
                await self.runs.reconcile(taken)
                done += 1
        return done

    # -- manual triggers and control

    async def trigger(
        self, portfolio_id: str, dry_run: bool | None = None, triggered_by: str = "api"
    ) -> HistoryRecord | None:
        """Run one portfolio now through the same claim path; PortfolioBusy if it runs.

        AccountTaken when a real run would trade an account an enabled portfolio holds.
        """
        async with self.store.transaction() as conn:
            portfolio = await self.store.try_lock_portfolio(conn, portfolio_id)
            if portfolio is None:
                if await self.store.get_portfolio(portfolio_id, conn) is None:
                    raise PortfolioNotFound(portfolio_id)
                raise PortfolioBusy(portfolio_id)  # being claimed, triggered or finished
            dry = self.config.dry_run if dry_run is None else dry_run
            if not dry:  # one account's balance is one pool, as creation enforces
                holder = await self.store.account_holder(conn, portfolio.account, portfolio.id)
                if holder is not None:
                    raise AccountTaken(portfolio.account, holder)
            run = await self.store.insert_run(
                conn, portfolio, None, triggered_by, dry, self.owner, self.settings.lease_seconds
            )
            if run is None:
                raise PortfolioBusy(portfolio_id)
        log.info("[Scheduler] Manual rebalance of %s (%s)", portfolio.name, portfolio.id)
        return await self.runs.execute(run, portfolio)

    async def preview(self, portfolio_id: str) -> dict[str, Any]:
        """The plan a run would make now (calls the exchange, places nothing)."""
        portfolio = await self.store.get_portfolio(portfolio_id)
        if portfolio is None:
            raise PortfolioNotFound(portfolio_id)
        exchange = self.exchanges.get(portfolio.account)
        if exchange is None:
            return {
                "portfolioValue": 0,
                "plan": None,
                "errors": [f"account {portfolio.account!r} is not configured"],
            }
        return await self.runs.executor.preview(portfolio, exchange)

    async def control(self, action: str, config: Mapping[str, Any] | None = None) -> Effective:
        """start | stop | restart | update-config, stored so every daemon obeys."""
        state = await self.store.scheduler_state()
        running, enabled = state.running, state.enabled
        interval, dry = state.check_interval, state.dry_run
        if action in ("start", "restart"):
            running = True
            enabled = True if enabled is False else enabled
        elif action == "stop":
            running = False
        elif action == "update-config":
            config = config or {}
            enabled = _flag(config, "enabled", enabled)
            dry = _flag(config, "dryRunMode", dry)
            interval = config.get("checkInterval", interval)
            if interval is not None:
                # A bad cron stored here would stop every daemon's loop: refuse it first.
                SchedulerSettings(check_interval=interval)
        else:
            raise ValueError(f"unknown action {action!r}")
        await self.store.set_scheduler_state(running, enabled, interval, dry)
        log.info("[Scheduler] %s", _said(action))
        self.wake()
        return await self.refresh()

    def status(self) -> dict[str, Any]:
        return {
            "isRunning": self.config.running,
            "config": self.config.to_api(),
            "activeTasks": len(self.runs.active),
            "nextWakeAt": self.next_wake,
            "instance": self.owner,
        }

    # -- tasks and notifications

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _t: self.wake())

    async def _drain(self) -> None:
        """Graceful stop: let running orders reach a safe point, then end."""
        self.runs.stopping.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def listen(self, shutdown: asyncio.Event) -> None:
        """Wake on other daemons' NOTIFY; reconnects when the database comes back."""
        while not shutdown.is_set():
            try:
                async with self.store.pool.acquire() as conn:
                    await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                    try:
                        self.wake()  # anything may have changed while we were not listening
                        while not shutdown.is_set() and not conn.is_closed():
                            await _wait_any(shutdown, asyncio.Event(), 5.0)
                            await conn.fetchval("SELECT 1", timeout=5)
                    finally:
                        if not conn.is_closed():
                            await conn.remove_listener(NOTIFY_CHANNEL, self._on_notify)
            except DB_ERRORS as exc:
                log.warning("[Scheduler] Notification listener lost (%s)", type(exc).__name__)
                await _wait_any(shutdown, asyncio.Event(), 2.0)

    def _on_notify(self, *_args: Any) -> None:
        self.wake()


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
    if interval in ("hourly", "daily", "weekly", "monthly"):
        return now, now
    first = schedule.next_slot(rule, now, now)
    return first, first


def _next_after(portfolio: Portfolio, slot: datetime, now: datetime) -> datetime:
    rule = schedule.parse_rule(portfolio.rebalance_interval, portfolio.schedule_tz)
    anchor = portfolio.schedule_anchor or slot
    return schedule.slot_after_run(rule, anchor, slot, now)


def _flag(config: Mapping[str, Any], key: str, current: bool | None) -> bool | None:
    value = config.get(key, current)
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"config.{key} must be true or false")
    return value


def _said(action: str) -> str:
    return {
        "start": "Scheduler started successfully",
        "stop": "Scheduler stopped",
        "restart": "Scheduler restarted",
        "update-config": "Configuration updated",
    }[action]


async def _wait_any(shutdown: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    """Sleep until either event is set or the timeout passes."""
    waiters = {asyncio.ensure_future(shutdown.wait()), asyncio.ensure_future(wake.wait())}
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await w
