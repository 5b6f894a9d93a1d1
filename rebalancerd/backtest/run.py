"""`rebalancerd backtest`: prices in, the planner replayed per strategy, a table/JSON/report out."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TextIO

import orjson

from rebalancerd.backtest import csvfiles
from rebalancerd.backtest import prices as price_data
from rebalancerd.backtest.command import FEE_TIERS
from rebalancerd.backtest.engine import CASH, BacktestError, Setup, Trace
from rebalancerd.backtest.metrics import Metrics, measure
from rebalancerd.backtest.pairs import PairBook, load_book
from rebalancerd.backtest.prices import PriceError, Prices, when
from rebalancerd.backtest.replay import replay_all
from rebalancerd.backtest.simulate import simulate
from rebalancerd.backtest.strategies import DEFAULTS, Strategy, parse_strategy
from rebalancerd.backtest.text import as_json, table
from rebalancerd.config import EXIT_CONFIG
from rebalancerd.exchange.protocol import PairRules

DEFAULT_START = datetime(2023, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Outcome:
    """A finished backtest."""

    prices: Prices
    setup: Setup
    traces: list[Trace]
    metrics: list[Metrics]
    source: str
    minimums: bool = True


def main(args: argparse.Namespace) -> int:
    """Run the backtest the flags describe; bad input is one line on stderr and exit 78."""
    try:
        outcome = backtest(args, _progress_bar(sys.stderr))
    except (PriceError, BacktestError) as exc:
        print(f"rebalancerd: backtest: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.report is not None:
        try:
            args.report.write_text(report_html(outcome), "utf-8")
        except OSError as exc:
            print(
                f"rebalancerd: backtest: cannot write {args.report}: {exc.strerror}",
                file=sys.stderr,
            )
            return EXIT_CONFIG
    if args.json:
        sys.stdout.write(orjson.dumps(summary(outcome), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print("\n".join(facts(outcome)) + "\n\n" + table(outcome.metrics))
    return 0


def backtest(args: argparse.Namespace, progress: _Bar | None = None) -> Outcome:
    """Read or simulate the prices, then replay every strategy through the planner."""
    book = load_book(args.pairs)
    symbols = sorted(s for s in args.weights if s != CASH)
    try:
        pairs = book.for_symbols(symbols, minimums=not args.no_minimums)
    except KeyError as exc:
        known = ", ".join(sorted(book.rules))
        raise PriceError(
            f"no EUR pair rules for {exc.args[0]} (known: {known}; or --no-minimums)"
        ) from None
    prices, source = _prices(args, book, symbols)
    setup = _setup(args, pairs)
    strategies: Sequence[Strategy] = args.strategy or [parse_strategy(s) for s in DEFAULTS]
    if progress is not None:
        progress.total = len(prices) * len(strategies)
    traces = replay_all(prices, setup, strategies, progress)
    if progress is not None:
        progress.done()
    metrics = [measure(t, setup.value, prices.times, prices.step) for t in traces]
    return Outcome(prices, setup, traces, metrics, source, minimums=not args.no_minimums)


def _prices(args: argparse.Namespace, book: PairBook, symbols: list[str]) -> tuple[Prices, str]:
    """The prices the flags name, and where they came from in a few words."""
    start = int(args.start.timestamp()) if args.start else None
    end = int(args.end.timestamp()) + 86400 if args.end else None  # --to is a whole day
    if args.simulate is not None:
        if end is not None:
            raise PriceError("--to does not apply to --simulate: DAYS sets the length")
        first = start if start is not None else int(DEFAULT_START.timestamp())
        prices = simulate(symbols, args.simulate, args.seed, first)
        source = f"simulated: correlated random walks, seed {args.seed}"
    else:
        series = csvfiles.read_series(args.prices, book, symbols)
        prices = price_data.align(series, start, end, args.max_gap)
        source = csvfiles.describe(series).replace("\n", "; ")
    if len(prices) < 2:
        raise PriceError("fewer than two steps of prices")
    return prices, source


def _setup(args: argparse.Namespace, pairs: dict[str, PairRules]) -> Setup:
    fee = Decimal(FEE_TIERS[args.fee_tier]) if args.fee_tier else args.fee
    return Setup(
        weights=args.weights,
        value=args.value,
        fee_rate=Decimal(FEE_TIERS["starter"]) if fee is None else fee,
        spread=args.spread_bps / Decimal(10000),
        threshold=args.threshold,
        max_orders=args.max_orders,
        pairs=pairs,
    )


def facts(o: Outcome) -> list[str]:
    """What was run, in a few lines."""
    s, p = o.setup, o.prices
    weights = ", ".join(f"{k} {v}%" for k, v in s.weights.items())
    return [
        f"Weights {weights}; start €{s.value}; {when(p.times[0])} .. {when(p.times[-1])}, "
        f"{len(p)} steps of {p.step // 60} min",
        f"Fee {s.fee_rate * 100:.2f}% (EUR), spread {(s.spread * 10000).normalize():f} bps, "
        f"threshold €{s.threshold}, max orders {s.max_orders or 'none'}, "
        f"minimums {'on' if o.minimums else 'off'}",
        f"Prices: {o.source}",
    ]


def summary(o: Outcome) -> dict[str, object]:
    """The JSON of `--json`."""
    p, s = o.prices, o.setup
    return {
        "period": {
            "from": datetime.fromtimestamp(p.times[0], UTC).isoformat(),
            "to": datetime.fromtimestamp(p.times[-1], UTC).isoformat(),
            "steps": len(p),
            "stepSeconds": p.step,
        },
        "settings": {
            "weights": {k: str(v) for k, v in s.weights.items()},
            "value": str(s.value),
            "fee": str(s.fee_rate),
            "spreadBps": format((s.spread * 10000).normalize(), "f"),
            "threshold": str(s.threshold),
            "maxOrders": s.max_orders,
            "source": o.source,
        },
        "strategies": [as_json(m) for m in o.metrics],
    }


def report_html(o: Outcome) -> str:
    """The `--report` page."""
    from rebalancerd.backtest.report import render

    title = "Backtest: " + ", ".join(f"{k} {v}%" for k, v in o.setup.weights.items())
    return render(title, facts(o), o.prices.times, float(o.setup.value), o.traces, o.metrics)


class _Bar:
    """A progress bar on a terminal's stderr, redrawn at most 10 times a second."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.total = 1
        self._drawn = 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self._drawn < 0.1:
            return
        self._drawn = now
        share = min(done / max(self.total, 1), 1.0)
        bar = "#" * int(share * 30)
        self.out.write(f"\rbacktest [{bar:<30}] {share:4.0%}")
        self.out.flush()

    def done(self) -> None:
        if self._drawn:
            self.out.write("\r" + " " * 44 + "\r")
            self.out.flush()


def _progress_bar(out: TextIO) -> _Bar | None:
    return _Bar(out) if out.isatty() else None
