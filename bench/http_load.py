"""A minimal keep-alive HTTP/1.1 load generator, run in a child process so it has its own core."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import re
import time
from typing import Any

LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


async def _client(port: int, path: str, until: float, latencies: list[float], gz: bool) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    accept = "Accept-Encoding: gzip\r\n" if gz else ""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{accept}\r\n".encode()
    errors = 0
    try:
        while time.monotonic() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            found = LENGTH.search(head)
            await reader.readexactly(int(found.group(1)) if found else 0)
            latencies.append(time.perf_counter() - started)
            errors += head[9:12] != b"200"
    finally:
        writer.close()
    return errors


async def _load(port: int, path: str, seconds: float, conns: int, gz: bool) -> dict[str, Any]:
    warm: list[float] = []
    await asyncio.gather(*(_client(port, path, time.monotonic() + 0.5, warm, gz) for _ in range(4)))
    latencies: list[float] = []
    until = time.monotonic() + seconds
    errors = await asyncio.gather(
        *(_client(port, path, until, latencies, gz) for _ in range(conns))
    )
    return {"latencies": latencies, "seconds": seconds, "errors": sum(errors)}


def _load_process(port: int, path: str, seconds: float, conns: int, gz: bool, out: Any) -> None:
    out.send(run(_load(port, path, seconds, conns, gz)))


async def measure(
    port: int, path: str, seconds: float, connections: int, gz: bool = False
) -> dict[str, Any]:
    """Hammer one URL from a child process; req/s, p50/p99 in ms, errors."""
    parent, child = mp.get_context("spawn").Pipe()
    proc = mp.get_context("spawn").Process(
        target=_load_process, args=(port, path, seconds, connections, gz, child)
    )
    proc.start()
    result = await asyncio.to_thread(parent.recv)
    await asyncio.to_thread(proc.join)
    lat = sorted(result["latencies"])
    return {
        "rps": len(lat) / result["seconds"],
        "p50": 1000 * lat[len(lat) // 2],
        "p99": 1000 * lat[int(len(lat) * 0.99)],
        "errors": result["errors"],
    }


def run(coro: Any) -> Any:
    """Run a coroutine on uvloop when it is installed (as the daemon does)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
