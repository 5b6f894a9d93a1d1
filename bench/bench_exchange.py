"""Round trips and wall time of a typical rebalance's exchange calls, against the fake Kraken.

    .venv/bin/python bench/bench_exchange.py [--latency MS] [--orders N] [--runs N]

A run does what the executor does: pair rules, then balances || tickers || fee, then N market
orders one after another (sells first). The bound counts the round trips that cannot be
avoided: metadata (Assets || AssetPairs) 1, balances || tickers 1, fee (private, so after the
balances) 1, and per order AddOrder + QueryOrders (AddOrder's reply carries no fill) 2. With
warm caches (metadata, fees) the bound drops by 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rebalancerd.exchange.kraken.client import KrakenClient
from rebalancerd.exchange.protocol import OrderRequest
from tests.fake_kraken import FakeKraken

BASES = ["BTC", "ETH", "SOL", "ADA"]
ORDERS = [
    ("BTC", "sell", "0.01"),
    ("ETH", "sell", "0.2"),
    ("SOL", "buy", "1"),
    ("ADA", "buy", "20"),
]


async def one_run(client: KrakenClient, orders: int) -> None:
    """The exchange calls of one rebalance."""
    rules = await client.pair_rules(BASES, "EUR")
    pairs = [rules[b].pair for b in BASES]
    await asyncio.gather(client.balances(), client.tickers(pairs), client.fee_rate(pairs[0]))
    for base, side, volume in (ORDERS * (orders // len(ORDERS) + 1))[:orders]:
        request = OrderRequest(rules[base].pair, side, Decimal(volume), str(uuid.uuid4()))  # type: ignore[arg-type]
        state = await client.place_order(request)
        assert state.status == "closed", state


async def bench(latency_ms: float, orders: int, runs: int) -> None:
    """Start the fake with added latency and time `runs` runs on one client."""
    latency = latency_ms / 1000
    async with FakeKraken(
        latency=latency, balances={"ZEUR": "100000", "XXBT": "1", "XETH": "10"}
    ) as fake:
        client = KrakenClient(fake.url, fake.api_key, fake.api_secret)
        try:
            for run in range(1, runs + 1):
                before = len(fake.requests)
                started = time.perf_counter()
                await one_run(client, orders)
                wall = time.perf_counter() - started
                report(run, fake, before, wall, latency, orders)
        finally:
            await client.close()
        placed = len(fake.placed)
        refused = fake.errors()
    print(f"orders placed: {placed} (expected {orders * runs}); errors at the fake: {refused}")


def report(
    run: int, fake: FakeKraken, before: int, wall: float, latency: float, orders: int
) -> None:
    """Print one run's figures."""
    calls = fake.requests[before:]
    by_endpoint = Counter(r.endpoint for r in calls)
    bound = (3 if run == 1 else 1) + 2 * orders
    round_trips = wall / latency if latency else float("nan")
    print(
        f"run {run} ({'cold' if run == 1 else 'warm'} caches): {len(calls)} requests, "
        f"wall {wall * 1000:.0f} ms = {round_trips:.1f} round trips of {latency * 1000:.0f} ms "
        f"(bound {bound}: overhead {round_trips - bound:+.1f})"
    )
    print("    " + ", ".join(f"{name} {count}" for name, count in sorted(by_endpoint.items())))


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=50.0, help="added latency per request, ms")
    parser.add_argument("--orders", type=int, default=4, help="market orders per run")
    parser.add_argument("--runs", type=int, default=2, help="runs on the same client")
    args = parser.parse_args()
    asyncio.run(bench(args.latency, args.orders, args.runs))


if __name__ == "__main__":
    main()
