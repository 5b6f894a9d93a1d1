"""Compose the daemon: config → database → migrations → reconcile → HTTP → READY → loop.

Exit codes: 0 after SIGTERM/SIGINT, 70 (EX_SOFTWARE) when a supervised task died, so that
systemd's Restart=on-failure brings the daemon back (78, a configuration error, is the CLI's).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from rebalancerd.aio import wait_first
from rebalancerd.api import app as api
from rebalancerd.config import ConfigError, Settings, load_settings
from rebalancerd.exchange.accounts import Exchanges, build_exchanges, close_exchanges
from rebalancerd.exchange.protocol import Exchange
from rebalancerd.metrics import Metrics
from rebalancerd.notify import service as notify
from rebalancerd.notify.sender import Sender
from rebalancerd.runs.lifecycle import new_owner_id
from rebalancerd.runs.loop import Scheduler
from rebalancerd.store.embedded import EmbeddedPostgres, connect_pool
from rebalancerd.store.migrations import load_migrations, migrate
from rebalancerd.store.paper_ledger import PgPaperLedger
from rebalancerd.store.repository import Store
from rebalancerd.systemd import Notifier, watchdog_interval, watchdog_loop

log = logging.getLogger(__name__)
EXIT_TASK_DIED = 70  # EX_SOFTWARE: not a clean stop, so systemd restarts the daemon


@dataclass
class Daemon:
    """Everything one running daemon holds, closed in reverse order."""

    settings: Settings
    config_path: Path | None = None
    demo: bool = False
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)
    notifier: Notifier = field(default_factory=Notifier.from_environ)
    embedded: EmbeddedPostgres | None = None
    store: Store | None = None
    exchanges: dict[str, Exchange] = field(default_factory=dict)
    scheduler: Scheduler | None = None
    runner: web.AppRunner | None = None
    ledger: PgPaperLedger | None = None
    sender: Sender | None = None  # notifications: delivers the outbox
    _chores: set[asyncio.Task[None]] = field(default_factory=set)  # reloads, retired clients

    async def run(self) -> int:
        """Boot, serve until SIGTERM/SIGINT, stop gracefully; the process exit code."""
        self._install_signals()
        try:
            await self._boot()
            if self.shutdown.is_set():
                return 0
            return await self._serve()
        finally:
            await self._close()

    async def _boot(self) -> None:
        settings = self.settings
        dsn = await self._database_url()
        self.notifier.status("connecting to the database")
        pool = await connect_pool(
            dsn, timeout=settings.database.connect_timeout, size=settings.database.pool_size
        )
        self.store = Store(pool)
        async with pool.acquire() as conn:
            await migrate(conn, load_migrations())
        metrics = Metrics()
        self.ledger = PgPaperLedger(self.store)
        self.exchanges = await build_exchanges(
            settings,
            self.ledger,
            on_nonce_refused=lambda method: metrics.nonce_refused.labels(method).inc(),
        )
        if self.demo:
            from rebalancerd.demo import seed_demo

            await seed_demo(self.store)
        self.scheduler = Scheduler(
            settings.scheduler,
            self.store,
            self.exchanges,
            metrics,
            owner=new_owner_id(),
            max_trade_value=settings.safety.max_trade_value_eur,  # safety controls
        )
        self.sender = notify.build_sender(settings, self.store, metrics)
        self.scheduler.wake_hooks.append(self.sender.wake)  # every NOTIFY: maybe an event
        config = await self.scheduler.refresh()
        if config.running:
            await self.scheduler.reconcile_orphans()
        app = api.make_app(
            settings, self.store, self.scheduler, metrics, current=lambda: self.settings
        )
        self.runner = api.make_runner(app, settings)
        await self.runner.setup()
        site = web.TCPSite(self.runner, settings.http.host, settings.http.port)
        await site.start()
        log.info("[Scheduler] Listening on http://%s", settings.http.listen)
        await notify.announce(self.store, "daemon.started", self.scheduler.owner)
        self.notifier.ready()
        self.notifier.status(_status_line(self.scheduler))

    async def _database_url(self) -> str:
        url = self.settings.database.url
        if url is not None:
            return url.get_secret_value()
        self.embedded = EmbeddedPostgres(self.settings.state_dir / "postgres")
        log.info("[Database] Starting embedded PostgreSQL in %s", self.embedded.directory)
        return await asyncio.to_thread(self.embedded.start)

    async def _serve(self) -> int:
        """Run the supervised tasks until shutdown or until one of them ends; the exit code."""
        assert self.scheduler is not None and self.runner is not None
        assert self.sender is not None and self.store is not None
        scheduler = self.scheduler
        sending = _task(self.sender.run(), "notify-sender")
        tasks = [
            _task(scheduler.run(self.shutdown), "scheduler-loop"),
            _task(scheduler.listen(self.shutdown), "notify-listener"),
            _task(_serve_http(self.runner, self.shutdown), "http-server"),
            _task(self._status_loop(scheduler), "status"),
            sending,
        ]
        interval = watchdog_interval()
        if interval:
            progress: Callable[[], float] = lambda: scheduler.heartbeat  # noqa: E731
            tasks.append(
                _task(watchdog_loop(self.notifier, progress, self.shutdown, interval), "watchdog")
            )
        died = await wait_first(self.shutdown, tasks=tasks)
        if self.shutdown.is_set():
            # Woken by the same SIGTERM, the loop may have ended in the step before this one
            # resumed: a task that returned because of the shutdown did not die.
            died = {t for t in died if t.cancelled() or t.exception() is not None}
        for task in died:
            _report_death(task)
        self._begin_stop()
        await notify.announce(self.store, "daemon.stopping", scheduler.owner)
        await wait_first(tasks=tasks[:1], timeout=20)  # the loop brings its run to a safe point
        self.sender.close(grace=notify.STOP_GRACE)  # the runs' and daemon.stopping's events
        await wait_first(tasks=[sending], timeout=notify.STOP_GRACE + 2)
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        late = [t for t in tasks if t not in died and not t.cancelled() and t.exception()]
        for task in late:  # failed while stopping (e.g. the loop's drain): still a failure
            _report_death(task)
        return EXIT_TASK_DIED if died or late else 0

    async def _status_loop(self, scheduler: Scheduler) -> None:
        while not self.shutdown.is_set():
            self.notifier.status(_status_line(scheduler))
            await wait_first(self.shutdown, timeout=30)

    def _begin_stop(self) -> None:
        if not self.shutdown.is_set():
            self.shutdown.set()
        self.notifier.stopping()
        if self.scheduler is not None:
            self.scheduler.stop_runs()  # orders in flight finish; no new ones start

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        log.info("[Scheduler] %s received; stopping", sig.name)
        self._begin_stop()

    def _on_reload(self) -> None:
        """SIGHUP: re-read the config; keep the old one if the new one is invalid."""
        self._chore(self._reload(), "reload")

    async def _reload(self) -> None:
        self.notifier.reloading()
        try:
            fresh = load_settings(self.config_path, demo=self.demo)
        except ConfigError as exc:
            log.error("[Scheduler] Reload refused, keeping the running config: %s", exc)
        else:
            retired: list[Exchange] = []
            if isinstance(self.exchanges, Exchanges) and self.ledger is not None:
                retired = await self.exchanges.reload(fresh, self.ledger)
            self.settings = fresh  # the API reads the token through this
            if self.sender is not None:
                self.sender.reconfigure(fresh.notify, notify.dashboard_url(fresh))
            if self.scheduler is not None:
                self.scheduler.reconfigure(fresh.scheduler)
                self.scheduler.runs.max_trade_value = fresh.safety.max_trade_value_eur
                if retired:
                    self._chore(self._release(self.scheduler, retired), "release-exchanges")
            log.info("[Scheduler] Configuration reloaded")
        self.notifier.ready()

    async def _release(self, scheduler: Scheduler, retired: list[Exchange]) -> None:
        """Close the clients of removed or changed accounts once no run uses them."""
        try:
            await scheduler.runs.retire(retired)
        finally:
            await Exchanges.release(retired)

    def _chore(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)
        task.add_done_callback(_log_chore_failure)

    async def _close(self) -> None:
        for task in list(self._chores):
            task.cancel()  # a release still waiting closes its clients on the way out
        await asyncio.gather(*self._chores, return_exceptions=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        if self.runner is not None:
            await self.runner.cleanup()
        await close_exchanges(self.exchanges)
        if self.store is not None:
            await self.store.close()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
        log.info("[Scheduler] Stopped")


def _task(coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
    return asyncio.create_task(coro, name=name)


def _report_death(task: asyncio.Task[Any]) -> None:
    """Say at priority err which supervised task ended and why: the daemon exits 70."""
    if task.cancelled():
        cause = "it was cancelled"
    elif task.exception() is not None:
        exc = task.exception()
        cause = f"{type(exc).__name__}: {exc}"
    else:
        cause = "it returned"
    log.error(
        "[Scheduler] Supervised task %s died (%s); stopping with exit code %d",
        task.get_name(),
        cause,
        EXIT_TASK_DIED,
        exc_info=task.exception() if not task.cancelled() else None,
    )


def _log_chore_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("[Scheduler] %s failed: %r", task.get_name(), task.exception())


async def _serve_http(runner: web.AppRunner, shutdown: asyncio.Event) -> None:
    """Serve until shutdown; raise if a listening socket closes before (the API is gone)."""
    servers = [site._server for site in runner.sites if site._server is not None]
    watched = [asyncio.ensure_future(_until_closed(server)) for server in servers]
    try:
        ended = await wait_first(shutdown, tasks=watched)
    finally:
        for task in watched:
            task.cancel()
        await asyncio.gather(*watched, return_exceptions=True)
    if ended and not shutdown.is_set():
        raise RuntimeError("the HTTP server stopped listening")


async def _until_closed(server: asyncio.AbstractServer) -> None:
    """Return once `server` no longer accepts connections."""
    await server.wait_closed()


def _status_line(scheduler: Scheduler) -> str:
    state = "running" if scheduler.config.running else "stopped"
    wake = scheduler.next_wake.isoformat(timespec="seconds") if scheduler.next_wake else "-"
    return f"scheduler {state}; {scheduler.active_runs} active; next wake {wake}"
