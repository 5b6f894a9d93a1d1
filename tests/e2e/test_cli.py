"""The real command: bad config exits 78 in one line; run serves /healthz, stops on SIGTERM."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_proc import DaemonProcess


def rebalancerd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rebalancerd", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", ["run", "migrate", "demo"])
def test_help_on_every_command(command: str) -> None:
    result = rebalancerd(command, "--help")
    assert result.returncode == 0
    assert "--config" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("run", "--bogus"), {}, "unrecognized arguments: --bogus"),
        (("run",), {"SCHEDULER_CHECK_INTERVAL": "bad"}, "scheduler.check_interval"),
        # croniter.is_valid accepts it, but it never fires: refused before anything starts.
        (("run",), {"SCHEDULER_CHECK_INTERVAL": "0 0 30 2 *"}, "scheduler.check_interval"),
        (("run", "--config", "/nonexistent.toml"), {}, "config file not found"),
        (("migrate",), {"REBALANCERD_LISTEN": "0.0.0.0:1"}, "without http.api_token"),
        (("fly",), {}, "invalid choice"),
    ],
)
def test_bad_config_exits_78_with_one_line(
    args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    result = rebalancerd(*args, env=env)
    assert result.returncode == 78
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_migrate_applies_then_nothing(database_url: str, empty_database_url: str) -> None:
    first = rebalancerd("migrate", env={"DATABASE_URL": empty_database_url})
    assert first.returncode == 0, first.stderr
    assert "0001_init.sql" in first.stdout
    again = rebalancerd("migrate", env={"DATABASE_URL": empty_database_url})
    assert again.returncode == 0
    assert "applied 0 migration(s)" in again.stdout


@pytest.fixture
def daemon(tmp_path: Path, database_url: str) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path, {"DATABASE_URL": database_url}).start()
    yield proc
    proc.stop()


async def test_run_serves_healthz_and_stops_on_sigterm(daemon: DaemonProcess) -> None:
    await daemon.wait_healthy()
    status, body = await daemon.request("GET", "/healthz")
    assert status == 200
    assert body["database"] is True
    started = time.monotonic()
    assert daemon.terminate() == 0
    assert time.monotonic() - started < 10
    assert "Traceback" not in daemon.log()
