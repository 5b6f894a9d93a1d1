"""Idle cost: CPU seconds per minute and RSS of a daemon with N portfolios none of which is due.
Targets: <= 0.05 CPU-s/min, <= 100 MB; issue 14: <= 0.01 CPU-s/min with live accounts.

    .venv/bin/python bench/bench_idle.py [--portfolios 1000] [--mode paper|live]
                                         [--seconds 60] [--windows 1]

The real `rebalancerd run` process gets N accounts (paper: priced by the fake Kraken; live:
API keys on the fake Kraken) and N enabled portfolios due in 1 to 2 days. Start-up is timed
from the process's start to its READY=1 (sd_notify, to a socket of the bench's) and to /healthz
answering. After a settle period, each window reads utime + stime from /proc/<pid>/stat at its
start and end (10 ms ticks), the same from the threads' schedstat (nanoseconds), VmRSS at its
end, and the embedded PostgreSQL's CPU over the window (all its processes).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import (
    Database,
    ReadyWatch,
    account_name,
    cpu_seconds,
    cpu_seconds_fine,
    cpu_snapshot,
    cpu_used,
    daemon_env,
    header,
    insert_portfolios,
    median,
    postgres_pids,
    rss_mb,
    running_daemon,
    scratch_database,
    write_config,
)
from tests.fake_kraken import FakeKraken

SETTLE = 15.0  # seconds after start-up before measuring (first reconcile, pool warm-up)


def sections(
    mode: str, kraken_url: str, keys: list[tuple[str, str]]
) -> dict[str, dict[str, object]]:
    """N accounts; the defaults otherwise (hourly check tick)."""
    result: dict[str, dict[str, object]] = {
        "kraken": {"api_url": kraken_url},
        "paper": {"prices": "kraken"},
    }
    for i, (key, secret) in enumerate(keys):
        account: dict[str, object] = (
            {"mode": "live", "api_key": key, "api_secret": secret}
            if mode == "live"
            else {"mode": "paper"}
        )
        result[f"accounts.{account_name(i)}"] = account
    return result


async def window(db: Database, pid: int, seconds: float) -> tuple[float, float, float, float]:
    """(daemon CPU-s/min from stat, the same from schedstat, RSS MB, PostgreSQL CPU-s/min)."""
    pg0 = cpu_snapshot(postgres_pids(db.server_dir))
    cpu0, fine0 = cpu_seconds(pid), cpu_seconds_fine(pid)
    await asyncio.sleep(seconds)
    cpu1, fine1 = cpu_seconds(pid), cpu_seconds_fine(pid)
    pg1 = cpu_snapshot(postgres_pids(db.server_dir))
    per_minute = 60.0 / seconds
    return (
        (cpu1 - cpu0) * per_minute,
        (fine1 - fine0) * per_minute,
        rss_mb(pid),
        cpu_used(pg0, pg1) * per_minute,
    )


async def measure(
    args: argparse.Namespace, db: Database, env: dict[str, str], watch: ReadyWatch
) -> list[tuple[float, float, float, float]]:
    """Start the daemon, time its start-up, then the idle windows."""
    rows = []
    started = time.monotonic()
    async with running_daemon(Path(env["REBALANCERD_CONFIG"]).parent, env) as daemon:
        assert daemon.proc is not None
        healthy = time.monotonic() - started
        ready = (watch.ready_at or float("nan")) - started
        print(f"   start -> READY=1 {ready:.2f} s, -> /healthz {healthy:.2f} s", flush=True)
        await asyncio.sleep(SETTLE)
        for i in range(args.windows):
            rows.append(await window(db, daemon.proc.pid, args.seconds))
            cpu, fine, rss, pg = rows[-1]
            print(
                f"  window {i + 1} ({args.seconds:.0f} s): daemon {cpu:.4f} CPU-s/min "
                f"(schedstat {fine:.4f}), RSS {rss:.1f} MB; PostgreSQL {pg:.4f} CPU-s/min",
                flush=True,
            )
    return rows


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="rbd-bench-") as tmp:
        async with scratch_database() as db, FakeKraken() as fake:
            keys = [
                fake.add_account({"ZEUR": "1000"}) if args.mode == "live" else ("", "")
                for _ in range(args.portfolios)
            ]
            later = datetime.now(UTC) + timedelta(days=1)
            await insert_portfolios(db.pool, args.portfolios, first_due=later, spacing_seconds=86.4)
            config = write_config(Path(tmp) / "config.toml", sections(args.mode, fake.url, keys))
            env = daemon_env(db.dsn, config, fake.url)
            watch = ReadyWatch(Path(tmp) / "notify")
            env["NOTIFY_SOCKET"] = str(watch.path)
            try:
                rows = await measure(args, db, env, watch)
            finally:
                watch.close()
            requests = len(fake.requests)
    report(rows, requests)


def report(rows: list[tuple[float, float, float, float]], requests: int) -> None:
    cpu = median(r[0] for r in rows)
    fine = median(r[1] for r in rows)
    rss = max(r[2] for r in rows)
    pg = median(r[3] for r in rows)
    print(
        f"median daemon CPU {cpu:.4f} CPU-s/min, {fine:.4f} by schedstat "
        f"(target <= 0.05: {_verdict(max(cpu, fine) <= 0.05)}; issue 14's <= 0.01:"
        f" {_verdict(max(cpu, fine) <= 0.01)})"
    )
    print(f"max RSS {rss:.1f} MB (target <= 100 MB: {_verdict(rss <= 100)})")
    print(f"median PostgreSQL CPU caused meanwhile {pg:.4f} CPU-s/min")
    print(f"requests to the fake Kraken while idle: {requests}")


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portfolios", type=int, default=1000)
    parser.add_argument("--mode", choices=("paper", "live"), default="paper")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of a window")
    parser.add_argument("--windows", type=int, default=1)
    args = parser.parse_args()
    header(f"bench_idle: idle daemon, {args.portfolios} {args.mode} portfolios")
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
