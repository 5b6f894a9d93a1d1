"""Metrics and chart helpers of the backtest, on hand-worked numbers."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from rebalancerd.backtest.engine import Fill, Trace
from rebalancerd.backtest.metrics import YEAR, drawdowns, measure, step_returns
from rebalancerd.backtest.strategies import parse_strategy
from rebalancerd.backtest.svg import POINTS, nice_ticks, thin
from rebalancerd.planning.plan import PlannedOrder

DAY = 86400


@pytest.mark.parametrize(
    ("values", "start", "expected"),
    [
        ([100.0, 120.0, 90.0, 130.0], 100.0, [0.0, 0.0, -0.25, 0.0]),
        ([90.0, 80.0], 100.0, [-0.1, -0.2]),  # the money put in is the first peak
        ([100.0, 100.0], 100.0, [0.0, 0.0]),
    ],
)
def test_drawdowns(values: list[float], start: float, expected: list[float]) -> None:
    assert drawdowns(values, start) == pytest.approx(expected)


def test_step_returns() -> None:
    assert step_returns([100.0, 110.0, 99.0]) == pytest.approx([0.1, -0.1])


def _order(side: str, value: str, fee: str) -> PlannedOrder:
    return PlannedOrder("BTC", "XXBTZEUR", side, Decimal(1), Decimal(value), Decimal(value),  # type: ignore[arg-type]
                        Decimal(fee), Decimal(value))  # fmt: skip


def test_measure_on_a_worked_example() -> None:
    times = [0, DAY, 2 * DAY, 3 * DAY]
    trace = Trace(parse_strategy("band:5"), start=0)
    trace.equity = [990.0, 1100.0, 880.0, 1210.0]
    trace.drift = [0.0, 4.0, 6.0, 2.0]
    trace.fills = [
        Fill(0, _order("buy", "990", "1")),  # the first allocation: its fee counts, not its value
        Fill(2 * DAY, _order("sell", "100", "0.4")),
        Fill(2 * DAY, _order("buy", "99", "0.2")),
    ]
    trace.rebalances = 1
    trace.final_value = Decimal(1210)
    m = measure(trace, Decimal(1000), times, DAY)
    years = 3 * DAY / YEAR
    assert m.total_return == pytest.approx(0.21)
    assert m.cagr == pytest.approx(1.21 ** (1 / years) - 1)
    assert m.max_drawdown == pytest.approx(880 / 1100 - 1)
    assert m.fees_paid == Decimal("1.6") and m.traded_value == Decimal(199)
    assert (m.rebalances, m.orders) == (1, 2)
    assert m.turnover == pytest.approx(199 / (4180 / 4) / years)
    assert (m.mean_drift, m.max_drift) == (3.0, 6.0)
    returns = [-0.01, 1100 / 990 - 1, 880 / 1100 - 1, 1210 / 880 - 1]
    mean = sum(returns) / 4
    sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / 3)
    assert m.volatility == pytest.approx(sd * math.sqrt(YEAR / DAY))
    assert m.sharpe == pytest.approx(mean / sd * math.sqrt(YEAR / DAY))


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (0.0, 10.0, [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]),
        (5300.0, 29000.0, [5000.0, 10000.0, 15000.0, 20000.0, 25000.0, 30000.0]),
        (-83.7, 0.0, [-100.0, -80.0, -60.0, -40.0, -20.0, 0.0]),
        (3.0, 3.0, [2.0, 2.5, 3.0, 3.5, 4.0]),
    ],
)
def test_nice_ticks_cover_the_range(low: float, high: float, ticks: list[float]) -> None:
    assert nice_ticks(low, high) == pytest.approx(ticks)


def test_thinning_keeps_every_extreme_in_time_order() -> None:
    n = 20 * POINTS + 7
    values = [math.sin(i / 50) * i for i in range(n)]
    kept = thin(list(range(n)), values)
    assert len(kept) <= 2 * POINTS
    assert [t for t, _ in kept] == sorted(t for t, _ in kept)
    assert max(v for _, v in kept) == max(values) and min(v for _, v in kept) == min(values)
