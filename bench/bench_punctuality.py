"""Punctuality: lateness (run start - scheduled slot) p50/p99 over N slots staggered over a
minute, against a running daemon. Target: p99 < 1 s.

    .venv/bin/python bench/bench_punctuality.py [--slots 200] [--seconds 60] [--repeats 1]
                                                [--latency MS]

The real `rebalancerd run` process (scheduler.max_concurrency 1, the default) has N live
accounts on the fake Kraken (in this process). N portfolios on an hourly interval get one slot
each, every `seconds / N` apart with a sub-second offset, starting 5 s after they are written.
Lateness = rebalance_runs.started_at (the claim transaction's start, database clock)
- rebalance_runs.slot. Each repetition re-schedules the same portfolios.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import (
    Database,
    account_name,
    daemon_env,
    header,
    insert_portfolios,
    live_config,
    median,
    percentile,
    running_daemon,
    scratch_database,
)
from tests.fake_kraken import FakeKraken

LEAD = 5.0  # seconds from writing the schedule to the first slot
OFFSET = 0.137  # slots fall between whole seconds, as real ones may
BALANCES = {"ZEUR": "0", "XXBT": "0.02"}  # a sell and a buy per run
WEIGHTS = {"BTC": 50, "ETH": 50}


async def schedule(db: Database, slots: int, spacing: float) -> datetime:
    """Give portfolio i the slot first + i * spacing; wake the daemon; the first slot."""
    first = await db.pool.fetchval(
        "SELECT date_trunc('second', now()) + make_interval(secs => $1::float8)", LEAD + OFFSET
    )
    await db.pool.execute(
        """UPDATE portfolios p SET next_rebalance_at = s.slot, schedule_anchor = s.slot
             FROM (SELECT id, $1::timestamptz + make_interval(secs => (row_number() OVER
                          (ORDER BY account) - 1) * $2::float8) AS slot
                     FROM portfolios) AS s
            WHERE p.id = s.id""",
        first,
        spacing,
    )
    await db.store.notify("portfolios")
    return first


async def lateness(db: Database, slots: int, since: datetime, timeout: float) -> list[float]:
    """Seconds late of each run whose slot is at or after `since`, once all have started."""
    deadline = time.monotonic() + timeout
    query = """SELECT extract(epoch FROM started_at - slot) AS late
                 FROM rebalance_runs WHERE slot >= $1 ORDER BY slot"""
    while True:
        rows = await db.pool.fetch(query, since)
        if len(rows) >= slots:
            return [float(r["late"]) for r in rows]
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(rows)} of {slots} slots ran in time")
        await asyncio.sleep(0.5)


async def bench(args: argparse.Namespace) -> None:
    spacing = args.seconds / args.slots
    results: list[list[float]] = []
    with tempfile.TemporaryDirectory(prefix="rbd-bench-") as tmp:
        async with scratch_database() as db, FakeKraken(latency=args.latency / 1000) as fake:
            keys = {account_name(i): fake.add_account(BALANCES) for i in range(args.slots)}
            later = datetime.now(UTC) + timedelta(days=1)
            await insert_portfolios(
                db.pool, args.slots, first_due=later, interval="hourly", weights=WEIGHTS
            )
            config = live_config(Path(tmp) / "config.toml", fake.url, keys)
            async with running_daemon(Path(tmp), daemon_env(db.dsn, config, fake.url)):
                for repeat in range(args.repeats):
                    first = await schedule(db, args.slots, spacing)
                    late = await lateness(db, args.slots, first, LEAD + args.seconds + 120)
                    results.append(late)
                    print(
                        f"   repetition {repeat + 1}: p99 {percentile(late, 99):.3f} s", flush=True
                    )
                    # Balances back off target for the next repetition.
                    for key, _ in keys.values():
                        fake.account(key).balances = {a: Decimal(v) for a, v in BALANCES.items()}
    report(results, args.slots, spacing)


def report(results: list[list[float]], slots: int, spacing: float) -> None:
    """Per repetition and median over repetitions of p50, p99 and max lateness."""
    print(f"{slots} slots {spacing * 1000:.0f} ms apart, lateness = run start - slot:")
    for i, late in enumerate(results, 1):
        print(
            f"  repetition {i}: p50 {1000 * percentile(late, 50):7.1f} ms   "
            f"p99 {1000 * percentile(late, 99):7.1f} ms   max {1000 * max(late):7.1f} ms   "
            f"min {1000 * min(late):6.1f} ms"
        )
    p50 = median(percentile(late, 50) for late in results)
    p99 = median(percentile(late, 99) for late in results)
    verdict = "met" if p99 < 1.0 else "MISSED"
    print(f"median of repetitions: p50 {1000 * p50:.1f} ms, p99 {1000 * p99:.1f} ms")
    print(f"target p99 < 1 s: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0, help="slots spread over this")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.0, help="added ms per request")
    args = parser.parse_args()
    header(f"bench_punctuality: {args.slots} slots over {args.seconds:.0f} s")
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
