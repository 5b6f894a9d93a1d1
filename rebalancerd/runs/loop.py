"""The scheduler loop: sleep until the next thing is due, claim due portfolios, run them; and the
entry points the API calls (trigger, preview, control, status)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from rebalancerd import schedule
from rebalancerd.aio import wait_first
from rebalancerd.backoff import doubling
from rebalancerd.config import SchedulerSettings
from rebalancerd.exchange.protocol import Exchange
from rebalancerd.metrics import Metrics
from rebalancerd.notify import events as notify_events
from rebalancerd.runs import approval, bands, slots, snapshots
from rebalancerd.runs.control import (
    ACTIONS,
    Effective,
    ManualRun,
    PortfolioNotFound,
    claim_manual,
    effective,
    requested_state,
)
from rebalancerd.runs.lifecycle import Ended, RunManager, owner_is_dead
from rebalancerd.runs.safety import RunChecks
from rebalancerd.runs.trade import Preview, RunPlan
from rebalancerd.runs.waking import STEP_CHECK, WARM_AHEAD, Warmup, sleep_until
from rebalancerd.store.database import DB_ERRORS
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import HistoryRecord, Portfolio, Run

log = logging.getLogger(__name__)
MAX_SLEEP = 300.0  # re-read the database at least this often, whatever the schedule says
RECHECK = 1.0  # a portfolio due but not claimable (its account busy, its row held): look again
LOOK_NOW = datetime.min.replace(tzinfo=UTC)  # a wake time not known yet: look at once


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
        warm_ahead: float = WARM_AHEAD,
        step_check: float = STEP_CHECK,
        max_trade_value: Decimal | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.exchanges = exchanges  # updated in place by a reload: every reader sees the change
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
        self.runs.max_trade_value = max_trade_value  # [safety] max_trade_value_eur
        self.config = Effective(settings.enabled, False, settings.check_interval, settings.dry_run)
        self._halt_check: asyncio.Task[Effective] | None = None
        self.next_wake: datetime | None = None
        self._wake = asyncio.Event()
        self.wake_hooks: list[Callable[[], None]] = []  # told of every wake (e.g. API caches)
        self._tasks: set[asyncio.Task[Ended]] = set()
        self._sleeping = False
        self._beat = time.monotonic()  # the loop's last sign of life
        self._check_due: datetime | None = None  # the next check tick (drift bands)
        self._looked_at: datetime | None = None  # when the last claim looked for due portfolios
        self._lapse: datetime | None = LOOK_NOW  # the next approval to expire (None: none)
        self._foreign = True  # another daemon's run may be open (reconcile_orphans looks)
        self._warmup = Warmup(exchanges, warm_ahead)
        self._step_check = step_check

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

    @property
    def accounts(self) -> Collection[str]:
        """The names of the accounts configured now (a reload may add or remove some)."""
        return self.exchanges.keys()

    def reconfigure(self, settings: SchedulerSettings) -> None:
        """A reload: the loop and the runs it starts use the new settings from now on."""
        self.settings = settings
        self.runs.lease_seconds = settings.lease_seconds  # leases kept from their next renewal
        self.wake()

    def wake(self) -> None:
        """Re-plan the sleep now (portfolios, triggers or config changed)."""
        self._wake.set()
        for hook in self.wake_hooks:
            hook()
        if self.runs.active_count and (self._halt_check is None or self._halt_check.done()):
            # A run may hold the loop: read the state now, so another daemon's halt stops it.
            self._halt_check = asyncio.create_task(self.refresh(), name="halt-check")
            self._halt_check.add_done_callback(_quiet)

    async def refresh(self) -> Effective:
        fresh = effective(self.settings, await self.store.scheduler_state())
        if fresh.check_interval != self.config.check_interval:
            self._check_due = None  # the next tick follows the new interval
        if fresh.halted != self.config.halted:
            self._log_halt(fresh.halted)
        self.runs.halt(fresh.halted)
        self.config = fresh
        self.metrics.scheduler_running.set(1 if self.config.running else 0)
        self.metrics.halted.set(1 if fresh.halted else 0)
        return self.config

    def _log_halt(self, halted: bool) -> None:
        """The one place a daemon reports the kill switch turning (here or in another daemon)."""
        if halted:
            log.warning("[Scheduler] %s", ACTIONS["halt"])
        else:
            log.warning("[Scheduler] %s", ACTIONS["resume"])

    # -- the loop

    async def run(self, shutdown: asyncio.Event) -> None:
        """Until shutdown: reconcile, claim what is due, run it, sleep until the next thing."""
        failures = 0
        while not shutdown.is_set():
            self._beat = time.monotonic()
            self._wake.clear()  # before reading state: a change during the reads wakes us again
            try:
                until = await self._iteration()
                failures = 0
            except DB_ERRORS as exc:
                failures += 1
                delay = doubling(failures - 1, 2.0, 5.0)
                until = self.clock() + timedelta(seconds=delay)
                log.error(
                    "[Scheduler] Database unavailable (%s); retrying in %.0fs",
                    type(exc).__name__,
                    delay,
                )
            self._sleeping = True
            try:
                await sleep_until(
                    until, self.clock, shutdown, self._wake, check_every=self._step_check
                )
            finally:
                self._sleeping = False
                self._beat = time.monotonic()
        await self._drain()

    async def _iteration(self) -> datetime:
        """One pass; the wall-clock time to sleep until. Approvals are expired and other
        daemons' runs looked at only when the last wake times say there may be some to do."""
        config = await self.refresh()
        if self._lapse is not None and self._lapse <= self.clock():
            await self.expire_approvals()
        if config.running:
            if self._foreign:
                await self.reconcile_orphans()
            if self._check_due is not None and self.clock() >= self._check_due:
                self._check_due = None
                planned: dict[str, RunPlan | None] = {}  # one balance read per portfolio a tick
                await self.check_bands(planned)
                await self.take_snapshots(planned)
            if await self._claim_and_start():
                self._lapse, self._foreign = LOOK_NOW, True  # a run went by: look again
                return self.clock()
        return await self._next_wake(config)

    async def check_bands(self, planned: dict[str, RunPlan | None] | None = None) -> int:
        """A check tick: portfolios drifted out of their bands become due now; how many.
        Each planning made goes into `planned`, for the tick's snapshots."""
        made = {} if planned is None else planned
        return await bands.move_drifted(self.store, self.runs, self.clock(), made)

    async def take_snapshots(self, planned: Mapping[str, RunPlan | None] | None = None) -> int:
        """A check tick's snapshots for the dashboard (and old ones pruned); how many.
        `planned`: the tick's plannings so far (the drift check's), reused, not read again."""
        settings = self.settings
        written = await snapshots.tick(
            self.store,
            self.runs,
            settings.snapshot_retention_days,
            settings.snapshot_every_tick,
            planned or {},
        )
        if written:
            await self.store.notify("snapshots")  # open dashboards refresh
        return written

    async def _next_wake(self, config: Effective) -> datetime:
        """The earliest of: the next check tick, due slot, foreign lease expiry, approval
        expiry, warm-up."""
        now = self.clock()
        candidates = [now + timedelta(seconds=MAX_SLEEP)]
        due, lease, self._lapse = await self.store.wake_times(self.owner)
        self._foreign = lease is not None  # another daemon's run is open: it may die
        if self._lapse is not None:
            candidates.append(self._lapse)
        if config.running:
            if self._check_due is None:
                self._check_due = schedule.next_check(config.check_interval, now)
            candidates.append(self._check_due)
            await self._warmup.warm_due(due, now, self.store.due_accounts)
            warm = self._warmup.wake_at(due, now)
            candidates += [at for at in (self._due_wake(due), lease, warm) if at is not None]
        self.next_wake = min(candidates)
        self.metrics.next_due.set(due.timestamp() if due else 0)
        return self.next_wake

    def _due_wake(self, due: datetime | None) -> datetime | None:
        """When to wake for the earliest due portfolio. One the last claim saw due and left
        does not wake the loop at once, which would spin on the database: with every slot
        taken it waits for a run to end (that wakes the loop); otherwise (its account busy,
        its row held by another daemon's claim) it is looked at again after RECHECK."""
        looked = self._looked_at
        if due is None or looked is None or due > looked:
            return due
        if self.runs.active_count >= self.settings.max_concurrency:
            return None
        return looked + timedelta(seconds=RECHECK)

    async def _claim_and_start(self) -> bool:
        """Claim up to the free concurrency; True when the loop should look again at once
        (a run ended inline, so there may be more to claim)."""
        self._looked_at = self.clock()
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
        # Concurrent runs wake the loop when they end; a run made inline has ended already.
        return self.settings.max_concurrency == 1

    async def claim_due(self, limit: int, busy_accounts: list[str]) -> list[tuple[Run, Portfolio]]:
        """Claim due portfolios: row locks skip what others hold; the slot key runs each once.
        Two statements whatever the limit: the claim with its runs, then the next slots."""
        now = self.clock()
        locked = await self.store.claim_due(
            now,
            limit,
            busy_accounts,
            dry_run=self.config.dry_run,
            owner=self.owner,
            lease_seconds=self.settings.lease_seconds,
        )
        moves = []
        for portfolio, _run in locked:
            slot = portfolio.next_rebalance_at or now
            moves.append((portfolio.id, slot, slots.next_after(portfolio, slot, now)))
        await self.store.advance_slots(moves)
        return [(run, portfolio) for portfolio, run in locked if run is not None]

    async def reconcile_orphans(self) -> int:
        """Take over and finish runs whose daemon died; returns how many."""
        done = 0
        for run in await self.store.open_runs(other_than=self.owner):
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
        self,
        portfolio_id: str,
        dry_run: bool | None = None,
        triggered_by: str = "api",
        force: bool = False,
    ) -> Ended:
        """Run one portfolio now through the same claim path; PortfolioBusy if it runs.

        AccountTaken when a real run would trade an account an enabled portfolio holds;
        AccountUnavailable when its account is not configured (any more); Halted while the
        kill switch is set. `force` passes the price-jump guard. A manual-approval portfolio's
        run ends awaiting approval (the Run is returned).
        """
        dry = self.config.dry_run if dry_run is None else dry_run
        run, portfolio = await claim_manual(
            self.store,
            portfolio_id,
            ManualRun(dry, triggered_by, self.owner, self.settings.lease_seconds),
            self.accounts,
        )
        log.info("[Scheduler] Manual rebalance of %s (%s)", portfolio.name, portfolio.id)
        return await self.runs.execute(run, portfolio, RunChecks(force=force))

    # -- safety controls: approval and the kill switch

    async def approve(self, run_id: int) -> Ended:
        """Execute an awaiting run if its plan still holds with fresh prices; else it waits
        again with the new plan (the Run is returned)."""
        how = (self.owner, float(self.settings.lease_seconds))
        taking = approval.claim_approved(self.store, run_id, how, self.clock(), self.accounts)
        approving = await taking
        return await self.runs.execute(approving.run, approving.portfolio, approving.checks)

    async def reject(self, run_id: int) -> HistoryRecord:
        """End an awaiting run as rejected; RunNotFound or RunNotAwaiting otherwise."""
        await self.expire_approvals()
        run = await self.store.get_run(run_id)
        if run is None:
            raise approval.RunNotFound(run_id)
        record = await approval.close_awaiting(
            self.store, run, "rejected", "rejected by the operator"
        )
        if record is None:
            fresh = await self.store.get_run(run_id)
            raise approval.RunNotAwaiting(run_id, fresh.status if fresh else "gone")
        return record

    async def expire_approvals(self) -> int:
        """Record runs whose approval lapsed as expired; how many."""
        return await approval.close_lapsed(self.store, self.clock())

    async def halt(self, halted: bool) -> Effective:
        """The kill switch, stored so every daemon obeys: set, nothing is claimed, triggered
        or approved, and runs in flight stop before their next order."""
        self.runs.halt(halted)  # this daemon's runs at once, before the database round trip
        events = []
        if halted and not await self.store.is_halted():  # notify once per halt, not per repeat
            now = self.clock()
            events = [notify_events.scheduler_changed("scheduler.halted", "halt", self.owner, now)]
        await self.store.set_halted(halted, events)
        self.wake()
        return await self.refresh()

    async def preview(self, portfolio_id: str) -> Preview:
        """The plan a run would make now (calls the exchange, places nothing)."""
        portfolio = await self.store.get_portfolio(portfolio_id)
        if portfolio is None:
            raise PortfolioNotFound(portfolio_id)
        return await self.runs.preview(portfolio)

    async def control(self, action: str, config: Mapping[str, Any] | None = None) -> Effective:
        """start | stop | restart | update-config | halt | resume, stored so every daemon obeys."""
        if action in ("halt", "resume"):
            return await self.halt(action == "halt")
        state = await self.store.scheduler_state()
        wanted = requested_state(state, action, config or {})
        was, now = effective(self.settings, state), effective(self.settings, wanted)
        events = notify_events.scheduler_control(
            action, was.running, now.running, self.owner, self.clock()
        )
        await self.store.set_scheduler_state(
            wanted.running, wanted.enabled, wanted.check_interval, wanted.dry_run, events
        )
        log.info("[Scheduler] %s", ACTIONS[action])
        self.wake()
        return await self.refresh()

    def exchange(self, account: str) -> Exchange | None:
        """The account's exchange (the API checks symbols against its markets); None if unknown."""
        return self.exchanges.get(account)

    # -- tasks and notifications

    def _spawn(self, coro: Coroutine[object, object, Ended], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _t: self.wake())

    async def _drain(self) -> None:
        """Graceful stop: let running orders reach a safe point, then end."""
        self.runs.stop()
        await self._warmup.close()
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


def _quiet(task: asyncio.Task[Effective]) -> None:
    """A halt check that failed (database away) is retried by the next wake: nothing to do."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("[Scheduler] Could not read the scheduler state: %s", task.exception())
