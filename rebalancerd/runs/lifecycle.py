"""Carry a claimed run to its end (lease kept alive, earlier orders settled, history written
once), and finish the runs a dead daemon left open from what the exchange says."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from rebalancerd.aio import any_of
from rebalancerd.exchange.protocol import Exchange, ExchangeError
from rebalancerd.metrics import Metrics
from rebalancerd.notify import events as notify_events
from rebalancerd.runs import slots
from rebalancerd.runs.execution import maker_json
from rebalancerd.runs.maker_recovery import resolve_maker_intent
from rebalancerd.runs.outcome import RunOutcome, intent_json
from rebalancerd.runs.placement import FINAL, record_state
from rebalancerd.runs.safety import RunChecks
from rebalancerd.runs.trade import Executor, Preview, RunPlan
from rebalancerd.store.database import DB_ERRORS
from rebalancerd.store.history import RunEvents
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import HistoryRecord, OrderIntent, Portfolio, Run

log = logging.getLogger(__name__)
INTERRUPTED = "run interrupted (daemon stopped or lost); reconciled from the exchange"
HALTED = 'halted by the operator: nothing placed (POST /api/scheduler {"action": "resume"})'


@dataclass(frozen=True)
class Awaiting:
    """A run that waits for approval; `changes`: how its new plan differs from the one that
    was approved before (a stale approval), empty for a first plan."""

    run: Run
    changes: tuple[str, ...] = ()


# How a run ends: its history row; Awaiting approval; None when the lease was lost.
Ended = HistoryRecord | Awaiting | None


def new_owner_id() -> str:
    """host:pid:nonce — enough to tell a dead daemon on this host from a live one elsewhere."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True only when the owner ran on this host and its process is gone."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class RunManager:
    """Executes runs and reconciles interrupted ones; one per daemon."""

    def __init__(
        self,
        store: Store,
        exchanges: Mapping[str, Exchange],
        metrics: Metrics,
        *,
        owner: str,
        lease_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.exchanges = exchanges
        self.metrics = metrics
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._halt = asyncio.Event()  # the kill switch: runs stop before their next order
        self._executor = Executor(store, metrics, clock=clock, halt=self._halt)
        self._stopping = asyncio.Event()  # set on shutdown: finish the current step, then end
        self._active: dict[int, Run] = {}
        self._using: dict[int, Exchange] = {}  # run id -> the exchange it started with
        self._ended = asyncio.Event()  # set whenever a run ends (retire() waits on it)
        self.heartbeat = time.monotonic()  # the last sign of life of a run (lease kept)

    @property
    def executor(self) -> Executor:
        """The executor of this daemon's runs (tests tune its maker engine's clock and poll)."""
        return self._executor

    @property
    def active_count(self) -> int:
        """How many runs this daemon is executing now."""
        return len(self._active)

    def busy_accounts(self) -> list[str]:
        """The accounts a run of this daemon is trading now."""
        return sorted({run.account for run in self._active.values()})

    def stop(self) -> None:
        """Shutdown: bring the current order step to a safe point; start no new run."""
        self._stopping.set()

    def halt(self, halted: bool) -> None:
        """The kill switch: set, every run stops before its next order and cancels what rests."""
        if halted:
            self._halt.set()
        else:
            self._halt.clear()

    @property
    def halted(self) -> bool:
        """True while the kill switch holds this daemon's runs."""
        return self._halt.is_set()

    @property
    def max_trade_value(self) -> Decimal | None:
        """[safety] max_trade_value_eur: no run trades more EUR (both sides together)."""
        return self._executor.max_trade_value

    @max_trade_value.setter
    def max_trade_value(self, value: Decimal | None) -> None:
        self._executor.max_trade_value = value

    async def retire(self, old: Collection[Exchange]) -> None:
        """Return once no run of this daemon uses any of `old` (a reload replaced them).

        A run keeps the exchange it started with to its end, so a removed or changed account's
        client is closed only after that.
        """
        while any(exchange in old for exchange in self._using.values()):
            self._ended.clear()
            await self._ended.wait()

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stopping.is_set()

    async def current_plan(self, portfolio: Portfolio) -> RunPlan | None:
        """The run's planning now, its prices marked for the price-jump guard (a drift check);
        None without an account or usable row."""
        exchange = self.exchanges.get(portfolio.account)
        if exchange is None or slots.problem(portfolio) is not None:
            return None
        return await self._executor.current_plan(portfolio, exchange)

    async def plan_run(self, portfolio: Portfolio) -> RunPlan | None:
        """The run's planning now (valuation included); None without an account or usable row."""
        exchange = self.exchanges.get(portfolio.account)
        if exchange is None or slots.problem(portfolio) is not None:
            return None
        return await self._executor.plan_run(portfolio, exchange)

    async def preview(self, portfolio: Portfolio) -> Preview:
        """What a run would trade now (calls the exchange, places nothing)."""
        exchange = self.exchanges.get(portfolio.account)
        if exchange is None:
            problem = _unconfigured(portfolio)
        else:
            problem = slots.problem(portfolio) or ""
            if not problem:
                return await self._executor.preview(portfolio, exchange)
        return {"portfolioValue": Decimal(0), "plan": None, "errors": [problem]}

    async def execute(
        self, run: Run, portfolio: Portfolio, checks: RunChecks | None = None
    ) -> Ended:
        """Run a claimed portfolio to completion and record it; None if the lease was lost.

        A plan held for approval ends as the run, awaiting approval, with no history yet.
        """
        started = time.monotonic()
        self._active[run.id] = run
        lost = asyncio.Event()
        keeper = asyncio.create_task(self._keep_lease(run, lost), name=f"lease-{run.id}")
        try:
            try:
                outcome = await self._outcome(run, portfolio, lost, checks or RunChecks())
            except Exception as exc:  # one bad portfolio must not stop the loop for all
                log.exception("[Rebalance:%s] ERROR: run failed unexpectedly", portfolio.id)
                outcome = RunOutcome(errors=(f"run failed: {type(exc).__name__}: {exc}",))
            if outcome.awaiting is not None:
                return await self._await_approval(run, portfolio, outcome)
            record = await self.store.finish_run(
                run, self.owner, outcome.history(run, _ms(started)), self._events(run, portfolio)
            )
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            del self._active[run.id]
            self._using.pop(run.id, None)
            self._ended.set()
        self._report(run, portfolio, record, time.monotonic() - started)
        if record is not None and not record.success and run.slot is not None:
            await self._back_off(portfolio, run)
        return record

    async def _await_approval(self, run: Run, portfolio: Portfolio, outcome: RunOutcome) -> Ended:
        """The run waits for a person: the one place a run becomes awaiting_approval."""
        assert outcome.awaiting is not None
        expires = self.clock() + timedelta(seconds=portfolio.approval_ttl_seconds)
        event = notify_events.awaiting_approval(
            run.id,
            portfolio.id,
            portfolio.name,
            outcome.awaiting.get("orders", []),
            expires,
            self.clock(),
        )
        parked = await self.store.park_run(run.id, self.owner, outcome.awaiting, expires, [event])
        if parked is not None:
            self.metrics.runs.labels("awaiting_approval", run.triggered_by).inc()
            log.warning(
                "[Rebalance:%s] WARN: plan of run %d awaits approval until %s%s",
                portfolio.id,
                run.id,
                expires.isoformat(),
                f" (the approved plan no longer holds: {'; '.join(outcome.changes)})"
                if outcome.changes
                else "",
            )
        return None if parked is None else Awaiting(parked, outcome.changes)

    async def _outcome(
        self, run: Run, portfolio: Portfolio, lost: asyncio.Event, checks: RunChecks
    ) -> RunOutcome:
        # Both reads at once (one round trip): the kill switch, and earlier orders to settle.
        halted, earlier = await asyncio.gather(
            self.store.is_halted(), self.store.unresolved_intents(portfolio.id)
        )
        if self._halt.is_set() or halted:
            return RunOutcome(errors=(HALTED,))
        problem = slots.problem(portfolio)
        if problem is not None:  # a row written by hand or by an older version
            return RunOutcome(errors=(problem,))
        exchange = self.exchanges.get(portfolio.account)
        if exchange is None:
            return RunOutcome(errors=(_unconfigured(portfolio),))
        self._using[run.id] = exchange
        pending = await self._resolve_earlier(portfolio, exchange, earlier)
        if pending:
            return RunOutcome(errors=(f"earlier order {pending} is still unresolved; not trading",))
        async with any_of(self._stopping, lost, self._halt) as stop:
            return await self._executor.rebalance(run, portfolio, exchange, stop, checks)

    async def _resolve_earlier(
        self, portfolio: Portfolio, exchange: Exchange, earlier: list[OrderIntent]
    ) -> str | None:
        """Settle orders of earlier runs whose outcome was unknown; the id of one still open."""
        for intent in earlier:
            try:
                resolved = await resolve_intent(self.store, exchange, intent)
            except ExchangeError as exc:
                log.warning(
                    "[Rebalance:%s] WARN: cannot look up order %s yet: %s",
                    portfolio.id,
                    intent.client_order_id,
                    exc,
                )
                return intent.client_order_id
            if resolved.status not in FINAL:
                return resolved.client_order_id
        return None

    async def reconcile(self, run: Run) -> HistoryRecord | None:
        """Finish a run another (dead) daemon left open, from what the exchange says."""
        started = time.monotonic()
        portfolio = await self.store.get_portfolio(run.portfolio_id)
        exchange = self.exchanges.get(run.account)
        intents = await self.store.run_intents(run.id)
        errors = [INTERRUPTED]
        settled = []
        for intent in intents:
            if exchange is not None and intent.status not in FINAL:
                try:
                    intent = await resolve_intent(self.store, exchange, intent)
                except ExchangeError as exc:
                    errors.append(f"could not look up {intent.client_order_id}: {exc}")
            maker = intent.execution_mode == "maker"  # issue 16: its execution fields too
            settled.append(maker_json(intent) if maker else intent_json(intent))
        outcome = RunOutcome(planned=len(intents), orders=tuple(settled), errors=tuple(errors))
        name = portfolio.name if portfolio is not None else None
        history = outcome.history(run, _ms(started))
        record = await self.store.finish_run(run, self.owner, history, self._events(run, name))
        log.warning(
            "[Scheduler] Reconciled interrupted run %d of portfolio %s (%d orders)",
            run.id,
            run.portfolio_id,
            len(intents),
        )
        if record is not None and portfolio is not None and run.slot is not None:
            await self._back_off(portfolio, run)
        return record

    def _events(self, run: Run, portfolio: Portfolio | str | None) -> RunEvents:
        """The notifications of the run's end, committed with its history row."""
        name = portfolio.name if isinstance(portfolio, Portfolio) else portfolio
        return notify_events.on_run_end(run.id, name, self.clock)

    async def _keep_lease(self, run: Run, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            self.heartbeat = time.monotonic()
            try:
                if not await self.store.extend_lease(run.id, self.owner, self.lease_seconds):
                    log.error("[Scheduler] Lost the lease of run %d; stopping it", run.id)
                    lost.set()
                    return
            except DB_ERRORS as exc:
                log.warning("[Scheduler] Could not extend lease of run %d: %s", run.id, exc)

    async def _back_off(self, portfolio: Portfolio, run: Run) -> None:
        fresh = await self.store.get_portfolio(portfolio.id)
        if fresh is None or not fresh.rebalance_enabled or run.slot is None:
            return
        retry = slots.retry_at(fresh, run.slot, self.clock())
        if fresh.next_rebalance_at is None or retry < fresh.next_rebalance_at:
            await self.store.set_next_rebalance(None, portfolio.id, retry)
        log.warning(
            "[Scheduler] Portfolio %s failed %d time(s) in a row; next try at %s",
            portfolio.id,
            fresh.failure_count,
            retry.isoformat(),
        )

    def _report(
        self, run: Run, portfolio: Portfolio, record: HistoryRecord | None, seconds: float
    ) -> None:
        self.metrics.run_duration.observe(seconds)
        if record is None:
            self.metrics.runs.labels("fenced", run.triggered_by).inc()
            return
        outcome = "success" if record.success else "failure"
        self.metrics.runs.labels(outcome, run.triggered_by).inc()
        if record.success:
            self.metrics.last_success.labels(portfolio.id).set(time.time())
            log.info(
                "[Scheduler] ✓ Portfolio rebalanced successfully: %s "
                "(%d orders, €%.2f traded, %dms)",
                portfolio.name,
                record.orders_executed,
                record.total_value_traded,
                record.duration or 0,
            )
        else:
            log.error(
                "[Scheduler] ✗ Portfolio rebalance failed: %s (%s) %s",
                portfolio.name,
                portfolio.id,
                "; ".join(record.errors or []),
            )


async def resolve_intent(store: Store, exchange: Exchange, intent: OrderIntent) -> OrderIntent:
    """Ask the exchange what became of an order by its client order id."""
    if intent.execution_mode == "maker":  # maker execution (issue 16): cancel, then record
        return await resolve_maker_intent(store, exchange, intent)
    state = await exchange.find_order(intent.client_order_id)
    if state is None:
        return await store.update_intent(
            intent.client_order_id, "not_placed", error="the exchange never received it"
        )
    return await record_state(store, intent.client_order_id, state)


def _unconfigured(portfolio: Portfolio) -> str:
    return f"account {portfolio.account!r} is not configured"


def _ms(started: float) -> int:
    """Milliseconds since the monotonic time `started`."""
    return int((time.monotonic() - started) * 1000)
