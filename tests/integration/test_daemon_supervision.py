"""The daemon in-process: a dead supervised task exits 70 (item 2); SIGHUP reloads everything
(item 5)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rebalancerd.config import load_settings
from rebalancerd.daemon import EXIT_TASK_DIED, Daemon
from rebalancerd.store.database import Database
from rebalancerd.store.outbox import OutboxQueries
from rebalancerd.store.repository import Store
from rebalancerd.systemd import Notifier
from tests.daemon_proc import free_port
from tests.factories import make_portfolio

TOKEN = "a-long-enough-token-1234567890"


def write_config(path: Path, database_url: str, port: int) -> Path:
    path.write_text(
        f'[database]\nurl = "{database_url}"\n'
        f'[http]\nlisten = "127.0.0.1:{port}"\n'
        '[paper]\nprices = "simulated"\n'
        '[accounts.old]\nmode = "paper"\n'
    )
    return path


@pytest.fixture
def config(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(("REBALANCERD_", "SCHEDULER_", "KRAKEN_", "WATCHDOG_")):
            monkeypatch.delenv(name)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("REBALANCERD_STATE_DIR", str(tmp_path / "state"))
    return write_config(tmp_path / "config.toml", database_url, free_port())


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


class Running:
    """A Daemon running in this event loop."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.task = asyncio.create_task(daemon.run())
        self.url = f"http://{daemon.settings.http.listen}"

    async def up(self) -> None:
        async def ready() -> bool:
            assert not self.task.done(), self.task.result()
            try:
                return (await self.call("GET", "/healthz"))[0] == 200
            except aiohttp.ClientError:
                return False

        await until(ready, "the daemon to serve")

    async def exit_code(self, timeout: float = 30.0) -> int:
        async with asyncio.timeout(timeout):
            return await self.task

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, **kwargs) as resp,
        ):
            return resp.status, await resp.json(content_type=None)


@pytest.fixture
async def start(config: Path) -> AsyncIterator[Callable[..., Running]]:
    started: list[Running] = []

    def run(**fields: Any) -> Running:
        daemon = Daemon(load_settings(config), config_path=config, **fields)
        started.append(Running(daemon))
        return started[-1]

    yield run
    for running in started:
        running.daemon.shutdown.set()
        await asyncio.gather(running.task, return_exceptions=True)


def died(caplog: pytest.LogCaptureFixture, task: str, cause: str) -> bool:
    return any(
        r.levelno == logging.ERROR
        and f"task {task} died" in r.getMessage()
        and cause in r.getMessage()
        for r in caplog.records
    )


async def test_a_dead_scheduler_loop_exits_70(
    start: Callable[..., Running], store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    running = start()
    await running.up()
    # A check interval no version of the API accepts, written into the shared state by hand.
    await store.pool.execute("UPDATE scheduler_state SET check_interval = '0 0 30 2 *'")
    await store.notify("scheduler")
    assert await running.exit_code() == EXIT_TASK_DIED
    assert died(caplog, "scheduler-loop", "ValueError: invalid cron expression '0 0 30 2 *'")


async def test_a_dead_notification_listener_exits_70(
    start: Callable[..., Running], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_listen(self: Database, *_args: object) -> None:
        raise RuntimeError("listener broke")  # not a lost connection: those are retried

    monkeypatch.setattr(Database, "listen", broken_listen)
    running = start()
    assert await running.exit_code() == EXIT_TASK_DIED
    assert died(caplog, "notify-listener", "RuntimeError: listener broke")


async def test_a_dead_notification_sender_exits_70(
    start: Callable[..., Running], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_dispatch(self: OutboxQueries, *_args: object) -> int:
        raise RuntimeError("sender broke")  # not a database error: those are retried

    monkeypatch.setattr(OutboxQueries, "dispatch_events", broken_dispatch)
    running = start()
    assert await running.exit_code() == EXIT_TASK_DIED
    assert died(caplog, "notify-sender", "RuntimeError: sender broke")


async def test_a_closed_http_listener_exits_70(
    start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    running = start()
    await running.up()
    assert running.daemon.runner is not None
    [site] = running.daemon.runner.sites
    assert site._server is not None
    site._server.close()  # the listening socket goes away under the daemon
    assert await running.exit_code() == EXIT_TASK_DIED
    assert died(caplog, "http-server", "the HTTP server stopped listening")


class FailingNotifier(Notifier):
    def watchdog(self) -> None:
        raise RuntimeError("watchdog ping failed")


async def test_a_dead_watchdog_exits_70(
    start: Callable[..., Running], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    running = start(notifier=FailingNotifier(None))
    assert await running.exit_code() == EXIT_TASK_DIED
    assert died(caplog, "watchdog", "RuntimeError: watchdog ping failed")


async def test_sigterm_still_exits_0(start: Callable[..., Running]) -> None:
    running = start()
    await running.up()
    os.kill(os.getpid(), signal.SIGTERM)
    assert await running.exit_code() == 0


async def test_sighup_reloads_accounts_lease_concurrency_and_token(
    start: Callable[..., Running], config: Path, store: Store, database_url: str
) -> None:
    running = start()
    await running.up()
    daemon = running.daemon
    assert daemon.scheduler is not None
    scheduler = daemon.scheduler
    old = await make_portfolio(store, account="old", rebalance_enabled=False)
    body = {"name": "new", "account": "added", "targetWeights": {"BTC": 100}}
    status, _ = await running.call("POST", "/api/portfolios/manage", json=body)
    assert status == 422  # not configured yet
    config.write_text(
        f'[database]\nurl = "{database_url}"\n'
        f'[http]\nlisten = "{daemon.settings.http.listen}"\napi_token = "{TOKEN}"\n'
        '[paper]\nprices = "simulated"\n'
        "[scheduler]\nlease_seconds = 17\nmax_concurrency = 3\n"
        '[accounts.added]\nmode = "paper"\nbalances = { EUR = "1000" }\n'
    )
    os.kill(os.getpid(), signal.SIGHUP)

    async def reloaded() -> bool:
        return "added" in scheduler.accounts and "old" not in scheduler.accounts

    await until(reloaded, "the reload")
    assert scheduler.settings.max_concurrency == 3 and scheduler.runs.lease_seconds == 17
    status, _ = await running.call("GET", "/api/scheduler")
    assert status == 401  # the new token is required at once
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, created = await running.call("POST", "/api/portfolios/manage", json=body, headers=auth)
    assert status == 201, created
    status, answer = await running.call(
        "POST",
        "/api/scheduler/trigger",
        json={"portfolioId": created["portfolio"]["id"]},
        headers=auth,
    )
    assert status == 200 and answer["success"], answer  # the added account trades
    status, answer = await running.call(
        "POST", "/api/scheduler/trigger", json={"portfolioId": old.id}, headers=auth
    )
    assert status == 409 and "'old'" in answer["error"]  # the removed one is refused
