"""Small inline SVG line charts: no script, no fonts, no network; light enough for a phone."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

WIDTH, HEIGHT = 600, 300
LEFT, RIGHT, TOP, BOTTOM = 66, 12, 12, 34
POINTS = 480  # buckets per line: about one per pixel of a phone held upright
# Okabe-Ito: told apart with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")


@dataclass(frozen=True)
class Line:
    """One series of a chart."""

    label: str
    color: str
    values: Sequence[float]


def line_chart(
    times: Sequence[int], lines: Sequence[Line], label: str, fmt: Callable[[float], str]
) -> str:
    """An SVG of `lines` over `times` (UNIX seconds), y ticks written with `fmt`."""
    low = min(min(line.values) for line in lines)
    high = max(max(line.values) for line in lines)
    ticks = nice_ticks(low, high)
    low, high = min(low, ticks[0]), max(high, ticks[-1])
    x = _scale(times[0], times[-1], LEFT, WIDTH - RIGHT)
    y = _scale(low, high, HEIGHT - BOTTOM, TOP)
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        *(_y_tick(y(t), fmt(t)) for t in ticks),
        *(_x_tick(x(t), t, times[-1] - times[0]) for t in _time_ticks(times[0], times[-1])),
    ]
    for line in lines:
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in thin(times, line.values))
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{line.color}" stroke-width="1.6" '
            f'stroke-linejoin="round"><title>{escape(line.label)}</title></polyline>'
        )
    parts.append("</svg>")
    return "".join(parts)


def thin(times: Sequence[int], values: Sequence[float]) -> list[tuple[int, float]]:
    """At most ~2 x POINTS points: each bucket's lowest and highest, in time order."""
    n = len(values)
    if n <= 2 * POINTS:
        return list(zip(times, values, strict=True))
    out: list[tuple[int, float]] = []
    size = n / POINTS
    for b in range(POINTS):
        lo, hi = int(b * size), max(int((b + 1) * size), int(b * size) + 1)
        chunk = range(lo, min(hi, n))
        i_min = min(chunk, key=values.__getitem__)
        i_max = max(chunk, key=values.__getitem__)
        out += [(times[i], values[i]) for i in sorted({i_min, i_max})]
    return out


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high], about `count` of them."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high - low < 1e-12:
        low, high = low - 1, high + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    return [first + i * step for i in range(math.ceil((high - first) / step) + 1)]


def _scale(a: float, b: float, to_a: float, to_b: float) -> Callable[[float], float]:
    span = (b - a) or 1.0
    return lambda v: to_a + (v - a) * (to_b - to_a) / span


def _y_tick(py: float, text: str) -> str:
    return (
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}" stroke="#ddd"/>'
        f'<text x="{LEFT - 6}" y="{py + 5:.1f}" text-anchor="end" font-size="18" '
        f'fill="#444">{escape(text)}</text>'
    )


def _x_tick(px: float, ts: int, span: int) -> str:
    fmt = "%Y-%m" if span > 120 * 86400 else "%m-%d"
    text = datetime.fromtimestamp(ts, UTC).strftime(fmt)
    return (
        f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#eee"/>'
        f'<text x="{px:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="18" '
        f'fill="#444">{text}</text>'
    )


def _time_ticks(start: int, end: int, count: int = 4) -> list[int]:
    """`count` evenly spaced instants inside [start, end], away from the edges."""
    span = end - start
    return [start + span * (2 * i + 1) // (2 * count) for i in range(count)]
