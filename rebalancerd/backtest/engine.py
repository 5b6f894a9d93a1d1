"""The replay: at each step the daemon's own planner decides, and its orders fill at once.

Money stays in the planner's Decimals: holdings, orders, fees and the final value. Floats only
measure the curves (value, drift) at every step and pre-screen bands: a step is handed to the
planner whenever a band might be breached, and the planner alone decides whether it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from rebalancerd.backtest.prices import Prices
from rebalancerd.backtest.strategies import Strategy
from rebalancerd.exchange.protocol import Balances, PairRules, Quote
from rebalancerd.planning import plan as planner

CASH = "EUR"
ZERO = Decimal(0)
# Float weights carry ~1e-13 pp of error: within this of a band edge the planner decides.
BAND_SLACK = 1e-7
DEFAULT_MAX_SPREAD = Decimal("0.02")

Progress = Callable[[int], None]


class BacktestError(ValueError):
    """The replay cannot go on (the planner refused the data); one line."""


@dataclass(frozen=True)
class Setup:
    """What every strategy of one backtest shares: targets, money, costs and pair rules."""

    weights: Mapping[str, Decimal]  # percent, summing to 100; may hold EUR for a cash share
    value: Decimal  # EUR cash at the start
    fee_rate: Decimal  # taker fee, a fraction, paid in EUR as the daemon's plans pay it
    spread: Decimal  # (ask - bid) / mid: buys fill half of it above the close, sells below
    threshold: Decimal = ZERO
    max_orders: int | None = None
    pairs: Mapping[str, PairRules] = field(default_factory=dict)

    @property
    def assets(self) -> list[str]:
        return sorted(s for s in self.weights if s != CASH)

    def rules(self, strategy: Strategy | None) -> planner.PortfolioRules:
        """The planner's rules; no band for the first allocation (strategy None)."""
        return planner.PortfolioRules(
            target_weights=dict(self.weights),
            threshold=self.threshold,
            max_orders=self.max_orders,
            band_abs=strategy.band_abs if strategy else None,
            band_rel=strategy.band_rel if strategy else None,
            max_spread=max(DEFAULT_MAX_SPREAD, self.spread * 2),
        )


@dataclass(frozen=True)
class Fill:
    """One order the planner gave, filled where it planned it, at step `time`."""

    time: int
    order: planner.PlannedOrder


@dataclass
class Trace:
    """What one strategy did: curves per step (after that step's trades) and its money."""

    strategy: Strategy
    start: int = 0  # time of the first step, whose orders are the first allocation
    equity: list[float] = field(default_factory=list)  # EUR at mid
    drift: list[float] = field(default_factory=list)  # pp, largest |weight - target|, pre-trade
    fills: list[Fill] = field(default_factory=list)
    rebalances: int = 0  # after the first allocation
    final_value: Decimal = ZERO
    holdings: dict[str, Decimal] = field(default_factory=dict)

    @property
    def fees(self) -> Decimal:
        return sum((f.order.fee for f in self.fills), ZERO)

    def after_start(self) -> list[Fill]:
        """Fills of the rebalances, without the first allocation."""
        return [f for f in self.fills if f.time != self.start]


class Book:
    """Holdings in Decimal, mirrored in floats for the per-step measures."""

    def __init__(self, assets: Sequence[str], cash: Decimal) -> None:
        self.assets = list(assets)
        self.amounts = {s: ZERO for s in assets}
        self.cash = cash
        self._floats = [0.0] * len(assets)
        self._cash = float(cash)

    def balances(self) -> Balances:
        return Balances({**self.amounts, CASH: self.cash})

    def fill(self, orders: Sequence[planner.PlannedOrder]) -> None:
        """Apply filled orders: sells bring value - fee, buys cost value + fee (fees in EUR)."""
        for o in orders:
            sign = 1 if o.side == "buy" else -1
            self.amounts[o.symbol] += sign * o.volume
            self.cash -= sign * o.value + o.fee
        self._floats = [float(self.amounts[s]) for s in self.assets]
        self._cash = float(self.cash)

    def value(self, closes: Sequence[float]) -> float:
        return self._cash + sum(a * p for a, p in zip(self._floats, closes, strict=True))

    def weights(self, closes: Sequence[float]) -> tuple[float, dict[str, float]]:
        """Total value and percent weights (cash as EUR) at these closes."""
        values = [a * p for a, p in zip(self._floats, closes, strict=True)]
        total = self._cash + sum(values)
        scale = 100.0 / total if total else 0.0
        weights = {s: v * scale for s, v in zip(self.assets, values, strict=True)}
        weights[CASH] = self._cash * scale
        return total, weights

    def valued(self, closes: Mapping[str, Decimal]) -> Decimal:
        """Exact value at these prices, as the planner values holdings (at mid)."""
        return self.cash + sum((self.amounts[s] * closes[s] for s in self.assets), ZERO)


def quotes_at(prices: Prices, k: int, assets: Sequence[str], setup: Setup) -> dict[str, Quote]:
    """Quotes of step k: the close as mid, half the spread either side, observed just now."""
    now = datetime.fromtimestamp(prices.times[k], UTC)
    out: dict[str, Quote] = {}
    for symbol in assets:
        mid = decimal_close(prices.closes[symbol][k])
        half = mid * setup.spread / 2
        pair = setup.pairs[symbol].pair
        out[symbol] = Quote(pair, mid - half, mid + half, mid, now)
    return out


def decimal_close(close: float) -> Decimal:
    """The close as the text it was read from: repr gives back the shortest exact digits."""
    return Decimal(repr(close))
