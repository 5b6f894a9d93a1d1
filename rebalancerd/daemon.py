"""Compose the daemon: config → database → migrations → reconcile → HTTP → READY → loop."""

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
from rebalancerd.exchange.accounts import build_exchanges, close_exchanges
from rebalancerd.exchange.protocol import Exchange
from rebalancerd.metrics import Metrics
from rebalancerd.runs.lifecycle import new_owner_id
from rebalancerd.runs.loop import Scheduler
from rebalancerd.store.embedded import EmbeddedPostgres, connect_pool
from rebalancerd.store.migrations import load_migrations, migrate
from rebalancerd.store.paper_ledger import PgPaperLedger
from rebalancerd.store.repository import Store
from rebalancerd.systemd import Notifier, watchdog_interval, watchdog_loop

log = logging.getLogger(__name__)


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

    async def run(self) -> int:
        """Boot, serve until SIGTERM/SIGINT, stop gracefully; the process exit code."""
        self._install_signals()
        try:
            await self._boot()
            if self.shutdown.is_set():
                return 0
            await self._serve()
        finally:
            await self._close()
        return 0

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
        self.exchanges = await build_exchanges(
            settings,
            PgPaperLedger(self.store),
            on_nonce_refused=lambda method: metrics.nonce_refused.labels(method).inc(),
        )
        if self.demo:
            from rebalancerd.demo import seed_demo

            await seed_demo(self.store)
        self.scheduler = Scheduler(
            settings.scheduler, self.store, self.exchanges, metrics, owner=new_owner_id()
        )
        config = await self.scheduler.refresh()
        if config.running:
            await self.scheduler.reconcile_orphans()
        app = api.make_app(settings, self.store, self.scheduler, metrics)
        self.runner = api.make_runner(app, settings)
        await self.runner.setup()
        site = web.TCPSite(self.runner, settings.http.host, settings.http.port)
        await site.start()
        log.info("[Scheduler] Listening on http://%s", settings.http.listen)
        self.notifier.ready()
        self.notifier.status(_status_line(self.scheduler))

    async def _database_url(self) -> str:
        url = self.settings.database.url
        if url is not None:
            return url.get_secret_value()
        self.embedded = EmbeddedPostgres(self.settings.state_dir / "postgres")
        log.info("[Database] Starting embedded PostgreSQL in %s", self.embedded.directory)
        return await asyncio.to_thread(self.embedded.start)

    async def _serve(self) -> None:
        assert self.scheduler is not None
        scheduler = self.scheduler
        tasks = [
            _task(scheduler.run(self.shutdown), "scheduler-loop"),
            _task(scheduler.listen(self.shutdown), "notify-listener"),
            _task(self._status_loop(scheduler), "status"),
        ]
        interval = watchdog_interval()
        if interval:
            progress: Callable[[], float] = lambda: scheduler.heartbeat  # noqa: E731
            tasks.append(
                _task(watchdog_loop(self.notifier, progress, self.shutdown, interval), "watchdog")
            )
        for task in await wait_first(self.shutdown, tasks=tasks):
            if not task.cancelled() and task.exception():
                log.critical(
                    "[Scheduler] Task %s died: %r; stopping", task.get_name(), task.exception()
                )
        self._begin_stop()
        await wait_first(tasks=tasks[:1], timeout=20)  # the loop brings its run to a safe point
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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
        self.notifier.reloading()
        try:
            fresh = load_settings(self.config_path, demo=self.demo)
        except ConfigError as exc:
            log.error("[Scheduler] Reload refused, keeping the running config: %s", exc)
        else:
            self.settings = fresh
            if self.scheduler is not None:
                self.scheduler.settings = fresh.scheduler
                self.scheduler.wake()
            log.info("[Scheduler] Configuration reloaded")
        self.notifier.ready()

    async def _close(self) -> None:
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


def _status_line(scheduler: Scheduler) -> str:
    state = "running" if scheduler.config.running else "stopped"
    wake = scheduler.next_wake.isoformat(timespec="seconds") if scheduler.next_wake else "-"
    return f"scheduler {state}; {scheduler.active_runs} active; next wake {wake}"
