"""Rebalance latency vs its bound: one 4-order rebalance triggered on a running daemon, live
account on the fake Kraken with added latency per request.

    .venv/bin/python bench/bench_rebalance.py [--latency MS] [--runs N]

The real `rebalancerd run` process is triggered over HTTP (POST /api/scheduler/trigger, the
same path as Scheduler.trigger from the loop); the fake Kraken runs in this process, so its
CPU is not on the daemon's event loop. Wall time is the trigger request's.

Bound = 1 round trip (balances || ticker, concurrently) + 1 per order (AddOrder) + 1 (one
order-status look-up) = 6 round trips for 4 orders. Targets (issue 14): wall <= 1.10x the
bound warm, <= 1.15x cold. "cold" is an account's first run in the daemon (its fee not known
yet; the daemon-wide metadata was fetched by the 0 ms phase before it, as by any earlier run of
any account; past its TTL it is served while it refreshes in the background); "warm" its second.
Runs of one account are 22 s apart so Kraken's rate counter (starter: -0.33/s) is empty, as
before a scheduled run. The fixed cost (CPU, database commits) is measured the same way at
0 ms latency. The predecessor's pattern, from the same latency: 4 Ticker + 2 Balance +
4 AddOrder one after another, with a 1 s sleep between orders.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import Database, daemon_env, header, live_config, median, scratch_database
from rebalancerd.store.portfolios import PortfolioFields
from tests.daemon_proc import DaemonProcess
from tests.fake_kraken import FakeKraken

ORDERS = 4
# From these holdings (about EUR 20 000) the weights make exactly two sells (BTC, ETH), then
# two buys (SOL, ADA).
WEIGHTS = {"BTC": 10, "ETH": 10, "SOL": 40, "ADA": 40}
BALANCES = {"ZEUR": "10000", "XXBT": "0.05", "XETH": "1.25", "SOL": "10", "ADA": "1500"}
BOUND_ROUND_TRIPS = 1 + ORDERS + 1
PREDECESSOR_CALLS = 4 + 2 + ORDERS  # Ticker x4, Balance x2, AddOrder x4, all sequential
PREDECESSOR_SLEEPS = ORDERS - 1  # 1 s between orders
TARGETS = {"warm": 1.10, "cold": 1.15}  # issue 14 (was 1.3x for both)
COUNTER_EMPTY = 22.0  # seconds for a run's ~7 units to decay from the starter REST counter


@dataclass
class Sample:
    wall: float  # seconds, the trigger request
    inside: float  # seconds, the run's own `duration` (claim and HTTP excluded)
    calls: Counter[str]  # requests the fake received, by endpoint


@dataclass
class Bench:
    db: Database
    fake: FakeKraken
    session: aiohttp.ClientSession
    daemon_url: str
    keys: dict[str, str]  # account name -> API key at the fake
    portfolios: dict[str, str]  # account name -> portfolio id

    async def run(self, account: str) -> Sample:
        """Put the account off target again and rebalance it once through the daemon."""
        balances = {asset: Decimal(amount) for asset, amount in BALANCES.items()}
        self.fake.account(self.keys[account]).balances = balances
        before = len(self.fake.requests)
        started = time.perf_counter()
        url = self.daemon_url + "/api/scheduler/trigger"
        async with self.session.post(url, json={"portfolioId": self.portfolios[account]}) as resp:
            body = await resp.json()
        wall = time.perf_counter() - started
        history = body.get("history") or {}
        assert body.get("success") and history.get("ordersExecuted") == ORDERS, body
        calls = Counter(r.endpoint for r in self.fake.requests[before:])
        return Sample(wall, history["duration"] / 1000, calls)

    async def phase(self, latency: float, accounts: list[str]) -> tuple[list[Sample], list[Sample]]:
        """Each account once cold, then (after its counter emptied) once warm."""
        self.fake.latency = latency
        cold = [await self.run(a) for a in accounts]
        await asyncio.sleep(COUNTER_EMPTY)
        warm = [await self.run(a) for a in accounts]
        return cold, warm


def _fields(account: str) -> PortfolioFields:
    return PortfolioFields(
        name=f"bench {account}", user_id=None, account=account, target_weights=WEIGHTS,
        rebalance_enabled=False, rebalance_interval="daily", rebalance_threshold=Decimal(10),
        max_orders_per_rebalance=None, schedule_tz=None, drift_band_abs=None,
        drift_band_rel=None, schedule_anchor=None, next_rebalance_at=None,
    )  # fmt: skip


def report(label: str, samples: list[Sample], latency: float, floor: float) -> float:
    """Print one row; returns the ratio of the median wall time to the bound."""
    wall = median(s.wall for s in samples)
    inside = median(s.inside for s in samples)
    bound = BOUND_ROUND_TRIPS * latency
    calls = samples[0].calls
    path = (wall - floor) / latency  # round trips on the critical path, fixed cost removed
    print(
        f"{label:<6} wall {wall * 1000:6.1f} ms (run itself {inside * 1000:.0f} ms; median of "
        f"{len(samples)}) = {wall / bound:.2f}x the bound; {sum(calls.values())} requests, "
        f"~{path:.1f} sequential round trips"
    )
    print("       " + ", ".join(f"{name} {n}" for name, n in sorted(calls.items())))
    return wall / bound


async def bench(latency_ms: float, runs: int) -> None:
    latency = latency_ms / 1000
    names = [f"acct-{i:02d}" for i in range(2 * runs)]
    with tempfile.TemporaryDirectory(prefix="rbd-bench-") as tmp:
        async with scratch_database() as db, FakeKraken() as fake:
            keys = {n: fake.add_account(BALANCES) for n in names}
            portfolios = {n: (await db.store.create_portfolio(_fields(n))).id for n in names}
            config = live_config(Path(tmp) / "config.toml", fake.url, keys)
            daemon = DaemonProcess(Path(tmp), daemon_env(db.dsn, config, fake.url)).start()
            try:
                await daemon.wait_healthy()
                async with aiohttp.ClientSession() as session:
                    api_keys = {name: key for name, (key, _) in keys.items()}
                    b = Bench(db, fake, session, daemon.url, api_keys, portfolios)
                    floor_cold, floor_warm = await b.phase(0.0, names[:runs])
                    cold, warm = await b.phase(latency, names[runs:])
            finally:
                daemon.terminate()
                daemon.stop()
            limited = fake.errors("EAPI:Rate limit")
    assert not limited, f"runs hit the rate limit: {limited}"
    summarise(latency, floor_cold, floor_warm, cold, warm)


def summarise(
    latency: float,
    floor_cold: list[Sample],
    floor_warm: list[Sample],
    cold: list[Sample],
    warm: list[Sample],
) -> None:
    floors = {
        "cold": median(s.wall for s in floor_cold),
        "warm": median(s.wall for s in floor_warm),
    }
    print(
        f"fixed cost at 0 ms latency (daemon CPU, database commits, HTTP on localhost): "
        f"cold {floors['cold'] * 1000:.1f} ms, warm {floors['warm'] * 1000:.1f} ms"
    )
    bound = BOUND_ROUND_TRIPS * latency
    print(
        f"bound: {BOUND_ROUND_TRIPS} round trips x {latency * 1000:.0f} ms = {bound * 1e3:.0f} ms"
    )
    ratios = {
        "cold": report("cold", cold, latency, floors["cold"]),
        "warm": report("warm", warm, latency, floors["warm"]),
    }
    predecessor = PREDECESSOR_CALLS * latency + PREDECESSOR_SLEEPS * 1.0
    print(
        f"predecessor: {PREDECESSOR_CALLS} sequential calls + {PREDECESSOR_SLEEPS} x 1 s sleep "
        f"= {predecessor * 1000:.0f} ms ({predecessor / bound:.1f}x the bound); rebalancerd is "
        f"{predecessor / median(s.wall for s in cold):.1f}x faster cold, "
        f"{predecessor / median(s.wall for s in warm):.1f}x warm"
    )
    for label, ratio in ratios.items():
        target = TARGETS[label]
        verdict = "met" if ratio <= target else "MISSED"
        print(f"target <= {target}x (issue 14), {label}: {verdict} ({ratio:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=50.0, help="added ms per request")
    parser.add_argument("--runs", type=int, default=5, help="cold and warm runs per latency")
    args = parser.parse_args()
    if args.latency <= 0:
        parser.error("--latency must be above 0 ms (the fixed cost at 0 ms is measured anyway)")
    header("bench_rebalance: one 4-order rebalance vs its round-trip bound")
    asyncio.run(bench(args.latency, args.runs))


if __name__ == "__main__":
    main()
