"""deploy/systemd/rebalancerd.service: required directives, `verify` clean, exposure <= 2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "rebalancerd.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections to (key, value) pairs in order; repeated keys (LoadCredential=) all kept."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert current is not None and sep, f"not a directive: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [value for k, value in section if k == key]


def one(section: list[tuple[str, str]], key: str) -> str:
    found = values(section, key)
    assert len(found) == 1, f"{key}= appears {len(found)} times"
    return found[0]


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text())


def test_service_contract(unit: dict[str, list[tuple[str, str]]]) -> None:
    service = unit["Service"]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "TimeoutStopSec": "30",
        "StateDirectory": "rebalancerd",
        "SyslogIdentifier": "rebalancerd",
        "DynamicUser": "yes",
        "UMask": "0077",
    }
    assert {key: one(service, key) for key in expected} == expected
    assert one(service, "ExecStart").endswith(
        "/rebalancerd run --config /etc/rebalancerd/config.toml"
    )
    assert one(service, "ExecStart").startswith("/")
    assert float(one(service, "RestartSec")) > 0
    # A dead supervised task exits 70: on-failure must restart it, a bad config (78) must not.
    assert one(service, "RestartPreventExitStatus").split() == ["78"]
    assert not values(service, "SuccessExitStatus")
    assert "PYTHONUNBUFFERED=1" in " ".join(values(service, "Environment")).split()
    # Idle sockets must not be able to exhaust the default 1024 descriptors (issue #21).
    assert int(one(service, "LimitNOFILE")) >= 8192
    assert int(one(unit["Unit"], "StartLimitBurst")) > 0
    assert int(one(unit["Unit"], "StartLimitIntervalSec")) > 0
    assert one(unit["Install"], "WantedBy") == "multi-user.target"


def test_secrets_come_in_as_credentials(unit: dict[str, list[tuple[str, str]]]) -> None:
    credentials = dict(v.split(":", 1) for v in values(unit["Service"], "LoadCredential"))
    assert set(credentials) == {"api-token", "kraken-key", "kraken-secret"}
    assert all(path.startswith("/") for path in credentials.values())


def test_sandbox_directives(unit: dict[str, list[tuple[str, str]]]) -> None:
    service = unit["Service"]
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "ProtectClock": "yes",
        "ProtectHostname": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "NoNewPrivileges": "yes",
        "MemoryDenyWriteExecute": "yes",
    }
    assert {key: one(service, key) for key in expected} == expected
    assert values(service, "SystemCallFilter") == ["@system-service", "~@privileged @resources"]
    # Kraken's addresses are not ours to pin (see the comment in the unit).
    assert not values(service, "IPAddressAllow")


def test_parser_handles_comments_repeats_and_continuations() -> None:
    parsed = parse_unit("[Service]\n# c\n; c\nA=1\nA=\nB=x \\\n  y\n")
    assert parsed == {"Service": [("A", "1"), ("A", ""), ("B", "x    y")]}


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    cmd = [ANALYZE, "--no-pager", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def runnable_copy(directory: Path, extra: str = "") -> Path:
    """The unit with ExecStart's program swapped for one that exists here (verify checks it)."""
    text = re.sub(
        r"^ExecStart=\S+", f"ExecStart={sys.executable}", UNIT.read_text(), flags=re.MULTILINE
    )
    copy = directory / UNIT.name
    copy.write_text(text + extra)
    return copy


@needs_analyze
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    result = analyze("verify", str(runnable_copy(tmp_path)))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_analyze
def test_systemd_analyze_verify_would_notice_a_mistake(tmp_path: Path) -> None:
    result = analyze("verify", str(runnable_copy(tmp_path, "ProtectSystm=strict\n")))
    assert "ProtectSystm" in result.stdout + result.stderr


@needs_analyze
def test_exposure_is_at_most_2() -> None:
    # --threshold is on the 0-100 scale of the 0.0-10.0 level printed below.
    result = analyze("security", "--offline=yes", "--threshold=20", str(UNIT))
    match = re.search(r"Overall exposure level for rebalancerd\.service: (\d+\.\d+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match[1]) <= 2.0
    assert result.returncode == 0, result.stdout + result.stderr


MDWE_PROBE = """
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("W+X mapping allowed: MDWE is not in force")
except PermissionError:
    pass
import asyncio, hashlib, hmac, ssl
import aiohttp, asyncpg, croniter, orjson, prometheus_client, pydantic, uvloop

class M(pydantic.BaseModel):
    x: int

async def main():
    async with aiohttp.ClientSession():
        pass
    await asyncio.get_running_loop().getaddrinfo("localhost", 80)

uvloop.run(main())
ssl.create_default_context()
hmac.new(b"k", hashlib.sha256(b"m").digest(), hashlib.sha512).digest()
orjson.dumps({"a": M(x=1).x})
prometheus_client.generate_latest()
print("ok")
"""


def test_runtime_survives_memory_deny_write_execute() -> None:
    # The kernel's PR_SET_MDWE enforces what MemoryDenyWriteExecute=yes enforces via seccomp.
    cmd = [sys.executable, "-c", MDWE_PROBE]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode == 77:
        pytest.skip("kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
