"""End to end: real `rebalancerd run` processes, a real PostgreSQL, the fake Kraken over HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rebalancerd.store.embedded import connect_pool
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import Portfolio
from tests.daemon_proc import DaemonProcess
from tests.factories import make_portfolio
from tests.fake_kraken import FakeKraken

pytestmark = pytest.mark.e2e
SELL_SELL_BUY = {"BTC": 10, "ETH": 10, "ADA": 80}


def live_config(tmp_path: Path, fake: FakeKraken, accounts: dict[str, tuple[str, str]]) -> Path:
    lines = [
        "[kraken]",
        f'api_url = "{fake.url}"',
        "timeout = 3",
        "[scheduler]",
        "lease_seconds = 6",
    ]
    for name, (key, secret) in accounts.items():
        lines += [
            f"[accounts.{name}]",
            'mode = "live"',
            f'api_key = "{key}"',
            f'api_secret = "{secret}"',
        ]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Wait (bounded) for a condition that the system under test must reach."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def spawn(
    procs: list[DaemonProcess], tmp_path: Path, database_url: str, config: Path, **env: str
) -> DaemonProcess:
    kraken_url = next(
        line.split('"')[1] for line in config.read_text().splitlines() if "api_url" in line
    )
    proc = DaemonProcess(
        tmp_path,
        {
            "DATABASE_URL": database_url,
            "REBALANCERD_CONFIG": str(config),
            "KRAKEN_API_URL": kraken_url,
            **env,
        },
    ).start()
    procs.append(proc)
    return proc


async def test_due_portfolio_starts_on_time_without_polling(
    tmp_path: Path,
    database_url: str,
    store: Store,
    fake: FakeKraken,
    procs: list[DaemonProcess],
) -> None:
    config = live_config(tmp_path, fake, {"default": (fake.api_key, fake.api_secret)})
    daemon = spawn(procs, tmp_path, database_url, config, SCHEDULER_CHECK_INTERVAL="0 * * * *")
    await daemon.wait_healthy()
    slot = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    portfolio = await make_portfolio(store, next_rebalance_at=slot, rebalance_interval="hourly")

    async def started() -> bool:
        return bool(
            await store.pool.fetchval(
                "SELECT count(*) FROM rebalance_runs WHERE portfolio_id = $1", portfolio.id
            )
        )

    await until(started, 10, "the run to start")
    run_start = await store.pool.fetchval(
        "SELECT started_at FROM rebalance_runs WHERE portfolio_id = $1", portfolio.id
    )
    assert slot <= run_start < slot + timedelta(seconds=1)
    fresh = await store.get_portfolio(portfolio.id)
    assert fresh is not None and fresh.next_rebalance_at == slot + timedelta(hours=1)


async def test_two_daemons_run_thirty_portfolios_exactly_once(
    tmp_path: Path,
    database_url: str,
    store: Store,
    fake: FakeKraken,
    procs: list[DaemonProcess],
) -> None:
    accounts = {f"a{i}": fake.add_account({"ZEUR": "1000"}) for i in range(30)}
    config = live_config(tmp_path, fake, accounts)
    a = spawn(procs, tmp_path, database_url, config)
    b = spawn(procs, tmp_path, database_url, config)
    await asyncio.gather(a.wait_healthy(), b.wait_healthy())
    past = datetime.now(UTC) - timedelta(minutes=1)
    ids = [
        (
            await make_portfolio(
                store, account=name, next_rebalance_at=past, target_weights={"BTC": 50, "ETH": 50}
            )
        ).id
        for name in accounts
    ]
    await store.notify("portfolios")

    async def all_done() -> bool:
        return await store.pool.fetchval("SELECT count(*) FROM rebalance_history") >= 30

    await until(all_done, 60, "30 runs")
    # Both daemons stopped (SIGTERM, exit 0): nothing can run any more, so a duplicate claimed
    # late would be in the tables now.
    assert await asyncio.to_thread(a.terminate) == 0
    assert await asyncio.to_thread(b.terminate) == 0
    runs = await store.pool.fetch("SELECT portfolio_id, owner FROM rebalance_runs")
    assert sorted(r["portfolio_id"] for r in runs) == sorted(ids)
    assert len({r["owner"] for r in runs}) == 2  # both daemons took part
    history = await store.list_history(limit=100)
    assert len(history) == 30 and all(h.success for h in history)
    ids_placed = Counter(o.cl_ord_id for o in fake.placed)
    assert len(fake.placed) == 60 and max(ids_placed.values()) == 1


async def daemon_mid_run(
    tmp_path: Path,
    database_url: str,
    store: Store,
    fake: FakeKraken,
    procs: list[DaemonProcess],
) -> tuple[DaemonProcess, Portfolio, Path]:
    """A daemon that has placed the first of three slow orders of a scheduled run."""
    fake.latency = 0.4  # a run takes a few seconds: room to stop it between orders
    config = live_config(tmp_path, fake, {"default": (fake.api_key, fake.api_secret)})
    daemon = spawn(procs, tmp_path, database_url, config)
    await daemon.wait_healthy()
    portfolio = await make_portfolio(
        store, target_weights=SELL_SELL_BUY, next_rebalance_at=datetime.now(UTC)
    )
    await store.notify("portfolios")

    async def placed() -> bool:
        return len(fake.placed) >= 1

    await until(placed, 20, "the first order")
    return daemon, portfolio, config


async def test_kill_9_mid_run_is_reconciled_after_restart(
    tmp_path: Path,
    database_url: str,
    store: Store,
    fake: FakeKraken,
    procs: list[DaemonProcess],
) -> None:
    daemon, portfolio, config = await daemon_mid_run(tmp_path, database_url, store, fake, procs)
    daemon.kill()
    assert len(await store.open_runs()) == 1
    fake.latency = 0.0
    restarted = spawn(procs, tmp_path, database_url, config)
    await restarted.wait_healthy()

    async def settled() -> bool:
        return not await store.open_runs() and bool(await store.list_history(portfolio.id))

    await until(settled, 20, "the run to be reconciled")
    [record] = await store.list_history(portfolio.id)
    assert not record.success and "interrupted" in (record.errors or [""])[0]
    recorded = {o["clientOrderId"]: o["status"] for o in record.orders}
    placed = Counter(o.cl_ord_id for o in fake.placed)
    assert max(placed.values()) == 1
    for coid in placed:
        assert recorded.get(coid) == "filled"  # everything the exchange did is in the history
    assert all(s in ("filled", "not_placed") for s in recorded.values())


async def test_sigterm_mid_run_exits_cleanly_with_state_recorded(
    tmp_path: Path,
    database_url: str,
    store: Store,
    fake: FakeKraken,
    procs: list[DaemonProcess],
) -> None:
    daemon, portfolio, _ = await daemon_mid_run(tmp_path, database_url, store, fake, procs)
    started = time.monotonic()
    code = await asyncio.to_thread(daemon.terminate, 15)
    assert code == 0
    assert time.monotonic() - started < 10
    assert await store.open_runs() == []
    [record] = await store.list_history(portfolio.id)
    assert not record.success
    assert any("shutting down" in e for e in record.errors or [])
    assert {o["clientOrderId"] for o in record.orders} >= {o.cl_ord_id for o in fake.placed}


async def test_database_restart_under_a_running_daemon(
    tmp_path: Path, fake: FakeKraken, procs: list[DaemonProcess]
) -> None:
    from rebalancerd.store.embedded import EmbeddedPostgres
    from rebalancerd.store.migrations import load_migrations, migrate

    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"rbd-pg-{os.getpid()}-restart"
    server = EmbeddedPostgres(directory)
    url = await asyncio.to_thread(server.start)
    try:
        pool = await connect_pool(url, timeout=10)
        async with pool.acquire() as conn:
            await migrate(conn, load_migrations())
        store = Store(pool)
        config = live_config(tmp_path, fake, {"default": (fake.api_key, fake.api_secret)})
        daemon = spawn(procs, tmp_path, url, config)
        await daemon.wait_healthy()
        portfolio = await make_portfolio(
            store, next_rebalance_at=datetime.now(UTC) + timedelta(seconds=6)
        )
        await pool.close()
        await asyncio.to_thread(server.stop)

        async def unhealthy() -> bool:
            status, body = await daemon.request("GET", "/healthz")
            return status == 503 and body["database"] is False

        await until(unhealthy, 10, "/healthz to report the outage")
        await asyncio.sleep(1)
        url = await asyncio.to_thread(server.start)
        pool = await connect_pool(url, timeout=10)
        store = Store(pool)

        async def ran() -> bool:
            return bool(await store.list_history(portfolio.id))

        await until(ran, 30, "the due run after the database came back")
        [record] = await store.list_history(portfolio.id)
        assert record.success, record.errors
        assert await store.open_runs() == []
        await pool.close()
    finally:
        for proc in procs:
            proc.stop()
        await asyncio.to_thread(server.stop)


async def test_sd_notify_ready_watchdog_stopping(
    tmp_path: Path, database_url: str, fake: FakeKraken, procs: list[DaemonProcess]
) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    config = live_config(tmp_path, fake, {"default": (fake.api_key, fake.api_secret)})
    daemon = spawn(
        procs, tmp_path, database_url, config, NOTIFY_SOCKET=str(path), WATCHDOG_USEC="1000000"
    )
    seen: list[str] = []

    async def got(message: str) -> bool:
        while True:
            try:
                seen.extend(sock.recv(4096).decode().splitlines())
            except BlockingIOError:
                return message in seen

    await until(lambda: got("READY=1"), 30, "READY=1")
    await daemon.wait_healthy()  # READY=1 came only once HTTP was up
    await until(lambda: got("WATCHDOG=1"), 5, "WATCHDOG=1")
    assert any(m.startswith("STATUS=scheduler running") for m in seen)
    assert await asyncio.to_thread(daemon.terminate, 15) == 0
    await until(lambda: got("STOPPING=1"), 2, "STOPPING=1")
    assert seen.index("READY=1") < seen.index("STOPPING=1")
    sock.close()


async def test_sighup_reloads_and_keeps_old_config_when_new_is_bad(
    tmp_path: Path, database_url: str, fake: FakeKraken, procs: list[DaemonProcess]
) -> None:
    import signal

    config = live_config(tmp_path, fake, {"default": (fake.api_key, fake.api_secret)})
    daemon = spawn(procs, tmp_path, database_url, config)
    await daemon.wait_healthy()
    good = config.read_text()
    config.write_text(good.replace("[scheduler]", '[scheduler]\ncheck_interval = "bad"'))
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)

    async def logged(text: str) -> bool:
        return text in daemon.log()

    await until(lambda: logged("Reload refused"), 10, "the refusal")
    assert "scheduler.check_interval" in daemon.log()
    await daemon.wait_healthy()
    config.write_text(good.replace("[scheduler]", '[scheduler]\ncheck_interval = "*/7 * * * *"'))
    daemon.proc.send_signal(signal.SIGHUP)

    async def reloaded() -> bool:
        _, body = await daemon.request("GET", "/api/scheduler")
        return bool(body["status"]["config"]["checkInterval"] == "*/7 * * * *")

    await until(reloaded, 10, "the new check interval")
