"""Kraken's downloadable OHLCVT files: `time,open,high,low,close,volume,trades`, no header.

One file per pair and interval, named like `XBTEUR_60.csv` (the interval in minutes); times
are the candles' opening UNIX seconds. Quarterly update files of the same pair and interval
are joined when they do not overlap.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from rebalancerd.backtest.pairs import PairBook
from rebalancerd.backtest.prices import PriceError, Series, when

NAME = re.compile(r"^(?P<pair>[A-Za-z0-9]+)_(?P<minutes>[1-9][0-9]*)\.csv$")
FIELDS = 7


def find_files(paths: Sequence[Path]) -> list[Path]:
    """The files named, and the `*.csv` files directly in the folders named."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv")
        elif path.is_file():
            files.append(path)
        else:
            raise PriceError(f"{path}: no such file or folder")
    if not files:
        raise PriceError(f"no .csv files in {', '.join(map(str, paths))}")
    return files


def read_series(paths: Sequence[Path], book: PairBook, symbols: Sequence[str]) -> list[Series]:
    """One Series per wanted symbol from the files; files of other pairs are ignored."""
    chosen: dict[str, list[tuple[Path, int]]] = {}
    for path in find_files(paths):
        named = NAME.match(path.name)
        if named is None:
            raise PriceError(f"{path.name}: not named like a Kraken file (PAIR_MINUTES.csv)")
        symbol = book.symbol_of(named["pair"])
        if symbol is None:
            if named["pair"].upper().endswith("EUR"):
                raise PriceError(
                    f"{path.name}: unknown pair {named['pair'].upper()} "
                    "(not in the pair rules; refresh them or check the name)"
                )
            raise PriceError(f"{path.name}: {named['pair'].upper()} is not a EUR pair")
        if symbol in symbols:
            chosen.setdefault(symbol, []).append((path, int(named["minutes"]) * 60))
    missing = [s for s in symbols if s not in chosen]
    if missing:
        raise PriceError(f"no price file for {', '.join(missing)} (e.g. {missing[0]}EUR_60.csv)")
    return [_joined(symbol, chosen[symbol]) for symbol in symbols]


def _joined(symbol: str, files: list[tuple[Path, int]]) -> Series:
    """The files of one symbol as one Series; different intervals or overlaps are refused."""
    steps = {step for _, step in files}
    if len(steps) > 1:
        names = ", ".join(p.name for p, _ in files)
        raise PriceError(f"{symbol}: files of different intervals ({names}); pass one interval")
    step = steps.pop()
    parts = sorted((_read(path, step), path) for path, _ in files)
    times: list[int] = []
    closes: list[float] = []
    for (part_times, part_closes), path in parts:
        if times and part_times[0] <= times[-1]:
            raise PriceError(
                f"{path.name} overlaps another {symbol} file from {when(part_times[0])} "
                f"to {when(min(times[-1], part_times[-1]))}"
            )
        times += part_times
        closes += part_closes
    return Series(symbol, " + ".join(p.name for _, p in parts), step, times, closes)


def _read(path: Path, step: int) -> tuple[list[int], list[float]]:
    """Candle end times and closes of one file; any bad row is an error naming its line."""
    times: list[int] = []
    closes: list[float] = []
    try:
        with path.open(newline="", encoding="ascii") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                if not row:  # a blank line (an editor's trailing newline) is no row
                    continue
                ts, close = _row(path.name, line, row, step)
                if times and ts <= times[-1]:
                    raise PriceError(
                        f"{path.name} line {line}: {when(ts - step)} is not after the row "
                        "before (rows overlap or are out of order)"
                    )
                times.append(ts)
                closes.append(close)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PriceError(f"{path.name}: not a text CSV file ({exc})") from None
    if not times:
        raise PriceError(f"{path.name}: no rows")
    return times, closes


def _row(name: str, line: int, row: Sequence[str], step: int) -> tuple[int, float]:
    """(candle end, close) of one row."""
    if len(row) != FIELDS:
        raise PriceError(
            f"{name} line {line}: expected {FIELDS} fields "
            f"(time,open,high,low,close,volume,trades), got {len(row)}"
        )
    try:
        ts = int(row[0])
        close = float(row[4])
    except ValueError:
        raise PriceError(f"{name} line {line}: time or close is not a number: {row[0]!r}, "
                         f"{row[4]!r}") from None  # fmt: skip
    if not math.isfinite(close) or close <= 0:
        raise PriceError(f"{name} line {line}: close must be a positive number, not {row[4]}")
    return ts + step, close


def describe(series: Iterable[Series]) -> str:
    """One line per series: where it came from and what it covers."""
    return "\n".join(
        f"{s.symbol}: {s.source}, {len(s.times)} candles of {s.step // 60} min, "
        f"{when(s.times[0])} .. {when(s.times[-1])}"
        for s in series
    )
