"""Soak: two daemons, N portfolios on a 1-minute cron, random faults at the fake Kraken, one
daemon killed (-9) and restarted every few minutes; then the invariants. Not part of CI.

    .venv/bin/python bench/soak/run.py [--minutes 30] [--portfolios 100] [--seed 1]
    .venv/bin/python bench/soak/run.py --minutes 3      # smoke

Faults (errors, HTTP 502/504/520, hangs, dropped connections, AddOrder replies lost after the
order was placed) arrive every --fault-every seconds on average; prices random-walk so every
run has something to trade. At the end: faults stop, the cron goes on for a settle period
(> the lease), "no portfolio stuck" is checked, both daemons get SIGTERM, and then: no client
order id placed twice, exchange orders match the intents, every run recorded and finished, no
order of unknown outcome, memory flat. Exit status 1 if any invariant fails.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.soak import chaos, checks
from bench.support import (
    Database,
    account_name,
    daemon_env,
    header,
    insert_portfolios,
    live_config,
    scratch_database,
)
from tests.fake_kraken import FakeKraken

BALANCES = {"ZEUR": "1000", "XXBT": "0.01", "XETH": "0.3", "SOL": "5", "ADA": "2000"}
WEIGHTS = {"BTC": 30, "ETH": 30, "SOL": 20, "ADA": 20}
LEASE = 10  # seconds: short, so a killed daemon's runs are taken over soon
KRAKEN_TIMEOUT = 3  # seconds: a hung request fails fast


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--portfolios", type=int, default=100)
    parser.add_argument("--latency", type=float, default=10.0, help="ms added per request")
    parser.add_argument("--fault-every", type=float, default=2.0, help="mean seconds between")
    parser.add_argument("--kill-every", type=float, help="seconds (default: minutes*60/4, 45-180)")
    parser.add_argument("--concurrency", type=int, default=4, help="scheduler.max_concurrency")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.kill_every is None:
        args.kill_every = min(180.0, max(45.0, args.minutes * 60 / 4))
    return args


async def seed_portfolios(db: Database, count: int) -> None:
    """N portfolios on a 1-minute cron, first due at the next minute."""
    first = (datetime.now(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    await insert_portfolios(
        db.pool, count, first_due=first, interval="* * * * *", weights=WEIGHTS, threshold="5"
    )
    await db.store.notify("portfolios")  # as the API does: sleeping daemons re-plan


async def progress(
    db: Database, fake: FakeKraken, daemons: chaos.Daemons, faults: Counter[str]
) -> str:
    """One progress line."""
    row = await db.pool.fetchrow(
        """SELECT count(*) FILTER (WHERE finished_at IS NOT NULL) AS done,
                  count(*) FILTER (WHERE finished_at IS NULL) AS open,
                  count(*) FILTER (WHERE status = 'succeeded') AS ok
             FROM rebalance_runs"""
    )
    return (
        f"runs finished {row['done']} ({row['ok']} succeeded), open {row['open']}; "
        f"orders placed {len(fake.placed)}; faults {sum(faults.values())}; "
        f"kills {daemons.kills}"
    )


async def soak(args: argparse.Namespace, db: Database, fake: FakeKraken, tmp: Path) -> bool:
    rng = random.Random(args.seed)
    keys = {account_name(i): fake.add_account(BALANCES) for i in range(args.portfolios)}
    config = live_config(
        tmp / "config.toml",
        fake.url,
        keys,
        scheduler={"lease_seconds": LEASE, "max_concurrency": args.concurrency},
        kraken={"timeout": KRAKEN_TIMEOUT},
    )
    env = daemon_env(db.dsn, config, fake.url)
    daemons = chaos.Daemons(tmp, env)
    await daemons.start()
    await seed_portfolios(db, args.portfolios)
    faults: Counter[str] = Counter()
    stop_chaos, stop_all = asyncio.Event(), asyncio.Event()
    chaos_tasks = [
        asyncio.create_task(chaos.inject_faults(fake, rng, args.fault_every, stop_chaos, faults)),
        asyncio.create_task(chaos.kill_and_restart(daemons, rng, args.kill_every, stop_chaos)),
    ]
    background = [
        asyncio.create_task(chaos.move_prices(fake, rng, 10.0, stop_all)),
        asyncio.create_task(chaos.sample_memory(daemons, 5.0, stop_all)),
    ]
    try:
        steady_exit = await _run_for(args.minutes * 60, db, fake, daemons, faults)
        stop_chaos.set()
        await asyncio.gather(*chaos_tasks)
        fake.clear_faults()
        settle = 3 * LEASE + 30
        print(f"faults stopped; settling {settle} s with the cron running", flush=True)
        await asyncio.sleep(settle)
        stuck = await checks.none_stuck(db.pool, recent_seconds=120)
    finally:
        stop_all.set()
        stop_chaos.set()
        await asyncio.gather(*chaos_tasks, *background, return_exceptions=True)
        codes = await daemons.terminate_all()
    print(f"daemons stopped with SIGTERM: exit codes {codes}")
    print("faults injected: " + ", ".join(f"{k} {n}" for k, n in faults.most_common()))
    print(await checks.run_durations(db.pool))
    results = [
        checks.Check("steady daemon never died", steady_exit is None, f"exit {steady_exit}"),
        checks.Check("graceful stop (exit 0)", all(c == 0 for c in codes.values()), str(codes)),
        stuck,
        checks.no_order_twice(fake),
        await checks.orders_match_intents(db.pool, fake),
        await checks.runs_finished(db.pool),
        await checks.intents_settled(db.pool),
        *checks.memory_flat(daemons.samples, warmup=60.0),
    ]
    return report(results)


async def _run_for(
    seconds: float, db: Database, fake: FakeKraken, daemons: chaos.Daemons, faults: Counter[str]
) -> int | None:
    """Print progress every 30 s until the time is up; the steady daemon's exit code if it died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(min(30.0, max(deadline - time.monotonic(), 0)))
        elapsed = seconds - (deadline - time.monotonic())
        print(f"[{elapsed:5.0f} s] {await progress(db, fake, daemons, faults)}", flush=True)
        if (code := daemons.steady_died()) is not None:
            return code
    return None


def report(results: list[checks.Check]) -> bool:
    print("\ninvariants:")
    for check in results:
        print(f"  {'PASS' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    ok = all(check.ok for check in results)
    print(f"\nsoak {'PASSED' if ok else 'FAILED'}")
    return ok


async def main_async(args: argparse.Namespace) -> bool:
    with tempfile.TemporaryDirectory(prefix="rbd-soak-") as tmp:
        async with scratch_database() as db, FakeKraken(latency=args.latency / 1000) as fake:
            ok = await soak(args, db, fake, Path(tmp))
            if not ok:
                logs = sorted(Path(tmp).glob("daemon-*.log"))
                print(f"daemon logs (copied to /tmp/rbd-soak-logs): {[p.name for p in logs]}")
                _keep_logs(logs)
    return ok


def _keep_logs(logs: list[Path]) -> None:
    target = Path(tempfile.gettempdir()) / "rbd-soak-logs"
    target.mkdir(exist_ok=True)
    for log in logs:
        (target / log.name).write_bytes(log.read_bytes())


def main() -> None:
    args = parse_args()
    header(
        f"soak: {args.minutes:g} min, {args.portfolios} portfolios on a 1-minute cron, "
        f"2 daemons, a fault every {args.fault_every:g} s, a kill every {args.kill_every:.0f} s"
    )
    sys.exit(0 if asyncio.run(main_async(args)) else 1)


if __name__ == "__main__":
    main()
