"""Several daemons on one PostgreSQL: N daemons (default 1, 2, 4) drain the same due portfolios.
Each N's rate vs one daemon's, double runs and rate-limit errors.

    .venv/bin/python bench/bench_multi.py [--portfolios 1000] [--daemons 1,2,4]
                                          [--concurrency 1] [--latency 20]

For each N: a fresh database on one embedded PostgreSQL, a fresh fake Kraken (in this process)
with one API key per portfolio, and N real `rebalancerd run` processes sharing the database,
each configured with every account and `scheduler.max_concurrency` = --concurrency. Once all
are healthy, one UPDATE + NOTIFY makes every portfolio due; wall = last run's finish - that
moment (database clock); rate = portfolios / wall. Targets (issue 14): rate(N) >= 0.8 x N x
rate(1); 0 double runs (a portfolio run more than once, or an account with more orders than
one run places); 0 rate-limit errors. A run sells BTC and buys ETH, as in bench_drain.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_drain import LIVE_BALANCES, ORDERS, WEIGHTS, config_sections
from bench.support import (
    Database,
    cpu_seconds,
    cpu_snapshot,
    cpu_used,
    daemon_env,
    header,
    insert_portfolios,
    postgres_pids,
    running_daemon,
    scratch_database,
    write_config,
)
from tests.daemon_proc import DaemonProcess
from tests.fake_kraken import FakeKraken


@dataclass
class Multi:
    daemons: int
    wall: float
    succeeded: int
    double_runs: int
    double_orders: int  # accounts with more orders than one run places
    rate_limited: int
    runs_per_daemon: list[int]
    daemon_cpu: float
    db_cpu: float


async def drain(count: int, daemons: int, concurrency: int, latency: float) -> Multi:
    """N daemons on one fresh database drain `count` portfolios made due at once."""
    with tempfile.TemporaryDirectory(prefix="rbd-multi-") as tmp:
        async with scratch_database() as db, FakeKraken(latency=latency) as fake:
            keys = [fake.add_account(LIVE_BALANCES) for _ in range(count)]
            later = datetime.now(UTC) + timedelta(days=1)
            await insert_portfolios(db.pool, count, first_due=later, weights=WEIGHTS)
            sections = config_sections("live", fake.url, keys, concurrency)
            config = write_config(Path(tmp) / "config.toml", sections)
            env = daemon_env(db.dsn, config, fake.url)
            async with contextlib.AsyncExitStack() as stack:
                procs = []
                for i in range(daemons):
                    workdir = Path(tmp) / f"d{i}"
                    workdir.mkdir()
                    procs.append(await stack.enter_async_context(running_daemon(workdir, env)))
                result = await _measure(db, procs, count)
            result.rate_limited = len(fake.errors("EAPI:Rate limit")) + len(
                fake.errors("EOrder:Rate limit")
            )
            per_account: dict[str, int] = {}
            for order in fake.placed:
                per_account[order.account] = per_account.get(order.account, 0) + 1
            result.double_orders = sum(1 for n in per_account.values() if n > ORDERS)
    return result


async def _measure(db: Database, procs: list[DaemonProcess], count: int) -> Multi:
    pids = [p.proc.pid for p in procs if p.proc is not None]
    cpu0, db0 = sum(cpu_seconds(p) for p in pids), cpu_snapshot(postgres_pids(db.server_dir))
    due = await db.pool.fetchval(
        "UPDATE portfolios SET next_rebalance_at = now(), schedule_anchor = now() RETURNING now()"
    )
    await db.store.notify("portfolios")
    deadline = time.monotonic() + 60 + 2 * count
    while await _finished(db) < count:
        if time.monotonic() > deadline or any(p.proc and p.proc.poll() is not None for p in procs):
            raise AssertionError(f"only {await _finished(db)} of {count} runs finished in time")
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # a double run would show up now, after every first one finished
    cpu1, db1 = sum(cpu_seconds(p) for p in pids), cpu_snapshot(postgres_pids(db.server_dir))
    row = await db.pool.fetchrow(
        """SELECT extract(epoch FROM max(r.finished_at) - $1) AS wall,
                  count(*) FILTER (WHERE h.success) AS succeeded
             FROM rebalance_runs r JOIN rebalance_history h ON h.id = r.history_id""",
        due,
    )
    doubles = await db.pool.fetchval(
        "SELECT count(*) FROM (SELECT portfolio_id FROM rebalance_runs GROUP BY portfolio_id"
        " HAVING count(*) > 1) AS d"
    )
    owners = await db.pool.fetch(
        "SELECT owner, count(*) AS n FROM rebalance_runs GROUP BY owner ORDER BY n DESC"
    )
    return Multi(
        len(procs), float(row["wall"]), row["succeeded"], int(doubles), 0, 0,
        [int(o["n"]) for o in owners], cpu1 - cpu0, cpu_used(db0, db1),
    )  # fmt: skip


async def _finished(db: Database) -> int:
    value = await db.pool.fetchval(
        "SELECT count(*) FROM rebalance_runs WHERE finished_at IS NOT NULL"
    )
    return int(value)


def report(results: list[Multi], count: int) -> None:
    base = next((r for r in results if r.daemons == 1), None)
    for r in results:
        rate = count / r.wall
        vs = ""
        if base is not None and r.daemons != 1:
            ratio = rate / (count / base.wall)
            verdict = "met" if ratio >= 0.8 * r.daemons else "MISSED"
            vs = f" = {ratio:.2f}x one daemon (target >= {0.8 * r.daemons:.1f}x: {verdict})"
        print(
            f"  {r.daemons} daemon(s): wall {r.wall:7.2f} s, {rate:6.1f} runs/s{vs}; "
            f"{r.succeeded}/{count} succeeded; runs per daemon {r.runs_per_daemon}; "
            f"double runs {r.double_runs}, accounts with extra orders {r.double_orders}; "
            f"rate-limit errors {r.rate_limited}; daemons' CPU {r.daemon_cpu:.1f} s, "
            f"PostgreSQL CPU {r.db_cpu:.1f} s"
        )
    bad = sum(r.double_runs + r.double_orders + r.rate_limited for r in results)
    print(f"double runs + rate-limit errors in all drains: {bad} ({'OK' if bad == 0 else 'FAIL'})")


async def bench(args: argparse.Namespace) -> None:
    results = []
    for n in args.daemons:
        result = await drain(args.portfolios, n, args.concurrency, args.latency / 1000)
        print(f"  ... {n} daemon(s): {result.wall:.2f} s", flush=True)
        results.append(result)
    report(results, args.portfolios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portfolios", type=int, default=1000)
    parser.add_argument(
        "--daemons", type=lambda s: [int(c) for c in s.split(",")], default=[1, 2, 4]
    )
    parser.add_argument("--concurrency", type=int, default=1, help="per daemon")
    parser.add_argument("--latency", type=float, default=20.0, help="added ms per request")
    args = parser.parse_args()
    header(
        f"bench_multi: {args.portfolios} due live portfolios, daemons {args.daemons}, "
        f"concurrency {args.concurrency} each, {args.latency:.0f} ms"
    )
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
