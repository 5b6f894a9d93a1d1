"""The client subcommands against a live API on a loopback port: tables, --json, errors."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rebalancerd.cli.client import default_url
from rebalancerd.cli.main import main
from rebalancerd.store.repository import Store
from tests.api_support import ORIGINAL_BODY, on_port, serving
from tests.daemon_proc import free_port

TOKEN = "cli-token-0123456789abcdef"


@dataclass
class Cli:
    url: str
    capsys: pytest.CaptureFixture[str]

    async def run(self, *args: str, url: bool = True) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of `rebalancerd ARGS --url URL`."""
        argv = [*args, "--url", self.url] if url else list(args)
        code = await asyncio.to_thread(main, argv)
        out, err = self.capsys.readouterr()
        return code, out, err

    async def json(self, *args: str) -> Any:
        code, out, err = await self.run(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
async def cli(
    store: Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Cli]:
    monkeypatch.delenv("REBALANCERD_API_TOKEN", raising=False)
    async with serving(store, tmp_path) as (app, _s, _m), on_port(app) as url:
        yield Cli(url, capsys)


@pytest.fixture
async def locked(
    store: Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Cli]:
    monkeypatch.delenv("REBALANCERD_API_TOKEN", raising=False)
    async with serving(store, tmp_path, token=TOKEN) as (app, _s, _m), on_port(app) as url:
        yield Cli(url, capsys)


async def _create(cli: Cli, tmp_path: Path, **fields: Any) -> dict[str, Any]:
    body = tmp_path / "portfolio.json"
    body.write_text(json.dumps({**ORIGINAL_BODY, **fields}))
    created = await cli.json("portfolios", "create", "--file", str(body))
    assert created["success"] is True
    portfolio: dict[str, Any] = created["portfolio"]
    return portfolio


async def test_portfolio_commands(cli: Cli, tmp_path: Path) -> None:
    portfolio = await _create(cli, tmp_path)
    pid = portfolio["id"]
    code, out, _ = await cli.run("portfolios")
    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split() == ["ID", "NAME", "ACCOUNT", "ENABLED", "INTERVAL", "WEIGHTS", "NEXT"]
    assert pid in row and "BTC:40 ETH:30 SOL:20 ADA:10" in row
    listed = await cli.json("portfolios", "list")
    assert listed["count"] == 1
    code, out, _ = await cli.run("portfolios", "show", pid)
    assert code == 0 and "My Portfolio" in out and "rebalanceInterval" in out
    assert (await cli.json("portfolios", "show", pid))["id"] == pid
    code, out, _ = await cli.run("portfolios", "delete", pid)
    assert code == 0 and pid in out
    code, _, err = await cli.run("portfolios", "show", pid)
    assert code == 1 and err == f"rebalancerd: portfolio {pid} not found\n"


async def test_status(cli: Cli, tmp_path: Path) -> None:
    portfolio = await _create(cli, tmp_path)
    code, out, _ = await cli.run("status")
    assert code == 0
    assert out.startswith("Scheduler running (enabled: yes, check: 0 * * * *, dry run: no)")
    assert portfolio["id"] in out and "weekly" in out
    status = await cli.json("status")
    assert status["schedule"][0]["id"] == portfolio["id"]


async def test_trigger_history_and_plan(cli: Cli, tmp_path: Path) -> None:
    pid = (await _create(cli, tmp_path))["id"]
    code, out, _ = await cli.run("plan", pid)
    assert code == 0 and out.startswith(f"Portfolio {pid}: value €") and "Orders:" in out
    assert re.fullmatch(r"Portfolio \S+: value €\d+\.\d\d", out.splitlines()[0]), out
    assert "Weights (%):" in out
    code, out, _ = await cli.run("trigger", pid, "--dry-run")
    assert code == 0 and out.startswith("Dry run completed")
    code, out, _ = await cli.run("trigger", pid)
    assert code == 0 and out.startswith("Rebalance completed")
    code, out, _ = await cli.run("history", "--portfolio", pid, "--limit", "1")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["EXECUTED", "PORTFOLIO", "RESULT"]
    assert len(lines) == 2 and "ok" in lines[1] and "4/4" in lines[1]
    history = await cli.json("history")
    assert [h["dryRun"] for h in history["history"]] == [False, True]


async def test_server_errors_are_one_line(cli: Cli, tmp_path: Path) -> None:
    code, out, err = await cli.run("trigger", "nope")
    assert (code, out) == (1, "")
    assert err == "rebalancerd: HTTP 404: portfolio nope not found\n"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**ORIGINAL_BODY, "targetWeights": {"BTC": 50}}))
    code, _, err = await cli.run("portfolios", "create", "--file", str(bad))
    assert code == 1 and err.startswith("rebalancerd: HTTP 400: targetWeights: ")
    bad.write_text("{not json")
    code, _, err = await cli.run("portfolios", "create", "--file", str(bad))
    assert code == 1 and "is not valid JSON" in err and len(err.splitlines()) == 1
    code, _, err = await cli.run("portfolios", "create", "--file", str(tmp_path / "missing"))
    assert code == 1 and "cannot read" in err


async def test_a_failed_run_exits_1(cli: Cli, store: Store, tmp_path: Path) -> None:
    from tests.integration.test_api_history import _broken

    broken = await store.create_portfolio(_broken())
    code, out, _ = await cli.run("trigger", broken.id)
    assert code == 1 and out.startswith("Rebalance failed") and "FAILED" in out


async def test_the_token(locked: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = await locked.run("status")
    assert code == 1
    assert err == (
        "rebalancerd: HTTP 401: missing or wrong bearer token "
        "(give --token or set REBALANCERD_API_TOKEN)\n"
    )
    assert (await locked.run("status", "--token", TOKEN))[0] == 0
    monkeypatch.setenv("REBALANCERD_API_TOKEN", TOKEN)
    assert (await locked.run("status"))[0] == 0
    assert (await locked.run("portfolios", "list", "--token", "wrong"))[0] == 1


def test_connection_refused_is_one_line_and_exit_1() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["status"], ["portfolios", "list"], ["trigger", "x", "--json"]):
        result = subprocess.run(
            [sys.executable, "-m", "rebalancerd", *args, "--url", url],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 1, result
        assert result.stdout == ""
        assert result.stderr == (
            f"rebalancerd: cannot reach rebalancerd at {url}: "
            "connection refused (is the daemon running?)\n"
        )


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        (None, "http://127.0.0.1:8080"),
        ("127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("0.0.0.0:8080", "http://127.0.0.1:8080"),
        ("[::]:8080", "http://[::1]:8080"),
        ("[::1]:8081", "http://[::1]:8081"),
        ("localhost:8082", "http://localhost:8082"),
    ],
)
def test_default_url_follows_rebalancerd_listen(listen: str | None, url: str) -> None:
    env = {} if listen is None else {"REBALANCERD_LISTEN": listen}
    assert default_url(env) == url


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["trigger"],
        ["portfolios"],
        ["portfolios", "create"],
        ["history"],
        ["plan"],
        ["runs"],
        ["approve"],
        ["reject"],
        ["halt"],
        ["resume"],
    ],
)
def test_help_on_every_client_command(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([*args, "--help"])
    assert done.value.code == 0
    assert "--url" in capsys.readouterr().out
