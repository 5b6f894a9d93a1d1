"""Aligned close prices of several assets on one even time grid, and how they are built."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime


class PriceError(ValueError):
    """Prices that cannot be used, said in one line naming the file, row or asset."""


@dataclass(frozen=True)
class Series:
    """One asset's closes on its own grid: close[i] is known at times[i] (a candle's end)."""

    symbol: str
    source: str  # file name(s), for messages
    step: int  # seconds
    times: Sequence[int]
    closes: Sequence[float]


@dataclass(frozen=True)
class Prices:
    """Closes of every asset at the same instants, `step` seconds apart (candle ends, UTC)."""

    step: int
    times: Sequence[int]
    closes: Mapping[str, Sequence[float]]

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.closes)

    def __len__(self) -> int:
        return len(self.times)


def when(ts: int) -> str:
    """A UNIX time for messages: 2024-03-01 10:00 UTC."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def resample(series: Series, step: int, max_gap: int) -> dict[int, float]:
    """Closes by `step`-end time: the last close in each bucket; short gaps keep the last close.

    Kraken's files leave out candles without trades, so a missing candle means an unchanged
    price; a gap longer than `max_gap` seconds is an error, not a flat line.
    """
    if step % series.step:
        raise PriceError(
            f"{series.source}: a {series.step // 60}-minute step does not divide the "
            f"{step // 60}-minute step of the other files"
        )
    buckets: dict[int, float] = {}
    previous = None
    for ts, close in zip(series.times, series.closes, strict=True):
        if previous is not None and ts - previous > max_gap + series.step:
            raise PriceError(
                f"{series.source}: no candles from {when(previous)} to {when(ts - series.step)}"
                f" ({(ts - previous - series.step) / 3600:g} h; --max-gap is {max_gap / 3600:g} h)"
            )
        previous = ts
        buckets[-(-ts // step) * step] = close  # candle end rounded up to the bucket's end
    return buckets


def align(series: Sequence[Series], start: int | None, end: int | None, max_gap: int) -> Prices:
    """All series on the coarsest step over their common period, clipped to [start, end]."""
    if not series:
        raise PriceError("no price series")
    step = max(s.step for s in series)
    grids = {s.symbol: resample(s, step, max_gap) for s in series}
    first = max(min(g) for g in grids.values())
    last = min(max(g) for g in grids.values())
    if start is not None:
        first = max(first, -(-start // step) * step)
    if end is not None:
        last = min(last, end // step * step)
    if last <= first:
        spans = ", ".join(f"{s.symbol} {when(s.times[0])} .. {when(s.times[-1])}" for s in series)
        raise PriceError(f"the price files share no period within --from/--to ({spans})")
    times = list(range(first, last + 1, step))
    return Prices(step, times, {sym: _filled(g, times) for sym, g in grids.items()})


def _filled(grid: Mapping[int, float], times: Sequence[int]) -> list[float]:
    """The grid's closes at `times`, each missing one the last known (gaps were checked)."""
    earlier = [t for t in grid if t <= times[0]]
    last = grid[max(earlier)]
    out: list[float] = []
    for t in times:
        last = grid.get(t, last)
        out.append(last)
    return out
