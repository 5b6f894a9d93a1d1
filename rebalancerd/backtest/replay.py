"""Replay one strategy over the prices, step by step, through the daemon's planner."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    due = _trigger(strategy, targets, prices.times[0])
    book = Book(assets, setup.value)
    trace = Trace(strategy, start=prices.times[0])
    first_rules, rules = setup.rules(None), setup.rules(strategy)
    for k, ts in enumerate(prices.times):
        row = [c[k] for c in closes]
        if k == 0:  # the first allocation from cash: drift is measured once it is made
            _trade(trace, book, prices, k, setup, first_rules)
        total, gaps = _gaps(book, row, targets)
        trace.drift.append(max(gaps.values()))
        traded = k > 0 and due(ts, gaps) and _trade(trace, book, prices, k, setup, rules)
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


def _trigger(
    strategy: Strategy, targets: Mapping[str, float], anchor: int
) -> Callable[[int, Mapping[str, float]], bool]:
    """When a step goes to the planner: at a schedule's slots, or when a band may be breached."""
    if strategy.rule is not None:
        slots = Slots(strategy.rule, anchor)
        return lambda ts, gaps: slots.due(ts)
    # Bands: a step clearly inside the band is one the planner would not trade (tested).
    limits = _limits(strategy, targets)  # none for hold: it never trades again
    return lambda ts, gaps: any(gaps[s] - limit > -BAND_SLACK for s, limit in limits.items())


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
