"""Drain: N portfolios on N accounts fall due at once; one daemon drains them with
scheduler.max_concurrency 1 and 8. Wall time vs bound, and no rate-limit error.

    .venv/bin/python bench/bench_drain.py [--portfolios 200] [--concurrency 1,8] [--latency 20]
                                          [--mode live|paper] [--repeats 1]

live (default): every account is a live account with its own API key on the fake Kraken; a run
sells BTC and buys ETH (2 orders). Bound per run = 1 (balances || ticker) + 2 (AddOrder) + 1
(order status) round trips. paper: paper accounts priced by the fake Kraken (Ticker); fills go
to the PostgreSQL ledger; bound per run = 1 (ticker) + 1 per order (its fill's fresh quote).
Bound of a drain = ceil(N / concurrency) x bound per run. The real `rebalancerd run` process
is measured; the fake runs in this process. Wall = last run's finish - the moment all became
due (database clock). Daemon and PostgreSQL CPU seconds over the drain are read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import (
    Database,
    account_name,
    cpu_seconds,
    cpu_snapshot,
    cpu_used,
    daemon_env,
    header,
    insert_portfolios,
    median,
    postgres_pids,
    running_daemon,
    scratch_database,
    write_config,
)
from tests.daemon_proc import DaemonProcess
from tests.fake_kraken import FakeKraken

WEIGHTS = {"BTC": 50, "ETH": 50}
LIVE_BALANCES = {"ZEUR": "0", "XXBT": "0.02"}  # about EUR 1 800, all in BTC: sell, then buy
PAPER_BALANCES = {"BTC": "0.02"}
ORDERS = 2
CORES = os.cpu_count() or 1


@dataclass
class Drain:
    concurrency: int
    wall: float  # seconds
    bound: float  # seconds
    succeeded: int
    rate_limited: int  # Kraken rate-limit errors answered by the fake
    daemon_cpu: float  # CPU seconds of the daemon during the drain
    db_cpu: float  # CPU seconds of the embedded PostgreSQL during the drain
    first_start: float  # seconds from due to the first run's start
    fake_cpu: float = 0.0  # CPU seconds of this process (the fake Kraken) during the drain
    db_work: dict[str, int] | None = None  # pg_stat_database deltas: commits, rows written
    run_ms: float = 0.0  # mean of a run's finished_at - started_at (claim to history)


def config_sections(
    mode: str, kraken_url: str, keys: list[tuple[str, str]], concurrency: int
) -> dict[str, dict[str, object]]:
    """The daemon's TOML: N accounts and the scheduler's concurrency."""
    sections: dict[str, dict[str, object]] = {
        "kraken": {"api_url": kraken_url},
        "scheduler": {"max_concurrency": concurrency},
        "paper": {"prices": "kraken"},
    }
    for i, key_secret in enumerate(keys):
        if mode == "live":
            key, secret = key_secret
            account: dict[str, object] = {"mode": "live", "api_key": key, "api_secret": secret}
        else:
            account = {"mode": "paper", "balances": PAPER_BALANCES}
        sections[f"accounts.{account_name(i)}"] = account
    return sections


def bound_per_run(mode: str, latency: float) -> float:
    """The round trips a run cannot avoid, in seconds."""
    return (1 + ORDERS + (1 if mode == "live" else 0)) * latency


async def drain_once(
    mode: str, count: int, concurrency: int, latency: float, profile: Path | None = None
) -> Drain:
    """A fresh database, fake and daemon; make everything due; wait until all runs finished."""
    with tempfile.TemporaryDirectory(prefix="rbd-bench-") as tmp:
        async with scratch_database() as db, FakeKraken(latency=latency) as fake:
            live = mode == "live"
            keys = [fake.add_account(LIVE_BALANCES) if live else ("", "") for _ in range(count)]
            later = datetime.now(UTC) + timedelta(days=1)
            await insert_portfolios(db.pool, count, first_due=later, weights=WEIGHTS)
            config = write_config(
                Path(tmp) / "config.toml", config_sections(mode, fake.url, keys, concurrency)
            )
            env = daemon_env(db.dsn, config, fake.url)
            async with running_daemon(Path(tmp), env) as daemon:
                result = await _measure(db, daemon, count, concurrency, profile)
            result.rate_limited = len(fake.errors("EAPI:Rate limit")) + len(
                fake.errors("EOrder:Rate limit")
            )
            if live:
                assert len(fake.placed) == ORDERS * result.succeeded, len(fake.placed)
    result.bound = math.ceil(count / concurrency) * bound_per_run(mode, latency)
    return result


DB_WORK = """SELECT xact_commit AS commits, tup_inserted AS inserted, tup_updated AS updated,
                  tup_deleted AS deleted
             FROM pg_stat_database WHERE datname = current_database()"""


async def _db_work(db: Database) -> dict[str, int]:
    """The database's commit and row-write counters (the statistics are flushed first)."""
    await db.pool.execute("SELECT pg_stat_force_next_flush()")
    await db.pool.execute("SELECT pg_stat_clear_snapshot()")
    return dict(await db.pool.fetchrow(DB_WORK))


async def _measure(
    db: Database, daemon: DaemonProcess, count: int, concurrency: int, profile: Path | None
) -> Drain:
    """Make every portfolio due at once; wait for all runs; wall time, CPU and outcomes."""
    assert daemon.proc is not None
    pid = daemon.proc.pid
    work0 = await _db_work(db)
    spy = _profiler(pid, profile, concurrency)
    cpu0, db0 = cpu_seconds(pid), cpu_snapshot(postgres_pids(db.server_dir))
    own0 = time.process_time()
    due = await db.pool.fetchval(
        "UPDATE portfolios SET next_rebalance_at = now(), schedule_anchor = now() RETURNING now()"
    )
    await db.store.notify("portfolios")  # wakes the daemon's loop, as the API does
    deadline = time.monotonic() + 60 + 2 * count
    while await _finished(db) < count:
        if time.monotonic() > deadline or daemon.proc.poll() is not None:
            raise AssertionError(f"only {await _finished(db)} of {count} runs finished in time")
        await asyncio.sleep(0.2)
    cpu1, db1 = cpu_seconds(pid), cpu_snapshot(postgres_pids(db.server_dir))
    own = time.process_time() - own0
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
        await asyncio.to_thread(spy.wait, 60)
    work1 = await _db_work(db)
    row = await db.pool.fetchrow(
        """SELECT extract(epoch FROM max(r.finished_at) - $1) AS wall,
                  extract(epoch FROM min(r.started_at) - $1) AS first_start,
                  1000 * extract(epoch FROM avg(r.finished_at - r.started_at)) AS run_ms,
                  count(*) FILTER (WHERE h.success) AS succeeded
             FROM rebalance_runs r JOIN rebalance_history h ON h.id = r.history_id""",
        due,
    )
    return Drain(
        concurrency, float(row["wall"]), 0.0, row["succeeded"], 0, cpu1 - cpu0, cpu_used(db0, db1),
        float(row["first_start"]), own, {k: work1[k] - work0[k] for k in work1},
        float(row["run_ms"]),
    )  # fmt: skip


def _profiler(pid: int, profile: Path | None, concurrency: int) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the daemon into PROFILE/daemon-cN.txt (collapsed stacks), if asked;
    BENCH_NATIVE=1 adds native frames (uvloop, asyncpg's protocol, system calls)."""
    if profile is None:
        return None
    profile.mkdir(parents=True, exist_ok=True)
    out = profile / f"daemon-c{concurrency}.txt"
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    command = [spy, "record", "-p", str(pid), "-f", "raw", "-o", str(out), "-r", "250"]
    if os.environ.get("BENCH_NATIVE"):
        command.append("--native")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _finished(db: Database) -> int:
    value = await db.pool.fetchval(
        "SELECT count(*) FROM rebalance_runs WHERE finished_at IS NOT NULL"
    )
    return int(value)


def report(drains: list[Drain], count: int) -> None:
    """One line per run, then the medians and the speed-up of 8 over 1."""
    for d in drains:
        print(
            f"  concurrency {d.concurrency}: wall {d.wall:7.2f} s, bound {d.bound:6.2f} s "
            f"-> {d.wall / d.bound:.2f}x; {count / d.wall:6.1f} runs/s; {d.succeeded}/{count} "
            f"succeeded; rate-limit errors {d.rate_limited}; daemon CPU {d.daemon_cpu:.1f} s "
            f"({1000 * d.daemon_cpu / count:.1f} ms/run), PostgreSQL CPU {d.db_cpu:.1f} s, "
            f"fake Kraken (this process) CPU {d.fake_cpu:.1f} s, of {CORES * d.wall:.1f} CPU-s "
            f"the {CORES} cores had; "
            f"first run started {1000 * d.first_start:.0f} ms after due"
        )
        if d.db_work:
            per_run = ", ".join(f"{k} {v / count:.1f}" for k, v in d.db_work.items())
            print(f"    PostgreSQL per run: {per_run}")
        busy = d.run_ms * count / 1000 / d.concurrency / d.wall
        print(
            f"    a run lasts {d.run_ms:.1f} ms on average (claim to history); the slots were "
            f"busy {100 * busy:.0f} % of the wall"
        )
    by_c: dict[int, list[Drain]] = {}
    for d in drains:
        by_c.setdefault(d.concurrency, []).append(d)
    walls = {c: median(d.wall for d in ds) for c, ds in by_c.items()}
    for c, ds in sorted(by_c.items()):
        ratio = walls[c] / ds[0].bound
        print(f"median concurrency {c}: wall {walls[c]:.2f} s = {ratio:.2f}x the bound")
    if 1 in walls and len(walls) > 1:
        for c in sorted(walls):
            if c != 1:
                print(f"speed-up of concurrency {c} over 1: {walls[1] / walls[c]:.2f}x")
    limited = sum(d.rate_limited for d in drains)
    print(f"rate-limit errors in all drains: {limited} ({'OK' if limited == 0 else 'FAIL'})")


async def bench(args: argparse.Namespace) -> None:
    latency = args.latency / 1000
    drains = []
    for _ in range(args.repeats):
        for concurrency in args.concurrency:
            drain = await drain_once(args.mode, args.portfolios, concurrency, latency, args.profile)
            drains.append(drain)
            print(f"  ... concurrency {concurrency}: {drain.wall:.2f} s", flush=True)
    report(drains, args.portfolios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portfolios", type=int, default=200)
    parser.add_argument(
        "--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 8]
    )
    parser.add_argument("--latency", type=float, default=20.0, help="added ms per request")
    parser.add_argument("--mode", choices=("live", "paper"), default="live")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--profile", type=Path, help="write py-spy collapsed stacks of the daemon here"
    )
    args = parser.parse_args()
    header(f"bench_drain: {args.portfolios} due {args.mode} portfolios, {args.latency:.0f} ms")
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
