"""Round trips and wall time of a typical rebalance's exchange calls, against the fake Kraken.

    .venv/bin/python bench/bench_exchange.py [--latency MS] [--orders N] [--repeat N]
                                             [--accounts N]

A run does what the executor does: pair rules, then balances || tickers || fee, then N market
orders one after another (sells first), each AddOrder + QueryOrders (AddOrder's reply carries no
fill). Four runs, in this order:

- first: a new client, nothing cached (an account's first run after the daemon started);
- next: the same client again, caches fresh;
- stale: the same client an hour later (its clock moved 3 600 s): metadata (TTL 300 s) and fee
  (TTL 3 600 s) are past their TTL, as at every run of an hourly or slower schedule;
- warmed: a new client whose warm() ran before the run (what the scheduler's refresh-ahead does).

Bound = the round trips that cannot be avoided: balances || tickers 1, then 2 per order; plus
Assets || AssetPairs 1 when they were never fetched (the first run). Between runs the bench waits
for the client's background refreshes (not timed) and lists the requests they made.

With --accounts N (no latency) it builds N live accounts as build_exchanges does (one shared
session and market where the code has them) and makes each account's first reads (pair rules,
balances): wall time, AssetPairs requests, TCP connections at the fake, and the Python memory
(tracemalloc) the clients hold afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import header
from rebalancerd.exchange.kraken.client import KrakenClient
from rebalancerd.exchange.protocol import OrderRequest
from tests.fake_kraken import FakeKraken, Recorded

BASES = ["BTC", "ETH", "SOL", "ADA"]
ORDERS = [
    ("BTC", "sell", "0.01"),
    ("ETH", "sell", "0.2"),
    ("SOL", "buy", "1"),
    ("ADA", "buy", "20"),
]
BALANCES = {"ZEUR": "100000", "XXBT": "1", "XETH": "10"}
HOUR = 3600.0
# Pro on both sides: five runs on one key in a few seconds stay under its REST counter, so no
# run waits for the rate limiter (not what this bench measures).
TIER = "pro"


class ShiftedClock:
    """time.monotonic() plus an offset the bench moves forward ("an hour later")."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


async def one_run(client: KrakenClient, orders: int) -> None:
    """The exchange calls of one rebalance."""
    rules = await client.pair_rules(BASES, "EUR")
    pairs = [rules[b].pair for b in BASES]
    await asyncio.gather(client.balances(), client.tickers(pairs), client.fee_rate(pairs[0]))
    for base, side, volume in (ORDERS * (orders // len(ORDERS) + 1))[:orders]:
        request = OrderRequest(rules[base].pair, side, Decimal(volume), str(uuid.uuid4()))  # type: ignore[arg-type]
        state = await client.place_order(request)
        assert state.status == "closed", state


async def settle(client: KrakenClient) -> None:
    """Wait for the client's background refreshes (none before issue 14's change)."""
    wait = getattr(client, "wait_refreshes", None)
    if wait is not None:
        await wait()


async def timed(
    name: str, client: KrakenClient, fake: FakeKraken, orders: int, latency: float, bound: int
) -> float:
    """Run once, print its figures and what the background did after it; its round trips."""
    before = len(fake.requests)
    started = time.perf_counter()
    await one_run(client, orders)
    wall = time.perf_counter() - started
    during = len(fake.requests)
    await settle(client)
    round_trips = wall / latency
    print(
        f"{name}: {during - before} requests, wall {wall * 1000:.0f} ms = {round_trips:.1f} "
        f"round trips of {latency * 1000:.0f} ms (bound {bound}: {round_trips / bound:.2f}x)"
    )
    # Background refreshes that ran alongside (public, off the key) are counted here too.
    print("    while it ran: " + endpoints(fake.requests[before:during]))
    print("    after it, in the background: " + (endpoints(fake.requests[during:]) or "none"))
    return round_trips


def endpoints(calls: list[Recorded]) -> str:
    counts = Counter(r.endpoint for r in calls)
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))


def new_client(fake: FakeKraken, clock: Callable[[], float] = time.monotonic) -> KrakenClient:
    key, secret = fake.add_account(BALANCES, tier=TIER)
    return KrakenClient(fake.url, key, secret, TIER, clock=clock)


async def one_sequence(latency: float, orders: int) -> dict[str, float]:
    """The four runs on a fresh fake; round trips by run."""
    figures: dict[str, float] = {}
    warm, bound = 1 + 2 * orders, 2 + 2 * orders
    async with FakeKraken(latency=latency) as fake:
        clock = ShiftedClock()
        client = new_client(fake, clock)
        try:
            figures["first"] = await timed("first", client, fake, orders, latency, bound)
            figures["next"] = await timed("next", client, fake, orders, latency, warm)
            clock.offset += HOUR
            figures["stale"] = await timed("stale", client, fake, orders, latency, warm)
        finally:
            await client.close()
        warmed = new_client(fake)
        try:
            if hasattr(warmed, "warm"):
                await warmed.warm()
                await settle(warmed)
                figures["warmed"] = await timed("warmed", warmed, fake, orders, latency, warm)
        finally:
            await warmed.close()
        refused = fake.errors()
    print(f"    errors at the fake: {refused}")
    return figures


async def bench(latency_ms: float, orders: int, repeat: int) -> None:
    """Repeat the sequence; print the medians."""
    latency = latency_ms / 1000
    results: list[dict[str, float]] = []
    for i in range(repeat):
        print(f"-- sequence {i + 1}")
        results.append(await one_sequence(latency, orders))
    print(f"medians of {repeat}:")
    for name in results[0]:
        values = [r[name] for r in results if name in r]
        print(f"  {name}: {statistics.median(values):.1f} round trips")


async def many_accounts(n: int) -> None:
    """N accounts' first reads on one daemon's clients; what they cost and what stays held."""
    async with FakeKraken() as fake:
        keys = [fake.add_account({"ZEUR": "100"}) for _ in range(n)]
        tracemalloc.start()
        shared: dict[str, object] = {}
        with contextlib.suppress(ImportError):  # code before the shared market: one each
            from rebalancerd.exchange.kraken.market import KrakenMarket
            from rebalancerd.exchange.kraken.transport import open_session

            session = open_session()
            shared = {"session": session, "market": KrakenMarket(fake.url, session=session)}
        clients = [KrakenClient(fake.url, k, s, **shared) for k, s in keys]  # type: ignore[arg-type]
        started = time.perf_counter()
        for client in clients:
            await client.pair_rules(BASES, "EUR")
            await client.balances()
        wall = time.perf_counter() - started
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peers = {getattr(r, "peer", None) for r in fake.calls()}
        print(
            f"{n} accounts' first reads (shared market: {bool(shared)}): {wall:.2f} s, "
            f"{len(fake.calls('AssetPairs'))} AssetPairs, "
            f"{len(peers) if None not in peers else '?'} TCP connections; "
            f"{held / 1e6:.1f} MB held = {held / n / 1e3:.1f} kB per account"
        )
        for client in clients:
            await client.close()
        for resource in reversed(list(shared.values())):
            await resource.close()  # type: ignore[attr-defined]


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=50.0, help="added latency per request, ms")
    parser.add_argument("--orders", type=int, default=4, help="market orders per run")
    parser.add_argument("--repeat", type=int, default=3, help="sequences of four runs")
    parser.add_argument("--accounts", type=int, default=0, help="N accounts' first reads instead")
    args = parser.parse_args()
    header("bench_exchange: a run's exchange calls, round trips against the bound")
    if args.accounts:
        asyncio.run(many_accounts(args.accounts))
    else:
        asyncio.run(bench(args.latency, args.orders, args.repeat))


if __name__ == "__main__":
    main()
