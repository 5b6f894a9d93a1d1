"""The scheduler loop: sleep until the next thing is due, claim due portfolios, run them; and the
entry points the API calls (trigger, preview, control, status)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from rebalancerd import schedule
from rebalancerd.aio import wait_first
from rebalancerd.backoff import doubling
from rebalancerd.config import SchedulerSettings
from rebalancerd.exchange.protocol import Exchange, ExchangeError
from rebalancerd.metrics import Metrics
from rebalancerd.planning import plan as planner
from rebalancerd.runs import slots
from rebalancerd.runs.control import (
    ACTIONS,
    AccountTaken,
    Effective,
    PortfolioBusy,
    PortfolioNotFound,
    effective,
    requested_state,
)
from rebalancerd.runs.lifecycle import RunManager, owner_is_dead
from rebalancerd.runs.trade import Preview
from rebalancerd.store.database import DB_ERRORS
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import HistoryRecord, Portfolio, Run

log = logging.getLogger(__name__)
MAX_SLEEP = 300.0  # re-read the database at least this often, whatever the schedule says


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
        self.config = Effective(settings.enabled, False, settings.check_interval, settings.dry_run)
        self.next_wake: datetime | None = None
        self._wake = asyncio.Event()
        self.wake_hooks: list[Callable[[], None]] = []  # told of every wake (e.g. API caches)
        self._tasks: set[asyncio.Task[HistoryRecord | None]] = set()
        self._sleeping = False
        self._beat = time.monotonic()  # the loop's last sign of life
        self._check_due: datetime | None = None  # the next check tick (drift bands)

    @property
    def heartbeat(self) -> float:
        """Monotonic time of the loop's last sign of life; an idle sleep counts as alive."""
        return time.monotonic() if self._sleeping else max(self._beat, self.runs.heartbeat)

    @property
    def active_runs(self) -> int:
        """How many runs this daemon is executing now."""
        return self.runs.active_count

    def stop_runs(self) -> None:
        """Shutdown: runs bring their current order step to a safe point; none starts."""
        self.runs.stop()

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
            self._beat = time.monotonic()
            self._wake.clear()  # before reading state: a change during the reads wakes us again
            try:
                delay = await self._iteration()
                failures = 0
            except DB_ERRORS as exc:
                failures += 1
                delay = doubling(failures - 1, 2.0, 5.0)
                log.error(
                    "[Scheduler] Database unavailable (%s); retrying in %.0fs",
                    type(exc).__name__,
                    delay,
                )
            self._sleeping = True
            try:
                await wait_first(shutdown, self._wake, timeout=delay)
            finally:
                self._sleeping = False
                self._beat = time.monotonic()
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
            try:
                plan = await self.runs.current_plan(portfolio)
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
        free = self.settings.max_concurrency - self.runs.active_count
        if free <= 0 or self.runs.stopping:
            return False
        claimed = await self.claim_due(free, self.runs.busy_accounts())
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
                    conn, portfolio.id, slots.next_after(portfolio, slot, now)
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

    async def preview(self, portfolio_id: str) -> Preview:
        """The plan a run would make now (calls the exchange, places nothing)."""
        portfolio = await self.store.get_portfolio(portfolio_id)
        if portfolio is None:
            raise PortfolioNotFound(portfolio_id)
        return await self.runs.preview(portfolio)

    async def control(self, action: str, config: Mapping[str, Any] | None = None) -> Effective:
        """start | stop | restart | update-config, stored so every daemon obeys."""
        wanted = requested_state(await self.store.scheduler_state(), action, config or {})
        await self.store.set_scheduler_state(
            wanted.running, wanted.enabled, wanted.check_interval, wanted.dry_run
        )
        log.info("[Scheduler] %s", ACTIONS[action])
        self.wake()
        return await self.refresh()

    def exchange(self, account: str) -> Exchange | None:
        """The account's exchange (the API checks symbols against its markets); None if unknown."""
        return self.runs.exchanges.get(account)

    # -- tasks and notifications

    def _spawn(self, coro: Coroutine[object, object, HistoryRecord | None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _t: self.wake())

    async def _drain(self) -> None:
        """Graceful stop: let running orders reach a safe point, then end."""
        self.runs.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def listen(self, shutdown: asyncio.Event) -> None:
        """Wake on other daemons' NOTIFY; reconnects when the database comes back."""
        while not shutdown.is_set():
            try:
                await self.store.listen(self.wake, shutdown)
            except DB_ERRORS as exc:
                log.warning("[Scheduler] Notification listener lost (%s)", type(exc).__name__)
                await wait_first(shutdown, timeout=2.0)
