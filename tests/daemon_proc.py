"""Start the real `rebalancerd run` process for end-to-end tests, and stop or kill it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class DaemonProcess:
    """One daemon process with its own port and log file."""

    def __init__(self, tmp_path: Path, env: dict[str, str], args: tuple[str, ...] = ("run",)):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"daemon-{self.port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")},
            "REBALANCERD_LISTEN": f"127.0.0.1:{self.port}",
            "REBALANCERD_STATE_DIR": str(tmp_path / "state"),
            "KRAKEN_API_URL": "http://127.0.0.1:9",  # never the real Kraken from a test
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rebalancerd", *self.args],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    async def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
                try:
                    async with session.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await _sleep(0.1)
        raise AssertionError(f"daemon not healthy in {timeout}s:\n{self.log()}")

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, **kwargs) as resp,
        ):
            body = await resp.json(content_type=None)
            return resp.status, body

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if hasattr(self, "_log"):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_for_log(self, *needles: str, since: int = 0, timeout: float = 10.0) -> str:
        """The first log line after offset `since` holding any of `needles` (bounded wait)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log()[since:].splitlines():
                if any(needle in line for needle in needles):
                    return line
            if time.monotonic() >= deadline:
                raise AssertionError(f"no log line with {needles} in {timeout}s:\n{self.log()}")
            await _sleep(0.05)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
