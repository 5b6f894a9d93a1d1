"""Safety controls against real `rebalancerd run` processes and the fake Kraken: the kill switch
holds on a second daemon and across a restart; a manual portfolio's scheduled run waits for an
approval given from the command line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rebalancerd.store.repository import Store
from rebalancerd.store.safety import SafetyFields
from tests.daemon_proc import DaemonProcess
from tests.e2e.test_daemon_e2e import live_config, spawn, until
from tests.factories import make_portfolio
from tests.fake_kraken import FakeKraken

pytestmark = pytest.mark.e2e


async def cli(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`rebalancerd ARGS --url` against the daemon, as a person would run it (in a thread: the
    fake Kraken answers from this event loop meanwhile)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "rebalancerd", *args, "--url", daemon.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def halted(daemon: DaemonProcess) -> bool:
    status, body = await daemon.request("GET", "/api/scheduler")
    return status == 200 and bool(body["status"]["halted"])


async def test_halt_holds_on_a_second_daemon_and_across_a_restart(
    tmp_path: Path,
    database_url: str,
    store: Store,
    fake: FakeKraken,
    procs: list[DaemonProcess],
) -> None:
    config = live_config(tmp_path, fake, {"default": (fake.api_key, fake.api_secret)})
    a = spawn(procs, tmp_path, database_url, config)
    b = spawn(procs, tmp_path, database_url, config)
    await asyncio.gather(a.wait_healthy(), b.wait_healthy())
    result = await cli(a, "halt")
    assert result.returncode == 0 and "HALTED" in result.stdout, result
    await until(lambda: halted(b), 10, "the second daemon to see the halt")
    await b.wait_for_log("Scheduler HALTED")
    slot = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    portfolio = await make_portfolio(
        store, next_rebalance_at=slot, target_weights={"BTC": 50, "ETH": 50}
    )
    await store.notify("portfolios")
    status, body = await b.request(
        "POST", "/api/scheduler/trigger", json={"portfolioId": portfolio.id}
    )
    assert status == 409 and body["error"].startswith("halted"), body
    # Restarted, a daemon is still halted: the switch lives in PostgreSQL.
    assert a.terminate() == 0
    a = spawn(procs, tmp_path, database_url, config)
    await a.wait_healthy()
    assert await halted(a)
    status, body = await a.request(
        "POST", "/api/scheduler/trigger", json={"portfolioId": portfolio.id}
    )
    assert status == 409
    assert await store.pool.fetchval("SELECT count(*) FROM rebalance_runs") == 0
    assert fake.placed == []
    # Resumed, the due portfolio runs at once.
    status, body = await a.request("POST", "/api/scheduler", json={"action": "resume"})
    assert status == 200 and not body["status"]["halted"]

    async def ran() -> bool:
        return bool(await store.list_history(portfolio.id))

    await until(ran, 15, "the due portfolio to run after resume")
    assert fake.placed


async def test_scheduled_manual_run_waits_for_approval_from_the_cli(
    tmp_path: Path,
    database_url: str,
    store: Store,
    fake: FakeKraken,
    procs: list[DaemonProcess],
) -> None:
    config = live_config(tmp_path, fake, {"default": (fake.api_key, fake.api_secret)})
    daemon = spawn(procs, tmp_path, database_url, config)
    await daemon.wait_healthy()
    past = datetime.now(UTC) - timedelta(minutes=1)
    portfolio = await make_portfolio(
        store,
        next_rebalance_at=past,
        target_weights={"BTC": 50, "ETH": 50},
        safety=SafetyFields(approval="manual"),
    )
    await store.notify("portfolios")

    async def awaiting() -> bool:
        _, runs = await daemon.request(
            "GET", f"/api/runs?status=awaiting_approval&portfolioId={portfolio.id}"
        )
        return bool(runs["count"])

    await until(awaiting, 15, "the scheduled run to await approval")
    await daemon.wait_for_log("awaits approval")
    assert fake.placed == []
    listed = await cli(daemon, "runs", "--awaiting")
    assert listed.returncode == 0, listed
    run_id = listed.stdout.splitlines()[1].split()[0]
    assert "awaiting_approval" in listed.stdout and "buy BTC" in listed.stdout
    done = await cli(daemon, "approve", run_id)
    assert done.returncode == 0, done
    assert done.stdout.startswith(f"Run {run_id} approved and executed")
    assert fake.placed and {o.side for o in fake.placed} == {"buy"}
    again = await cli(daemon, "reject", run_id)
    assert again.returncode == 1 and "not awaiting approval" in again.stderr
