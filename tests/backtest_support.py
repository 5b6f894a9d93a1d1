"""Helpers of the backtest tests: run `rebalancerd backtest` flags in-process, write Kraken CSVs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from rebalancerd.backtest.run import Outcome, backtest
from rebalancerd.cli.main import build_parser


def run(*flags: str) -> Outcome:
    """The outcome of `rebalancerd backtest FLAGS` (parsed by the real parser)."""
    return backtest(build_parser().parse_args(["backtest", *flags]))


def write_csv(path: Path, rows: Iterable[Sequence[object]]) -> Path:
    """A file in Kraken's OHLCVT format: no header, `time,open,high,low,close,volume,trades`."""
    path.write_text("".join(",".join(str(c) for c in row) + "\n" for row in rows), "ascii")
    return path


def candles(start: int, minutes: int, closes: Sequence[float]) -> list[list[object]]:
    """Rows as Kraken writes them: open time, OHLC around the close, volume, trade count."""
    rows: list[list[object]] = []
    for i, close in enumerate(closes):
        rows.append(
            [start + i * minutes * 60, close, close * 1.01, close * 0.99, close, "12.34567890", 17]
        )
    return rows
