"""What the bench scripts share: a scratch database, daemon configs, /proc readings, statistics.

Scripts put the repository root on sys.path and `from bench.support import ...`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from rebalancerd.store.embedded import EmbeddedPostgres, connect_pool
from rebalancerd.store.migrations import load_migrations, migrate
from rebalancerd.store.repository import Store
from tests.daemon_proc import DaemonProcess

ROOT = Path(__file__).resolve().parents[1]
# The four-asset target most benches use (every pair exists at the fake Kraken).
WEIGHTS = {"BTC": 40, "ETH": 30, "SOL": 20, "ADA": 10}


# -- the database


@dataclass
class Database:
    """A freshly migrated scratch database; `dsn` for daemons, `store` for the bench itself."""

    dsn: str
    store: Store
    server_dir: Path | None  # the embedded server's data directory (None: $DATABASE_URL's)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.store.pool


def on_database(dsn: str, name: str) -> str:
    """The same server, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


async def _admin(base: str, sql: str) -> None:
    conn = await asyncpg.connect(on_database(base, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def scratch_database(pool_size: int = 10) -> AsyncIterator[Database]:
    """A migrated database on $DATABASE_URL's server or on an embedded one; dropped after."""
    embedded: EmbeddedPostgres | None = None
    directory: Path | None = None
    base = os.environ.get("DATABASE_URL")
    if not base:
        # Short path: the server's unix socket lives in it.
        directory = Path(tempfile.mkdtemp(prefix="rbd-bench-"))
        embedded = EmbeddedPostgres(directory)
        base = await asyncio.to_thread(embedded.start)
    name = "bench_" + uuid.uuid4().hex[:12]
    await _admin(base, f"CREATE DATABASE {name}")
    dsn = on_database(base, name)
    pool = await connect_pool(dsn, timeout=30, size=pool_size)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, load_migrations())
        yield Database(dsn, Store(pool), directory)
    finally:
        await pool.close()
        await _admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


async def insert_portfolios(
    pool: asyncpg.Pool,
    count: int,
    *,
    first_due: datetime,
    spacing_seconds: float = 0.0,
    interval: str = "daily",
    weights: dict[str, int] | None = None,
    threshold: str = "10",
    account_prefix: str = "acct-",
) -> None:
    """`count` enabled portfolios, one account each (acct-0000 ...), due first_due + i*spacing."""
    await pool.execute(
        """
        INSERT INTO portfolios (name, account, target_weights, rebalance_enabled,
                                rebalance_interval, rebalance_threshold, schedule_anchor,
                                next_rebalance_at)
        SELECT 'bench ' || i, $2 || lpad(i::text, greatest(4, length(i::text)), '0'), $3, true,
               $4, $5::numeric,
               $1::timestamptz + make_interval(secs => i * $6::float8),
               $1::timestamptz + make_interval(secs => i * $6::float8)
          FROM generate_series(0, $7::int - 1) AS i
        """,
        first_due,
        account_prefix,
        weights or WEIGHTS,  # the pool's jsonb codec encodes the dict
        interval,
        threshold,
        spacing_seconds,
        count,
    )


def account_name(i: int, prefix: str = "acct-") -> str:
    """The account of the i-th portfolio insert_portfolios made."""
    return f"{prefix}{i:04d}"


# -- daemon configuration


def write_config(path: Path, sections: dict[str, dict[str, object]]) -> Path:
    """A TOML config from {"kraken": {...}, "accounts.NAME": {...}, ...}."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def live_config(
    path: Path,
    kraken_url: str,
    accounts: dict[str, tuple[str, str]],
    scheduler: dict[str, object] | None = None,
    kraken: dict[str, object] | None = None,
) -> Path:
    """A TOML config: live accounts (name -> (key, secret)) on the fake Kraken."""
    sections: dict[str, dict[str, object]] = {
        "kraken": {"api_url": kraken_url, **(kraken or {})},
        "scheduler": dict(scheduler or {}),
    }
    for name, (key, secret) in accounts.items():
        sections[f"accounts.{name}"] = {"mode": "live", "api_key": key, "api_secret": secret}
    return write_config(path, sections)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return str(value)


def daemon_env(dsn: str, config: Path, kraken_url: str) -> dict[str, str]:
    """Environment of a `rebalancerd run` under test (the DSN and config; quiet logs)."""
    return {
        "DATABASE_URL": dsn,
        "REBALANCERD_CONFIG": str(config),
        "KRAKEN_API_URL": kraken_url,
        "REBALANCERD_LOG_LEVEL": "WARNING",  # a bench measures the daemon, not its log volume
    }


@contextlib.asynccontextmanager
async def running_daemon(
    workdir: Path, env: dict[str, str], timeout: float = 900.0
) -> AsyncIterator[DaemonProcess]:
    """A `rebalancerd run` process, healthy; SIGTERM (then SIGKILL) and reaped after."""
    started = time.monotonic()
    daemon = DaemonProcess(workdir, env).start()
    try:
        await daemon.wait_healthy(timeout)
        print(f"   daemon healthy {time.monotonic() - started:.1f} s after start", flush=True)
        yield daemon
    except BaseException:
        print(f"--- last lines of {daemon.log_path}:", *daemon.log().splitlines()[-30:], sep="\n")
        raise
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(daemon.terminate, 30.0)
        daemon.stop()


class ReadyWatch:
    """A NOTIFY_SOCKET for a daemon under test: the monotonic time its READY=1 arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ready_at: float | None = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.setblocking(False)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._read)

    def _read(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                message = self._sock.recv(4096)
                if self.ready_at is None and b"READY=1" in message.split(b"\n"):
                    self.ready_at = time.monotonic()

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()


# -- /proc


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (/proc/<pid>/stat utime + stime)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds_fine(pid: int) -> float:
    """CPU seconds of the process's live threads from /proc/<pid>/task/*/schedstat (ns, where
    /proc/<pid>/stat counts 10 ms ticks): the resolution an idle process needs."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(stat.read_text().split()[0])
    return total / 1e9


def rss_mb(pid: int) -> float:
    """Resident set size in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def postgres_pids(server_dir: Path | None) -> list[int]:
    """The embedded server's postmaster and its children (empty for an external server)."""
    pid_file = server_dir / "postmaster.pid" if server_dir else None
    if pid_file is None or not pid_file.exists():
        return []
    master = int(pid_file.read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            if int(text[text.rindex(")") + 2 :].split()[1]) == master:
                children.append(int(stat.parent.name))
    return [master, *children]


def cpu_snapshot(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds per live process (processes gone meanwhile are skipped)."""
    snapshot = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            snapshot[pid] = cpu_seconds(pid)
    return snapshot


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two snapshots; a process new since `before` counts from 0."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# -- figures


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def machine() -> str:
    """One line: CPUs, CPU model, memory, Python, date (UTC)."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem_gb:.1f} GiB, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


def header(title: str) -> None:
    """The first lines every bench prints."""
    print(f"== {title}")
    print(f"   {machine()}")
    print(f"   command: {sys.executable} {' '.join(sys.argv)}", flush=True)
