"""Issue #21, probed as an attacker would: each finding against a real `rebalancerd run`.

Cross-site requests, DNS rebinding, short tokens, idle sockets, concurrent triggers, control
characters, failed auth, malformed headers, client hang-ups and the one-account rule.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.api_support import ORIGINAL_BODY
from tests.conftest import _admin, dsn_for, run_sync
from tests.daemon_proc import DaemonProcess

pytestmark = pytest.mark.e2e
TOKEN = "a-token-of-thirty-two-characters"
ALLOWED = "rebalancer.example"
MANAGE = "/api/portfolios/manage"
TRIGGER = "/api/scheduler/trigger"
CONFIG = """\
[paper]
prices = "simulated"
[accounts.default]
mode = "paper"
[accounts.sandbox]
mode = "paper"
balances = { EUR = "5000" }
"""


@pytest.fixture(scope="module")
def module_database_url(pg_base_url: str, pg_template: str) -> Iterator[str]:
    """One migrated database for the daemons of this module."""
    name = "t_" + uuid.uuid4().hex[:16]
    run_sync(_admin(pg_base_url, f"CREATE DATABASE {name} TEMPLATE {pg_template}"))
    yield dsn_for(pg_base_url, name)
    run_sync(_admin(pg_base_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _daemon(directory: Path, database_url: str, config: str, **env: str) -> DaemonProcess:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.toml").write_text(config)
    base = {
        "DATABASE_URL": database_url,
        "REBALANCERD_CONFIG": str(directory / "config.toml"),
        "SCHEDULER_AUTO_START": "false",  # only triggers run: nothing races the tests
    }
    proc = DaemonProcess(directory, {**base, **env}).start()
    try:
        run_sync(proc.wait_healthy())
    except BaseException:
        proc.stop()
        raise
    return proc


@pytest.fixture(scope="module")
def daemon(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[DaemonProcess]:
    """The loopback default: no token; one extra allowed host name."""
    proc = _daemon(
        tmp_path_factory.mktemp("open"),
        module_database_url,
        CONFIG,
        REBALANCERD_ALLOWED_HOSTS=f" {ALLOWED} , other.example",
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory, pg_base_url: str) -> Iterator[DaemonProcess]:
    """A daemon with a token, logging in journald style so priorities show."""
    name = "t_" + uuid.uuid4().hex[:16]
    run_sync(_admin(pg_base_url, f"CREATE DATABASE {name}"))
    proc = _daemon(
        tmp_path_factory.mktemp("locked"),
        dsn_for(pg_base_url, name),
        CONFIG,
        REBALANCERD_API_TOKEN=TOKEN,
        JOURNAL_STREAM="8:1234",
    )
    yield proc
    proc.stop()
    run_sync(_admin(pg_base_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _create(proc: DaemonProcess, **fields: Any) -> dict[str, Any]:
    body = {**ORIGINAL_BODY, "rebalanceEnabled": False, **fields}
    status, answer = await proc.request("POST", MANAGE, json=body)
    assert status == 201, answer
    created: dict[str, Any] = answer["portfolio"]
    return created


async def _history(proc: DaemonProcess, pid: str) -> list[dict[str, Any]]:
    status, answer = await proc.request("GET", f"/api/history?portfolioId={pid}")
    assert status == 200, answer
    records: list[dict[str, Any]] = answer["history"]
    return records


async def _is_running(proc: DaemonProcess) -> bool:
    status, answer = await proc.request("GET", "/api/scheduler")
    assert status == 200, answer
    running: bool = answer["status"]["isRunning"]
    return running


async def _raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes as they are; everything the server answers until it closes (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


# -- 3. an empty or short token ------------------------------------------------------------


UNREACHABLE_DB = '[database]\nurl = "postgresql://nobody@127.0.0.1:9/none"\nconnect_timeout = 1\n'


@pytest.mark.parametrize(
    ("toml", "env"),
    [
        ('[http]\nlisten = "0.0.0.0:8080"\napi_token = ""\n', {}),
        ('[http]\napi_token = ""\n', {}),
        ("", {"REBALANCERD_API_TOKEN": "tiny-secret"}),
        ("", {"REBALANCERD_API_TOKEN": "x" * 15, "REBALANCERD_LISTEN": "0.0.0.0:8080"}),
    ],
)
def test_an_empty_or_short_token_exits_78(tmp_path: Path, toml: str, env: dict[str, str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(UNREACHABLE_DB + toml)
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REBALANCERD_")},
        "REBALANCERD_STATE_DIR": str(tmp_path / "state"),
        "REBALANCERD_CONFIG": str(config),
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-m", "rebalancerd", "run"],
        capture_output=True, text=True, env=full_env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 78, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "http.api_token" in lines[0], result.stderr
    assert "tiny-secret" not in lines[0] and "x" * 15 not in lines[0]  # never the value


# -- 5. concurrent triggers ------------------------------------------------------------------


async def test_sixty_concurrent_triggers_run_once_and_never_5xx(daemon: DaemonProcess) -> None:
    for _ in range(3):
        pid = (await _create(daemon))["id"]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            statuses = await asyncio.gather(*(_trigger(session, daemon, pid) for _ in range(60)))
        assert sorted(set(statuses)) == [200, 409], statuses
        assert statuses.count(200) == 1, statuses
        assert len(await _history(daemon, pid)) == 1


async def test_triggers_racing_a_finishing_run_never_5xx(daemon: DaemonProcess) -> None:
    # The deadlock needed a trigger to lock the portfolio just as a run was being finished:
    # keep triggers coming while several runs start and finish.
    pid = (await _create(daemon))["id"]
    statuses: list[int] = []

    async def hammer(session: aiohttp.ClientSession) -> None:
        while statuses.count(200) < 8 and len(statuses) < 3000:
            statuses.append(await _trigger(session, daemon, pid))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.wait_for(asyncio.gather(*(hammer(session) for _ in range(20))), 40)
    assert set(statuses) <= {200, 409}, sorted(set(statuses))
    assert statuses.count(200) == len(await _history(daemon, pid)) >= 8


async def _trigger(session: aiohttp.ClientSession, proc: DaemonProcess, pid: str) -> int:
    async with session.post(proc.url + TRIGGER, json={"portfolioId": pid}) as resp:
        await resp.read()
        return resp.status


# -- 10. one account, one enabled portfolio --------------------------------------------------


async def test_a_real_trigger_may_not_trade_an_account_another_portfolio_holds(
    daemon: DaemonProcess,
) -> None:
    holder = await _create(daemon, name="holder", account="sandbox", rebalanceEnabled=True)
    other = await _create(daemon, name="bystander", account="sandbox")
    status, answer = await daemon.request("POST", TRIGGER, json={"portfolioId": other["id"]})
    assert status == 409, answer
    assert "sandbox" in answer["error"] and holder["id"] in answer["error"]
    assert await _history(daemon, other["id"]) == []
    # A dry run trades nothing, so it may plan against the shared balance.
    body = {"portfolioId": other["id"], "dryRun": True}
    status, answer = await daemon.request("POST", TRIGGER, json=body)
    assert status == 200 and answer["history"]["dryRun"] is True, answer
    # The holder itself runs for real.
    status, answer = await daemon.request("POST", TRIGGER, json={"portfolioId": holder["id"]})
    assert status == 200 and answer["history"]["dryRun"] is False, answer
    status, _ = await daemon.request("DELETE", f"{MANAGE}?id={holder['id']}")
    assert status == 200
