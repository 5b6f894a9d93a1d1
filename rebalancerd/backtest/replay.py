"""Replay one strategy over the prices, step by step, through the daemon's planner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from rebalancerd.backtest.engine import (
    BAND_SLACK,
    CASH,
    BacktestError,
    Book,
    Fill,
    Progress,
    Setup,
    Trace,
    decimal_close,
    quotes_at,
)
from rebalancerd.backtest.prices import Prices, when
from rebalancerd.backtest.strategies import Slots, Strategy
from rebalancerd.planning import plan as planner

PROGRESS_EVERY = 2048


def replay(
    prices: Prices, setup: Setup, strategy: Strategy, progress: Progress | None = None
) -> Trace:
    """What `strategy` would have done: an allocation at the first step, then its rule."""
    assets = setup.assets
    closes = [prices.closes[s] for s in assets]
    targets = {s: float(w) for s, w in setup.weights.items()}
    limits = _limits(strategy, targets)
    slots = Slots(strategy.rule, prices.times[0]) if strategy.rule is not None else None
    book = Book(assets, setup.value)
    trace = Trace(strategy)
    first_rules, rules = setup.rules(None), setup.rules(strategy)
    for k, ts in enumerate(prices.times):
        row = [c[k] for c in closes]
        if k == 0:  # the first allocation from cash: drift is measured once it is made
            _trade(trace, book, prices, k, setup, first_rules)
        total, gaps = _gaps(book, row, targets)
        trace.drift.append(max(gaps.values()))
        if k == 0:
            traded = False
        elif slots is not None:
            traded = slots.due(ts) and _trade(trace, book, prices, k, setup, rules)
        else:  # hold has no limits: it never trades again
            near = any(gaps[s] - limit > -BAND_SLACK for s, limit in limits.items())
            traded = near and _trade(trace, book, prices, k, setup, rules)
        trace.equity.append(book.value(row) if traded else total)
        if progress is not None and k % PROGRESS_EVERY == 0:
            progress(k)
    last = {s: decimal_close(prices.closes[s][-1]) for s in assets}
    trace.final_value = book.valued(last)
    trace.holdings = {**book.amounts, CASH: book.cash}
    return trace


def _gaps(
    book: Book, row: Sequence[float], targets: Mapping[str, float]
) -> tuple[float, dict[str, float]]:
    """Total value, and each target's |weight - target| in pp."""
    total, weights = book.weights(row)
    return total, {s: abs(weights.get(s, 0.0) - t) for s, t in targets.items()}


def _limits(strategy: Strategy, targets: Mapping[str, float]) -> dict[str, float]:
    """Drift (pp) each target may reach before the band breaks; none for other rules."""
    if strategy.band_abs is not None:
        return {s: float(strategy.band_abs) for s in targets}
    if strategy.band_rel is not None:
        return {s: t * float(strategy.band_rel) / 100 for s, t in targets.items()}
    return {}


def _trade(
    trace: Trace, book: Book, prices: Prices, k: int, setup: Setup, rules: planner.PortfolioRules
) -> bool:
    """Plan with the daemon's planner at step k and fill its orders where it priced them."""
    quotes = quotes_at(prices, k, setup.assets, setup)
    now = datetime.fromtimestamp(prices.times[k], UTC)
    plan = planner.plan(book.balances(), quotes, setup.pairs, setup.fee_rate, rules, now)
    if plan.aborted is not None:
        raise BacktestError(f"the planner refused the prices at {when(prices.times[k])}: "
                            f"{plan.aborted}")  # fmt: skip
    if not plan.orders:
        return False
    book.fill(plan.orders)
    trace.fills += [Fill(prices.times[k], o) for o in plan.orders]
    if k > 0:
        trace.rebalances += 1
    return True


def replay_all(
    prices: Prices,
    setup: Setup,
    strategies: Sequence[Strategy],
    progress: Progress | None = None,
) -> list[Trace]:
    """Every strategy over the same prices; `progress` gets steps done over all of them."""
    traces = []
    for i, strategy in enumerate(strategies):
        offset = i * len(prices)
        step = None if progress is None else (lambda k, o=offset: progress(o + k))
        traces.append(replay(prices, setup, strategy, step))
    return traces
