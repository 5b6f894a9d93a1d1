"""The metrics for people (a table) and for scripts (JSON-ready dicts)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from rebalancerd.backtest.metrics import Metrics
from rebalancerd.decimals import fixed

HEADERS = (
    "STRATEGY", "FINAL €", "RETURN", "CAGR", "VOL", "MAX DD", "SHARPE", "TURNOVER/YR",
    "FEES €", "REBAL", "ORDERS", "DRIFT MEAN", "DRIFT MAX",
)  # fmt: skip
CENT = Decimal("0.01")


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def cells(m: Metrics) -> list[str]:
    """One table row."""
    return [
        m.strategy,
        fixed(m.final_value, 2),
        pct(m.total_return),
        pct(m.cagr),
        pct(m.volatility),
        pct(m.max_drawdown),
        f"{m.sharpe:.2f}",
        f"{m.turnover:.2f}x",
        fixed(m.fees_paid, 2),
        str(m.rebalances),
        str(m.orders),
        f"{m.mean_drift:.2f} pp",
        f"{m.max_drift:.2f} pp",
    ]


def table(metrics: Sequence[Metrics]) -> str:
    """Columns as wide as their widest cell; numbers right-aligned."""
    rows = [list(HEADERS), *(cells(m) for m in metrics)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    )


def as_json(m: Metrics) -> dict[str, Any]:
    """camelCase; money as strings to the cent, ratios as fractions, drift in pp."""
    return {
        "strategy": m.strategy,
        "finalValue": str(m.final_value.quantize(CENT)),
        "totalReturn": m.total_return,
        "cagr": m.cagr,
        "volatility": m.volatility,
        "maxDrawdown": m.max_drawdown,
        "sharpe": m.sharpe,
        "turnover": m.turnover,
        "tradedValue": str(m.traded_value.quantize(CENT)),
        "feesPaid": str(m.fees_paid.quantize(CENT)),
        "rebalances": m.rebalances,
        "orders": m.orders,
        "meanDrift": m.mean_drift,
        "maxDrift": m.max_drift,
    }
