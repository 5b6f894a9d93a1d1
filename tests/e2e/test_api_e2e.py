"""The real `rebalancerd run` process: the original's curl sequence with a token, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api_support import ORIGINAL_BODY
from tests.daemon_proc import DaemonProcess

pytestmark = pytest.mark.e2e
TOKEN = "e2e-token-0123456789abcdef"


@pytest.fixture
def daemon(tmp_path: Path, database_url: str) -> Iterator[DaemonProcess]:
    config = tmp_path / "config.toml"
    config.write_text('[paper]\nprices = "simulated"\n')
    env = {
        "DATABASE_URL": database_url,
        "REBALANCERD_CONFIG": str(config),
        "REBALANCERD_API_TOKEN": TOKEN,
        "SCHEDULER_AUTO_START": "false",  # only the manual trigger runs: no race with the loop
    }
    proc = DaemonProcess(tmp_path, env).start()
    try:
        yield proc
    finally:
        proc.stop()


async def _curl(proc: DaemonProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    return await proc.request(method, path, json=body, headers=headers)


async def test_the_original_curl_sequence_against_the_daemon(daemon: DaemonProcess) -> None:
    await daemon.wait_healthy()
    assert (await daemon.request("GET", "/api/portfolios/manage"))[0] == 401
    status, created = await _curl(daemon, "POST", "/api/portfolios/manage", ORIGINAL_BODY)
    assert status == 201, created
    pid = created["portfolio"]["id"]
    status, listed = await _curl(daemon, "GET", "/api/portfolios/manage")
    assert (status, listed["count"]) == (200, 1)
    update = {"id": pid, "rebalanceEnabled": True, "rebalanceInterval": "daily"}
    status, updated = await _curl(daemon, "PUT", "/api/portfolios/manage", update)
    assert status == 200 and updated["portfolio"]["rebalanceInterval"] == "daily"
    status, run = await _curl(daemon, "POST", "/api/scheduler/trigger", {"portfolioId": pid})
    assert status == 200 and run["success"] is True, run
    status, scheduler = await _curl(daemon, "GET", "/api/scheduler")
    assert scheduler["schedule"][0]["lastRebalancedAt"] is not None
    status, deleted = await _curl(daemon, "DELETE", f"/api/portfolios/manage?id={pid}")
    assert (status, deleted["success"]) == (200, True)
    status, history = await _curl(daemon, "GET", f"/api/history?portfolioId={pid}")
    assert history["count"] == 1  # the record outlives the portfolio


async def test_the_cli_talks_to_the_daemon(daemon: DaemonProcess) -> None:
    await daemon.wait_healthy()
    env = {
        **os.environ,
        "REBALANCERD_LISTEN": daemon.env["REBALANCERD_LISTEN"],
        "REBALANCERD_API_TOKEN": TOKEN,
    }
    result = subprocess.run(
        [sys.executable, "-m", "rebalancerd", "status"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Scheduler stopped (enabled: yes")
