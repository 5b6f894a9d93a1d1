"""Fixtures of the browser tests: one headless Chromium per module, and a demo daemon."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser_support import launch
from tests.conftest import _admin, dsn_for, run_sync
from tests.daemon_proc import DaemonProcess

TOKEN = "dashboard-token-0123456789"
READ_TOKEN = "dashboard-read-only-0123456789"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch() as chromium:
        yield chromium


@contextmanager
def demo_daemon(
    tmp: Path, pg_base_url: str, config: str | None = None
) -> Iterator[tuple[DaemonProcess, str]]:
    """`rebalancerd demo` on a database of its own, with both tokens and the loop stopped (only
    the tests trade); the process and its database URL. `config`: a TOML file's text."""
    name = "t_" + uuid.uuid4().hex[:16]
    run_sync(_admin(pg_base_url, f"CREATE DATABASE {name}"))
    dsn = dsn_for(pg_base_url, name)
    env = {
        "DATABASE_URL": dsn,
        "REBALANCERD_API_TOKEN": TOKEN,
        "REBALANCERD_READ_TOKEN": READ_TOKEN,
        "SCHEDULER_AUTO_START": "false",
    }
    if config is not None:
        (tmp / "config.toml").write_text(config)
        env["REBALANCERD_CONFIG"] = str(tmp / "config.toml")
    proc = DaemonProcess(tmp, env, args=("demo",)).start()
    try:
        run_sync(proc.wait_healthy())  # in a thread: the browser may already run a loop
        yield proc, dsn
    finally:
        proc.stop()
        run_sync(_admin(pg_base_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
