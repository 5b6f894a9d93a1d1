"""`--report FILE.html`: one self-contained page (inline CSS and SVG, no script, no network)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from rebalancerd.backtest.engine import Trace
from rebalancerd.backtest.metrics import Metrics, drawdowns
from rebalancerd.backtest.svg import PALETTE, Line, line_chart
from rebalancerd.backtest.text import HEADERS, cells

STYLE = """
body{font:16px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1120px;padding:12px;color:#222}
h1{font-size:1.35em;margin:.3em 0}h2{font-size:1.1em;margin:0 0 .3em}
p.meta{color:#555;margin:.2em 0}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:1em 0}
table{border-collapse:collapse;font-size:.85em;white-space:nowrap}
th,td{padding:4px 6px;border-bottom:1px solid #e4e4e4;text-align:right}
th:first-child,td:first-child{text-align:left;position:sticky;left:0;background:#fff}
figure{margin:1.2em 0;padding:0;min-width:0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,440px),1fr));gap:0 24px}
figure svg{display:block;width:100%;height:auto;max-height:70vh}
figcaption{font-size:.9em;color:#333}
.key{display:inline-block;margin-right:1em}
.key i{display:inline-block;width:1.4em;height:.3em;vertical-align:middle;margin-right:.35em}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'"


def render(
    title: str,
    facts: Sequence[str],
    times: Sequence[int],
    start_value: float,
    traces: Sequence[Trace],
    metrics: Sequence[Metrics],
) -> str:
    """The whole HTML page."""
    colors = {t.strategy.label: PALETTE[i % len(PALETTE)] for i, t in enumerate(traces)}
    values = [Line(t.strategy.label, colors[t.strategy.label], t.equity) for t in traces]
    falls = [
        Line(t.strategy.label, colors[t.strategy.label],
             [d * 100 for d in drawdowns(t.equity, start_value)])
        for t in traces
    ]  # fmt: skip
    curves = [
        _figure("Portfolio value (EUR)", times, values, _money),
        _figure("Drawdown from the last peak (%)", times, falls, lambda v: f"{v:.0f}%"),
    ]
    drifts = [
        *(
            _figure(f"Drift of {t.strategy.label}: largest gap to a target (pp)", times,
                    [Line(t.strategy.label, colors[t.strategy.label], t.drift)],
                    lambda v: f"{v:g}")
            for t in traces
        ),
    ]  # fmt: skip
    return "".join(
        [
            '<!doctype html><html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
            f"<h1>{escape(title)}</h1>",
            *(f'<p class="meta">{escape(f)}</p>' for f in facts),
            _table(metrics),
            '<div class="grid">',
            *curves,
            "</div>",
            '<div class="grid">',
            *drifts,
            "</div>",
            "</body></html>\n",
        ]
    )


def _table(metrics: Sequence[Metrics]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in HEADERS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells(m)) + "</tr>" for m in metrics
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _figure(
    title: str, times: Sequence[int], lines: Sequence[Line], fmt: Callable[[float], str]
) -> str:
    keys = "".join(
        f'<span class="key"><i style="background:{ln.color}"></i>{escape(ln.label)}</span>'
        for ln in lines
    )
    chart = line_chart(times, lines, title, fmt)
    return f"<figure><figcaption><h2>{escape(title)}</h2>{keys}</figcaption>{chart}</figure>"


def _money(v: float) -> str:
    if abs(v) >= 10000:
        return f"{v / 1000:.0f}k"
    if abs(v) >= 1000:
        return f"{v / 1000:.1f}k"
    return f"{v:.0f}"
