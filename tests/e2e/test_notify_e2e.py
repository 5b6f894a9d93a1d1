"""Notifications from the real `rebalancerd run` process: a kill -9 between a run's commit and
its delivery still delivers it (same id) after a restart; a hanging receiver does not slow a
run; two daemons deliver each event once; `rebalancerd notify test` prints each answer."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rebalancerd.store.repository import Store
from tests.api_support import ORIGINAL_BODY
from tests.daemon_proc import DaemonProcess
from tests.notify_receiver import SECRET, Receiver, until

pytestmark = pytest.mark.e2e
TOKEN = "e2e-notify-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def write_config(tmp_path: Path, *hooks: str, extra: str = "") -> Path:
    lines = [
        "[paper]",
        'prices = "simulated"',
        "[notify]",
        "retry_initial_seconds = 0.05",
        "retry_max_seconds = 0.2",
        "timeout_seconds = 1",  # an attempt's lease: 1 s + 5 s
        extra,
    ]
    for url in hooks:
        lines += ["[[notify.webhook]]", f'url = "{url}"', f'secret = "{SECRET}"']
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def spawn(procs: list[DaemonProcess], tmp_path: Path, database_url: str, config: Path) -> Any:
    env = {
        "DATABASE_URL": database_url,
        "REBALANCERD_CONFIG": str(config),
        "REBALANCERD_API_TOKEN": TOKEN,
        "SCHEDULER_AUTO_START": "false",  # only triggers run
    }
    proc = DaemonProcess(tmp_path, env).start()
    procs.append(proc)
    return proc


async def portfolio(daemon: DaemonProcess, name: str) -> str:
    body = {**ORIGINAL_BODY, "name": name, "rebalanceEnabled": False}
    status, created = await daemon.request(
        "POST", "/api/portfolios/manage", json=body, headers=AUTH
    )
    assert status == 201, created
    pid: str = created["portfolio"]["id"]
    return pid


async def trigger(daemon: DaemonProcess, pid: str, dry_run: bool = False) -> dict[str, Any]:
    body = {"portfolioId": pid, "dryRun": dry_run}
    status, reply = await daemon.request("POST", "/api/scheduler/trigger", json=body, headers=AUTH)
    assert status == 200 and reply["success"] is True, reply
    return reply


async def stop(daemon: DaemonProcess) -> int | None:
    """SIGTERM, and wait without blocking the loop (the receiver must answer meanwhile)."""
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    await until(lambda: daemon.proc is not None and daemon.proc.poll() is not None, 15, "exit")
    return daemon.proc.returncode


def of_type(receiver: Receiver, type_: str) -> list[Any]:
    return [r for r in receiver.received if r.json()["type"] == type_]


async def delivered(store: Store, event_id: str) -> bool:
    status = await store.pool.fetchval(
        "SELECT status FROM notify_deliveries WHERE event_id = $1::uuid", event_id
    )
    return bool(status == "delivered")


async def test_kill_9_between_commit_and_delivery_still_delivers_after_restart(
    tmp_path: Path, database_url: str, store: Store, procs: list[DaemonProcess]
) -> None:
    async with Receiver(hang={"/hook"}) as receiver:
        dashboard = 'dashboard_url = "https://rebalancer.example/"'
        config = write_config(tmp_path, receiver.url(), extra=dashboard)
        daemon = spawn(procs, tmp_path, database_url, config)
        await daemon.wait_healthy()
        await until(lambda: receiver.hanging == 1, 10, "daemon.started to hang at the receiver")
        pid = await portfolio(daemon, "Core")
        reply = await trigger(daemon, pid)  # a real run, paper account
        # The run finished and answered while the receiver still holds every request open.
        assert receiver.hanging >= 1 and reply["history"]["ordersExecuted"] > 0
        await until(lambda: bool(of_type(receiver, "run.succeeded")), 10, "the run's event")
        (sent,) = of_type(receiver, "run.succeeded")
        daemon.kill()  # SIGKILL: the attempt is in flight, nothing recorded its outcome
        assert not await delivered(store, sent.id)
        receiver.release.set()  # from now on the receiver answers 200 at once
        restarted = spawn(procs, tmp_path, database_url, config)
        await restarted.wait_healthy()
        await until(lambda: delivered(store, sent.id), 20, "the redelivery after the lease")
    copies = [r for r in receiver.received if r.id == sent.id]
    assert len(copies) == 2  # the killed attempt and the one that was answered
    assert all(c.verified() == copies[0].verified() for c in copies)  # same id, same body
    body = copies[0].verified()
    assert body["data"]["portfolio"] == {"id": pid, "name": "Core"}
    assert body["data"]["run"]["historyId"] == reply["history"]["id"]
    assert body["data"]["link"] == f"https://rebalancer.example/?portfolio={pid}"


async def test_two_daemons_deliver_each_event_once(
    tmp_path: Path, database_url: str, store: Store, procs: list[DaemonProcess]
) -> None:
    async with Receiver() as receiver:
        config = write_config(tmp_path, receiver.url())
        a = spawn(procs, tmp_path, database_url, config)
        b = spawn(procs, tmp_path, database_url, config)
        await asyncio.gather(a.wait_healthy(), b.wait_healthy())
        pids = [await portfolio(a, f"P{i}") for i in range(3)]
        await asyncio.gather(*(trigger(d, p, True) for d, p in zip([a, b, a], pids, strict=True)))
        await asyncio.gather(*(trigger(d, p, True) for d, p in zip([b, a, b], pids, strict=True)))
        await a.request("POST", "/api/scheduler", json={"action": "start"}, headers=AUTH)
        await b.request("POST", "/api/scheduler", json={"action": "stop"}, headers=AUTH)

        async def all_delivered() -> bool:
            events = await store.pool.fetchval("SELECT count(*) FROM notify_events")
            done = await store.pool.fetchval(
                "SELECT count(*) FROM notify_deliveries WHERE status = 'delivered'"
            )
            return bool(events == done == 10)  # 2 started, 6 runs, started, stopped

        await until(all_delivered, 20, "every event delivered")
        assert await asyncio.gather(stop(a), stop(b)) == [0, 0]
        await until(lambda: len(of_type(receiver, "daemon.stopping")) == 2, 5, "the stops")
    ids = Counter(r.id for r in receiver.received)
    assert set(ids.values()) == {1}, ids  # no event twice
    types = Counter(r.verified()["type"] for r in receiver.received)
    assert types == {
        "daemon.started": 2,
        "run.succeeded": 6,
        "scheduler.started": 1,
        "scheduler.stopped": 1,
        "daemon.stopping": 2,
    }
    for got in receiver.received:  # no secret, token or key in any body
        assert SECRET.removeprefix("whsec_").encode() not in got.body
        assert TOKEN.encode() not in got.body


async def test_notify_test_prints_what_each_hook_answered(tmp_path: Path) -> None:
    async with Receiver(script={"/down": [500]}) as receiver:
        config = write_config(tmp_path, receiver.url("/ok"), receiver.url("/down"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rebalancerd", "notify", "test", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "HOME": str(tmp_path)},
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    lines = out.decode().splitlines()
    assert proc.returncode == 1, (out, err)  # one hook failed
    assert len(lines) == 2
    assert "(json, signed): HTTP 200 OK" in lines[0]
    assert "FAILED" in lines[1] and "HTTP 500" in lines[1]
    assert "/ok" not in out.decode() and "/down" not in out.decode()  # hooks by name, not URL
    (ok,) = receiver.at("/ok")
    body = ok.verified()
    assert body["type"] == "notify.test" and body["id"] == ok.id
