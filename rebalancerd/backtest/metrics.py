"""What a replay achieved: returns, risk, costs and drift of one strategy's trace."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from rebalancerd.backtest.engine import Trace

YEAR = 365.25 * 86400


@dataclass(frozen=True)
class Metrics:
    """Per strategy. Money in Decimal EUR; ratios as fractions; drift in percentage points."""

    strategy: str
    final_value: Decimal
    total_return: float
    cagr: float
    volatility: float  # annualised standard deviation of step returns
    max_drawdown: float  # worst fall from a peak, as a negative fraction
    sharpe: float  # annualised mean / standard deviation of step returns, risk-free 0
    turnover: float  # traded value (both sides, after the first allocation) / mean value / year
    traded_value: Decimal
    fees_paid: Decimal  # every fee, the first allocation's included
    rebalances: int
    orders: int  # after the first allocation
    mean_drift: float
    max_drift: float


def measure(trace: Trace, start_value: Decimal, times: Sequence[int], step: int) -> Metrics:
    """The metrics of one trace; returns count from the cash put in, before any fee."""
    equity = trace.equity
    years = max(times[-1] - times[0], step) / YEAR
    growth = float(trace.final_value / start_value) if start_value else 0.0
    returns = step_returns([float(start_value), *equity])
    rebalance_fills = trace.after_start()
    traded = sum((f.order.value for f in rebalance_fills), Decimal(0))
    mean_value = statistics.fmean(equity)
    return Metrics(
        strategy=trace.strategy.label,
        final_value=trace.final_value,
        total_return=growth - 1,
        cagr=growth ** (1 / years) - 1 if growth > 0 else -1.0,
        volatility=_annual_sd(returns, step),
        max_drawdown=min(drawdowns(equity, float(start_value)), default=0.0),
        sharpe=_sharpe(returns, step),
        turnover=float(traded) / mean_value / years if mean_value > 0 else 0.0,
        traded_value=traded,
        fees_paid=trace.fees,
        rebalances=trace.rebalances,
        orders=len(rebalance_fills),
        mean_drift=statistics.fmean(trace.drift),
        max_drift=max(trace.drift),
    )


def step_returns(values: Sequence[float]) -> list[float]:
    """Simple returns from one value to the next."""
    return [b / a - 1 if a else 0.0 for a, b in itertools.pairwise(values)]


def drawdowns(values: Sequence[float], start: float) -> list[float]:
    """Each value's fall from the highest value so far (start included), as a fraction <= 0."""
    peak = start
    out: list[float] = []
    for v in values:
        peak = max(peak, v)
        out.append(v / peak - 1 if peak > 0 else 0.0)
    return out


def _annual_sd(returns: Sequence[float], step: int) -> float:
    if len(returns) < 2:
        return 0.0
    return statistics.stdev(returns) * math.sqrt(YEAR / step)


def _sharpe(returns: Sequence[float], step: int) -> float:
    if len(returns) < 2:
        return 0.0
    sd = statistics.stdev(returns)
    return statistics.fmean(returns) / sd * math.sqrt(YEAR / step) if sd > 0 else 0.0
