"""Maker vs market execution (issue 16): cost per EUR traded and time to complete, on the fake
Kraken with a seeded random-walk price path.

    .venv/bin/python bench/bench_maker.py [--runs 20] [--seed 7] [--speed 30]

Each rebalance is one BTC/EUR order of about EUR 5 000 (buys and sells alternate) on a fresh
fake account, run by the real Scheduler/Executor/MakerEngine and Kraken client over HTTP with
the real store. Fees: taker 0.40 %, maker 0.25 % (Kraken Pro's entry tier).

Price path: the mid follows a geometric random walk (seeded) with 0.7 bps per second of
volatility (about 2 % a day, BTC-like), stepped every second, a spread of 1 bp around it.
A resting order fills at its own price when the other side of the book reaches it.

Compressed clock: the fake, the client's rate limiter and the engine share a clock running
`--speed` times real time (tests/fake_kraken.py FastTime), so 120 s of maker timeout take 4 s
at 30x. Counter decay and order ages use that clock too, with Kraken's real numbers; times
below are in that clock's seconds. Poll interval: 3 s of that clock (the engine's default).

Cost = fee + shortfall against the arrival mid (the mid when the plan was made), over the
value traded, as each history order's `costBps` says. Targets: maker <= maker fee + 2 bps on
average, >= 35 % cheaper than market, p95 completion <= makerTimeoutSeconds + 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import header, percentile, scratch_database
from rebalancerd.config import SchedulerSettings
from rebalancerd.exchange.kraken.client import KrakenClient
from rebalancerd.metrics import Metrics
from rebalancerd.runs.loop import Scheduler
from rebalancerd.runs.maker import MakerEngine
from rebalancerd.store.repository import Store
from tests.factories import make_portfolio
from tests.fake_kraken import FakeKraken, FastTime

PAIR = "XXBTZEUR"
TAKER, MAKER = Decimal("0.0040"), Decimal("0.0025")
TIMEOUT = 120
VOL_PER_SECOND = 0.00007
SPREAD = Decimal("0.0001")
TICK = Decimal("0.1")


class PricePath:
    """A seeded geometric random walk of the mid, stepped once a second of the fake's clock."""

    def __init__(self, fake: FakeKraken, clock: FastTime, seed: int, vol: float) -> None:
        self.fake, self.clock, self.vol = fake, clock, vol
        self.random = random.Random(seed)
        self.mid = 90000.0
        self.set()

    def set(self) -> None:
        mid = Decimal(str(self.mid))
        half = mid * SPREAD / 2
        bid = ((mid - half) / TICK).to_integral_value(rounding="ROUND_FLOOR") * TICK
        ask = max(
            ((mid + half) / TICK).to_integral_value(rounding="ROUND_CEILING") * TICK, bid + TICK
        )
        self.fake.set_price(PAIR, bid, ask)

    async def run(self) -> None:
        while True:
            await self.clock.sleep(1.0)
            self.mid *= math.exp(self.random.gauss(0.0, self.vol))
            self.set()


async def one_rebalance(
    store: Store, fake: FakeKraken, clock: FastTime, mode: str, side: str
) -> tuple[list[tuple[Decimal, Decimal]], float]:
    """[(cost bps, value)] of the run's orders, and its duration in the fake clock's seconds."""
    balances = {"ZEUR": "10000.0000"} if side == "buy" else {"XXBT": "0.1100000000"}
    key, secret = fake.add_account(balances)
    client = KrakenClient(
        fake.url, key, secret, "starter", query_fill=False, clock=clock, sleep=clock.sleep
    )
    scheduler = Scheduler(
        SchedulerSettings(lease_seconds=60),
        store,
        {"default": client},
        Metrics(),
        owner="bench:1:m",
    )
    scheduler.runs.executor.maker.engine = MakerEngine(store, clock=clock, poll=3.0 / clock.factor)
    weights = {"BTC": 50, "EUR": 50}
    portfolio = await make_portfolio(
        store,
        target_weights=weights,
        execution_mode=mode,
        maker_timeout_seconds=TIMEOUT,
        rebalance_enabled=False,
    )
    started = clock()
    record = await scheduler.trigger(portfolio.id)
    took = clock() - started
    await client.close()
    assert record is not None and record.success, record and record.errors
    assert not fake.resting(), "an order was left resting"
    fills = [(Decimal(o["costBps"]), Decimal(o["cost"])) for o in record.orders if o.get("costBps")]
    return fills, took


def summary(name: str, fills: list[tuple[Decimal, Decimal]], times: list[float]) -> float:
    value = sum(v for _, v in fills)
    bps = float(sum(b * v for b, v in fills) / value)
    print(
        f"{name:7} orders {len(fills):3}  traded EUR {value:>10,.0f}  cost {bps:6.2f} bps "
        f"(EUR {bps / 100:.4f} per EUR 100)  completion median {percentile(times, 50):6.1f} s  "
        f"p95 {percentile(times, 95):6.1f} s  max {max(times):6.1f} s"
    )
    return bps


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--speed", type=float, default=30.0)
    parser.add_argument("--vol", type=float, default=VOL_PER_SECOND, help="per-second volatility")
    args = parser.parse_args()
    header(
        f"bench_maker: {args.runs} rebalances per mode, seed {args.seed}, clock x{args.speed}, "
        f"volatility {args.vol * 10000:.2f} bps/s"
    )
    clock = FastTime(args.speed)
    results: dict[str, tuple[list[tuple[Decimal, Decimal]], list[float]]] = {}
    async with scratch_database() as db, FakeKraken(fee_rate=TAKER, clock=clock) as fake:
        fake.venue.maker_fee_rate = MAKER
        path = PricePath(fake, clock, args.seed, args.vol)
        walker = asyncio.create_task(path.run())
        real = time.monotonic()
        for mode in ("market", "maker"):
            fills: list[tuple[Decimal, Decimal]] = []
            times: list[float] = []
            for i in range(args.runs):
                got, took = await one_rebalance(
                    db.store, fake, clock, mode, "buy" if i % 2 == 0 else "sell"
                )
                fills += got
                times.append(took)
            results[mode] = (fills, times)
        walker.cancel()
        rate_errors = fake.errors("EOrder:Rate limit")
    market = summary("market", *results["market"])
    maker = summary("maker", *results["maker"])
    p95 = percentile(results["maker"][1], 95)
    print(
        f"maker fee {MAKER * 10000:.0f} bps; target maker <= {MAKER * 10000 + 2:.0f} bps: "
        f"{'met' if maker <= float(MAKER * 10000) + 2 else 'NOT met'}"
    )
    cheaper = (market - maker) / market * 100
    print(
        f"maker is {cheaper:.1f} % cheaper than market (target >= 35 %): "
        f"{'met' if cheaper >= 35 else 'NOT met'}"
    )
    print(
        f"maker p95 completion {p95:.1f} s (target <= {TIMEOUT + 10} s): "
        f"{'met' if p95 <= TIMEOUT + 10 else 'NOT met'}"
    )
    print(
        f"EOrder:Rate limit exceeded answers: {len(rate_errors)}; "
        f"real time {time.monotonic() - real:.0f} s"
    )


if __name__ == "__main__":
    asyncio.run(main())
