"""4 years of hourly candles x 5 assets x 4 strategies, from Kraken CSV files to the HTML report.

Run: `python bench/bench_backtest.py [runs]`. Writes the CSVs (simulated prices in Kraken's
OHLCVT format) to a scratch folder first; the timed part is what `rebalancerd backtest
--prices DIR --report FILE` does: read, align, replay through the planner, measure, render.
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rebalancerd.backtest.run import backtest, report_html
from rebalancerd.backtest.simulate import simulate
from rebalancerd.cli.main import build_parser

WEIGHTS = "BTC=40,ETH=25,SOL=15,ADA=10,DOT=10"
FILES = {"BTC": "XBTEUR", "ETH": "ETHEUR", "SOL": "SOLEUR", "ADA": "ADAEUR", "DOT": "DOTEUR"}
START = 1672531200  # 2023-01-01 UTC
DAYS = 4 * 365 + 1
LIMIT = 10.0  # seconds, the bound


def write_files(folder: Path) -> int:
    """Hourly Kraken-format files for the five assets; returns the candle count per file."""
    prices = simulate(list(FILES), DAYS, seed=7, start=START)
    for symbol, pair in FILES.items():
        lines = [
            f"{t - 3600},{c},{c},{c},{c},1.00000000,1\n"
            for t, c in zip(prices.times, prices.closes[symbol], strict=True)
        ]
        (folder / f"{pair}_60.csv").write_text("".join(lines), "ascii")
    return len(prices)


def once(folder: Path) -> tuple[float, int]:
    """Seconds for the whole backtest with its report page, and the orders placed."""
    args = build_parser().parse_args(["backtest", "--prices", str(folder), "--weights", WEIGHTS])
    started = time.perf_counter()
    outcome = backtest(args)
    report_html(outcome)
    total = time.perf_counter() - started
    orders = sum(len(t.fills) for t in outcome.traces)
    return total, orders


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        candles = write_files(folder)
        times = []
        for _ in range(runs):
            seconds, orders = once(folder)
            times.append(seconds)
        print(f"backtest: {candles} hourly candles x {len(FILES)} assets x 4 strategies "
              f"(default set), {orders} orders in all")  # fmt: skip
        print(f"  CSV -> report: median {statistics.median(times):.2f} s, "
              f"min {min(times):.2f} s over {runs} runs (limit {LIMIT:.0f} s)")  # fmt: skip
        profile = cProfile.Profile()
        profile.enable()
        once(folder)
        profile.disable()
        print("  where the time goes (cumulative, top 8):")
        pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(8)


if __name__ == "__main__":
    main()
