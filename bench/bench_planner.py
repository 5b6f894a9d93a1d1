"""Time plan() on a 50-asset portfolio and print the median µs per plan.

Run: `python bench/bench_planner.py [runs]` (package installed) or `python -m bench.bench_planner`.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

from rebalancerd.exchange.protocol import Balances, PairRules, Quote
from rebalancerd.planning.plan import PortfolioRules, plan

ASSETS = 50
NOW = datetime(2025, 10, 20, 10, 0, tzinfo=UTC)
FEE_RATE = Decimal("0.0026")


def market(rng: random.Random) -> tuple[Balances, dict[str, Quote], dict[str, PairRules]]:
    """A seeded account of ASSETS coins off target, with EUR pairs and fresh quotes."""
    symbols = [f"C{i:02d}" for i in range(ASSETS)]
    quotes: dict[str, Quote] = {}
    pairs: dict[str, PairRules] = {}
    tradable: dict[str, Decimal] = {"EUR": Decimal(rng.randint(0, 5000))}
    for symbol in symbols:
        bid = Decimal(rng.randint(1, 10**6)).scaleb(-rng.randint(0, 6))
        ask = bid + bid / 1000
        quotes[symbol] = Quote(f"{symbol}EUR", bid, ask, bid, NOW)
        lot = rng.randint(0, 8)
        ordermin = Decimal(1).scaleb(-lot)
        pairs[symbol] = PairRules(
            f"{symbol}EUR", f"{symbol}EUR", symbol, "EUR", ordermin, Decimal("0.45"), lot, 2,
            Decimal("0.01"), "online",
        )  # fmt: skip
        tradable[symbol] = (Decimal(rng.randint(0, 4000)) / bid).quantize(Decimal("1E-8"))
    return Balances(tradable, {"C00.S": Decimal(5)}), quotes, pairs


def median_us(rules: PortfolioRules, runs: int) -> tuple[float, int]:
    """Median wall time of one plan() in µs, and the number of orders it plans."""
    balances, quotes, pairs = market(random.Random(7))
    result = plan(balances, quotes, pairs, FEE_RATE, rules, NOW)
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        plan(balances, quotes, pairs, FEE_RATE, rules, NOW)
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000, len(result.orders)


def main() -> None:
    """Print the figures."""
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    weights = {f"C{i:02d}": Decimal(2) for i in range(ASSETS)}
    cases = {
        "no limits": PortfolioRules(weights),
        "threshold €10, max 10 orders": PortfolioRules(weights, Decimal(10), 10),
    }
    for name, rules in cases.items():
        micros, orders = median_us(rules, runs)
        detail = f"({orders} orders, median of {runs} runs)"
        print(f"plan() {ASSETS} assets, {name}: {micros:.0f} µs/plan {detail}")


if __name__ == "__main__":
    main()
