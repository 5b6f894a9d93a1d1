"""Checks that refuse bad input: rules, market data, single orders, and drift bands."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from rebalancerd.decimals import eur, plain
from rebalancerd.exchange.protocol import PairRules, Quote
from rebalancerd.planning.types import (
    HUNDRED,
    ONE,
    ZERO,
    PlannedOrder,
    PortfolioRules,
    sum_of,
)

WEIGHT_TOLERANCE = Decimal("0.01")


def mid(quote: Quote) -> Decimal:
    """Half-way between bid and ask."""
    return (quote.bid + quote.ask) / 2


def validate(rules: PortfolioRules, fee_rate: Decimal) -> None:
    """Refuse rules the API should already have refused: never rescale them silently."""
    for symbol, weight in rules.target_weights.items():
        if weight < 0:
            raise ValueError(f"target weight of {symbol} is negative: {weight}")
    total = sum_of(rules.target_weights.values())
    if abs(total - HUNDRED) > WEIGHT_TOLERANCE:
        raise ValueError(f"target weights sum to {total}, not 100")
    if rules.threshold < 0:
        raise ValueError(f"threshold is negative: {rules.threshold}")
    if rules.max_orders is not None and rules.max_orders < 1:
        raise ValueError(f"max_orders must be at least 1, not {rules.max_orders}")
    if not ZERO <= fee_rate < ONE:
        raise ValueError(f"fee rate must be a fraction in [0, 1), not {fee_rate}")
    for name in ("max_trade_percent", "max_trade_value"):  # a cap of 0 would trade nothing
        cap = getattr(rules, name)
        if cap is not None and cap <= 0:
            raise ValueError(f"{name} must be positive, not {cap}")


def data_problem(
    assets: Sequence[str],
    quotes: Mapping[str, Quote],
    pairs: Mapping[str, PairRules],
    rules: PortfolioRules,
    now: datetime,
    cash: str,
) -> str | None:
    """Why the market data cannot be trusted for this portfolio, if it cannot."""
    for symbol in assets:
        pair = pairs.get(symbol)
        if pair is None:
            return f"no {symbol}/{cash} pair rules"
        if pair.quote != cash:
            return f"pair {pair.pair} is quoted in {pair.quote}, not {cash}"
        problem = quote_problem(symbol, quotes.get(symbol), rules, now)
        if problem is not None:
            return problem
    return None


def quote_problem(
    symbol: str, quote: Quote | None, rules: PortfolioRules, now: datetime
) -> str | None:
    """Why one quote is unusable: missing, non-positive, crossed, stale or too wide."""
    if quote is None:
        return f"no quote for {symbol}"
    if quote.bid <= 0 or quote.ask <= 0:
        return f"quote for {symbol} is not positive (bid {quote.bid}, ask {quote.ask})"
    if quote.ask < quote.bid:
        return f"quote for {symbol} is crossed (bid {quote.bid} > ask {quote.ask})"
    age = now - quote.observed_at
    if age > rules.max_quote_age:
        return f"quote for {symbol} is stale ({age} old, limit {rules.max_quote_age})"
    spread = (quote.ask - quote.bid) / mid(quote)
    if spread > rules.max_spread:
        return f"spread of {symbol} is {spread:.2%}, limit {rules.max_spread:.2%}"
    return None


def order_problem(rules: PairRules, order: PlannedOrder) -> str | None:
    """Why the exchange would refuse this order, if it would."""
    if not rules.tradable:
        return f"market {rules.pair} is {rules.status}"
    if order.volume <= 0:  # an exchange with no minimum must still never get an empty order
        return f"volume rounds down to 0 {rules.base}"
    if order.volume < rules.ordermin:
        return f"volume {plain(order.volume)} below ordermin {plain(rules.ordermin)} {rules.base}"
    if order.value < rules.costmin:
        return f"cost {eur(order.value)} below costmin {eur(rules.costmin)}"
    return None


def out_of_band(
    current_weights: Mapping[str, Decimal],
    target_weights: Mapping[str, Decimal],
    band_abs: Decimal | None,
    band_rel: Decimal | None,
) -> bool:
    """True when some target drifts beyond either band; always True when no band is set."""
    if band_abs is None and band_rel is None:
        return True
    for symbol, target in target_weights.items():
        drift = abs(current_weights.get(symbol, ZERO) - target)
        if band_abs is not None and drift > band_abs:
            return True
        if band_rel is not None and drift > target * band_rel / HUNDRED:
            return True
    return False
