"""The README's commands: the quick start matches CI, and the operator's curl lines work."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_proc import DaemonProcess

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
TOKEN = "readme-test-token-0123456789abcdef"


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_second() -> None:
    commands = blocks(section("Quick start"))[:2]
    assert len(commands) == 2
    demo, tests = (c.strip() for c in commands)
    assert "\n" not in demo and demo.endswith("rebalancerd demo")
    assert "\n" not in tests and "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()


@pytest.fixture
def daemon(tmp_path: Path, database_url: str) -> Iterator[DaemonProcess]:
    config = tmp_path / "config.toml"
    config.write_text('[paper]\nprices = "simulated"\n')  # no network in tests
    proc = DaemonProcess(
        tmp_path,
        {
            "DATABASE_URL": database_url,
            "REBALANCERD_API_TOKEN": TOKEN,
            "REBALANCERD_CONFIG": str(config),
        },
    ).start()
    yield proc
    proc.stop()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_operator_control_commands_work_as_written(daemon: DaemonProcess) -> None:
    await daemon.wait_healthy()
    status, body = await daemon.request(
        "POST",
        "/api/portfolios/manage",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={
            "name": "Readme",
            "targetWeights": {"BTC": 60, "ETH": 40},
            "rebalanceEnabled": False,
            "rebalanceInterval": "weekly",
        },
    )
    assert status == 201, body
    pid = body["portfolio"]["id"]
    script = blocks(section("Operator's guide").split("### Control")[1])[0]
    script = script.replace('"$(sudo cat /etc/credstore/rebalancerd.api-token)"', TOKEN)
    script = script.replace("localhost:8080", f"127.0.0.1:{daemon.port}").replace("<id>", pid)
    commands = [c for c in script.replace("\\\n", " ").splitlines() if c.strip()]
    curls = [c for c in commands if c.startswith("curl ")]
    setup = "\n".join(c for c in commands if not c.startswith("curl "))  # H=..., J=...
    assert len(curls) >= 7
    for curl in curls:
        out = subprocess.run(
            ["bash", "-c", f"{setup}\n{curl} -w '\\n%{{http_code}}'"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        body_text, code = out.stdout.rsplit("\n", 1)
        assert out.returncode == 0 and code.startswith("2"), (curl, out.stdout, out.stderr)
        assert json.loads(body_text)["success"] is True, curl
