"""HTTP API bench: req/s and p99 of /healthz next to a bare aiohttp hello-world, and of
GET /api/scheduler with 1 000 portfolios, idle and during a running drain, plus event-loop lag.

    .venv/bin/python bench/bench_api.py [--seconds 5] [--connections 32] [--portfolios 1000]

The server (this process, uvloop) and the load generator (a child process with a minimal
keep-alive HTTP/1.1 client) each get a core. Uses $DATABASE_URL (a scratch database is created
on that server) or an embedded PostgreSQL. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from http_load import measure, run

from rebalancerd.api.app import make_app
from rebalancerd.api.http import CACHE
from rebalancerd.config import AccountSettings, PaperSettings, SchedulerSettings, Settings
from rebalancerd.exchange.accounts import build_exchanges, close_exchanges
from rebalancerd.metrics import Metrics
from rebalancerd.runs.lifecycle import new_owner_id
from rebalancerd.runs.loop import Scheduler
from rebalancerd.store.embedded import EmbeddedPostgres, connect_pool
from rebalancerd.store.migrations import load_migrations, migrate
from rebalancerd.store.paper_ledger import PgPaperLedger
from rebalancerd.store.portfolios import PortfolioFields
from rebalancerd.store.repository import Store

STATUS = "/api/scheduler"


# -- the server side (this process)


class LagMonitor:
    """Event-loop lag: how late a 5 ms sleep wakes up."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            self.samples.append(time.perf_counter() - started - 0.005)

    def start(self) -> None:
        self.samples = []
        self._task = asyncio.create_task(self._run())

    def stop(self) -> float:
        """p99 lag in ms since start()."""
        assert self._task is not None
        self._task.cancel()
        lags = sorted(self.samples) or [0.0]
        return 1000 * lags[int(len(lags) * 0.99)]


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


def hello_app() -> web.Application:
    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="Hello, world")

    app = web.Application()
    app.router.add_get("/", hello)
    return app


async def seed(store: Store, count: int) -> None:
    """`count` enabled portfolios, one paper account each, all due now."""
    now = datetime.now(UTC)
    for i in range(count):
        await store.create_portfolio(
            PortfolioFields(
                name=f"bench {i}", user_id=None, account=f"acct-{i:04d}",
                target_weights={"BTC": 40, "ETH": 30, "SOL": 20, "ADA": 10},
                rebalance_enabled=True, rebalance_interval="daily",
                rebalance_threshold=Decimal(10), max_orders_per_rebalance=None,
                schedule_tz=None, drift_band_abs=None, drift_band_rel=None,
                schedule_anchor=now, next_rebalance_at=now,
            )
        )  # fmt: skip


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A throw-away database on $DATABASE_URL's server, or on an embedded one; its DSN."""
    embedded = None
    base = os.environ.get("DATABASE_URL")
    if not base:
        embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="rbd-bench-")))
        base = await asyncio.to_thread(embedded.start)
    name = "bench_" + uuid.uuid4().hex[:12]
    await _admin(base, f"CREATE DATABASE {name}")
    try:
        yield _on_database(base, name)
    finally:
        await _admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _admin(base: str, sql: str) -> None:
    conn = await asyncpg.connect(_on_database(base, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _on_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


def _row(label: str, r: dict[str, Any]) -> str:
    figures = f"{r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['lag']:8.2f} {r['errors']:6d}"
    return f"{label:<46} {figures}"


@dataclass
class Bench:
    """The server side of the bench: the real app on a port, and a bare hello-world."""

    args: argparse.Namespace
    store: Store
    scheduler: Scheduler
    app: web.Application
    api_port: int
    hello_port: int
    lag: LagMonitor = field(default_factory=LagMonitor)

    async def phase(self, label: str, port: int, path: str, gz: bool = False) -> dict[str, Any]:
        """Load one URL; print req/s, latency and the server's loop lag meanwhile."""
        self.lag.start()
        result = await measure(port, path, self.args.seconds, self.args.connections, gz)
        result["lag"] = self.lag.stop()
        print(_row(label, result), flush=True)
        return result


async def start(args: argparse.Namespace, store: Store) -> tuple[Bench, list[Any]]:
    """Seed, build the app over a real scheduler with one paper account per portfolio."""
    print(f"seeding {args.portfolios} portfolios ...", flush=True)
    await seed(store, args.portfolios)
    accounts = {f"acct-{i:04d}": AccountSettings(mode="paper") for i in range(args.portfolios)}
    settings = Settings(
        state_dir=Path(tempfile.gettempdir()),
        accounts=accounts,
        paper=PaperSettings(prices="simulated"),
        scheduler=SchedulerSettings(check_interval="* * * * *"),
    )
    exchanges = await build_exchanges(settings, PgPaperLedger(store))
    metrics = Metrics()
    scheduler = Scheduler(settings.scheduler, store, exchanges, metrics, owner=new_owner_id())
    await scheduler.refresh()
    app = make_app(settings, store, scheduler, metrics)
    api_runner, api_port = await _serve(app)
    hello_runner, hello_port = await _serve(hello_app())
    bench = Bench(args, store, scheduler, app, api_port, hello_port)
    return bench, [api_runner.cleanup, hello_runner.cleanup, lambda: close_exchanges(exchanges)]


async def idle_phases(b: Bench) -> None:
    """hello-world vs /healthz (alternating: the median of each); /api/scheduler variants."""
    hello, health = [], []
    for _ in range(b.args.rounds):
        hello.append(await b.phase("GET / (bare aiohttp hello-world)", b.hello_port, "/"))
        health.append(await b.phase("GET /healthz", b.api_port, "/healthz"))
    ratio = statistics.median(r["rps"] for r in health) / statistics.median(r["rps"] for r in hello)
    print(f"{'  => /healthz at':<46} {100 * ratio:8.0f}% of hello-world (medians)")
    n = b.args.portfolios
    await b.phase(f"GET /api/scheduler, {n} portfolios, gzip", b.api_port, STATUS, gz=True)
    await b.phase(f"GET /api/scheduler, {n} portfolios, identity", b.api_port, STATUS)
    b.app[CACHE].ttl = 0.0
    await b.phase("GET /api/scheduler, cache TTL 0 (shared query)", b.api_port, STATUS, gz=True)
    b.app[CACHE].ttl = 1.0


async def drain_phases(b: Bench) -> None:
    """/api/scheduler while the scheduler works through every due portfolio."""
    shutdown = asyncio.Event()
    loop_task = asyncio.create_task(b.scheduler.run(shutdown))
    await asyncio.sleep(1.0)  # the drain is under way
    before = await _runs(b.store)
    await b.phase("GET /api/scheduler during the drain, gzip", b.api_port, STATUS, gz=True)
    print(f"{'':<46} ({await _runs(b.store) - before} runs finished in that window)")
    b.lag.start()
    await asyncio.sleep(b.args.seconds)
    lag = b.lag.stop()
    print(
        f"{'event-loop lag during the drain, no HTTP load':<46} {'':>9} {'':>8} {'':>8} {lag:8.2f}"
    )
    shutdown.set()
    await asyncio.wait_for(loop_task, timeout=60)


async def bench(args: argparse.Namespace) -> None:
    async with scratch_database() as dsn:
        store = Store(await connect_pool(dsn, timeout=30, size=10))
        cleanups: list[Any] = []
        try:
            async with store.pool.acquire() as conn:
                await migrate(conn, load_migrations())
            b, cleanups = await start(args, store)
            header = f"{'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'lag p99':>8} {'errors':>6}"
            print(f"\n{'':<46} {header}")
            await idle_phases(b)
            await drain_phases(b)
        finally:
            for cleanup in reversed(cleanups):
                await cleanup()
            await store.close()


async def _runs(store: Store) -> int:
    stats = await store.history_stats()
    return int(stats["count"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--portfolios", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="hello-world/healthz rounds")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"{args.connections} connections, {args.seconds:.0f}s per phase")  # fmt: skip
    run(bench(args))


if __name__ == "__main__":
    main()
