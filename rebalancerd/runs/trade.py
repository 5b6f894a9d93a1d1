"""One portfolio's run: plan it against the account's market, then sell, then buy with what the
sells bring, then confirm every fill at once (placing the orders is runs/placement.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypedDict

from rebalancerd.exchange.maker import MakerExchange
from rebalancerd.exchange.protocol import (
    Balances,
    Exchange,
    ExchangeError,
    FatalError,
    PairRules,
    Quote,
)
from rebalancerd.metrics import Metrics
from rebalancerd.planning import plan as planner
from rebalancerd.runs import snapshots
from rebalancerd.runs.execution import market_json, observe
from rebalancerd.runs.maker_trade import MakerTrader
from rebalancerd.runs.outcome import RunOutcome, planned_json
from rebalancerd.runs.placement import OrderPlacement, Sent
from rebalancerd.runs.safety import RunChecks, SafetyGate
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import Portfolio, Run

log = logging.getLogger(__name__)
CASH = "EUR"
# Buys are budgeted to this share of the cash: a market order fills at the ask or worse, a sell
# whose fill is not known yet is counted at its planned bid (it may fill lower), and Kraken
# rounds cost and fee up to the pair's cost decimals; spending to the last cent fails.
BUY_BUDGET = Decimal("0.997")


def _log(portfolio_id: str, level: int, kind: str, msg: str, *args: object) -> None:
    log.log(level, f"[Rebalance:{portfolio_id}] {kind}: {msg}", *args)


@dataclass(frozen=True)
class RunPlan:
    """Planning a run: the plan, the market it was priced in, or why nothing may be traded."""

    plan: planner.Plan | None = None  # None when a target asset has no EUR market
    error: str | None = None
    quotes: Mapping[str, Quote] = field(default_factory=dict)
    pairs: Mapping[str, PairRules] = field(default_factory=dict)
    fee_rate: Decimal = Decimal(0)
    cash: Decimal = Decimal(0)  # EUR the account holds before the sells
    amounts: Mapping[str, Decimal] = field(default_factory=dict)  # tradable, per target asset

    @property
    def tradable(self) -> planner.Plan | None:
        """The plan when it may be traded."""
        return self.plan if self.error is None else None

    def outcome(self) -> RunOutcome:
        """A run's outcome once planned: the portfolio's value, the order count, any error."""
        errors = () if self.error is None else (self.error,)
        if self.plan is None:
            return RunOutcome(errors=errors)
        return RunOutcome(self.plan.value, len(self.plan.orders), errors=errors)


class Preview(TypedDict):
    """The plan a run would make now, as the API shows it."""

    portfolioValue: Decimal
    plan: dict[str, Any] | None  # Plan.as_dict(): JSON
    errors: list[str]


class Executor:
    """Runs one claimed portfolio against its exchange; `stopping` asks for a safe early end."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fill_timeout: float = 30.0,
        halt: asyncio.Event | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.halt = halt or asyncio.Event()  # the kill switch: stop before the next order
        self.placement = OrderPlacement(store, metrics, fill_timeout=fill_timeout, halt=self.halt)
        self.gate = SafetyGate(store, clock)
        self.max_trade_value: Decimal | None = None  # [safety] max_trade_value_eur
        self.maker = MakerTrader(store, metrics, halt=self.halt)  # maker execution (issue 16)

    async def rebalance(
        self,
        run: Run,
        portfolio: Portfolio,
        exchange: Exchange,
        stopping: asyncio.Event,
        checks: RunChecks | None = None,
    ) -> RunOutcome:
        """Plan and trade; never raises for exchange trouble (it is recorded instead)."""
        _log(portfolio.id, logging.INFO, "INFO", "Starting portfolio rebalance%s", _dry(run))
        outcome = await self._run(run, portfolio, exchange, stopping, checks or RunChecks())
        for message in outcome.errors:
            _log(portfolio.id, logging.ERROR, "ERROR", "%s", message)
        return outcome

    async def preview(self, portfolio: Portfolio, exchange: Exchange) -> Preview:
        """What a run would trade now and why each skip, without placing anything."""
        planned = await self.plan_run(portfolio, exchange)
        return {
            "portfolioValue": planned.outcome().portfolio_value,
            "plan": None if planned.plan is None else planned.plan.as_dict(),
            "errors": [] if planned.error is None else [planned.error],
        }

    async def current_plan(self, portfolio: Portfolio, exchange: Exchange) -> RunPlan:
        """The run's planning now, for a drift check: the prices it read become the price-jump
        guard's marks."""
        planned = await self.plan_run(portfolio, exchange)
        if planned.quotes:
            await self.gate.mark_prices(portfolio, planned.quotes)
        return planned

    async def plan_run(self, portfolio: Portfolio, exchange: Exchange) -> RunPlan:
        """Read the account's markets, balances and fee, and plan the portfolio against them."""
        weights = portfolio.weights()
        bases = sorted(s for s in weights if s != CASH)
        # Balances need no pair data: their round trip overlaps the metadata's when it is fetched.
        reading = asyncio.create_task(exchange.balances())
        try:
            pairs = await exchange.pair_rules(bases, CASH)
            missing = [b for b in bases if b not in pairs]
            if missing:
                return RunPlan(error=f"no {CASH} market for {', '.join(missing)}")
            pair_keys = [pairs[b].pair for b in bases]
            balances, tickers, fee_rate = await asyncio.gather(
                reading,
                exchange.tickers(pair_keys),
                exchange.fee_rate(pair_keys[0]) if pair_keys else _zero(),
            )
        finally:
            await _settled(reading)
        quotes = {b: tickers[pairs[b].pair] for b in bases if pairs[b].pair in tickers}
        rules = _rules(portfolio, weights, self.max_trade_value)
        plan = planner.plan(balances, quotes, pairs, fee_rate, rules, self.clock(), cash=CASH)
        if plan.aborted:
            return RunPlan(plan, f"plan aborted: {plan.aborted}")
        value = f"{plan.value:,.2f}"
        _log(portfolio.id, logging.INFO, "SUCCESS", "Portfolio value calculated: €%s", value)
        cash = balances.tradable.get(CASH, Decimal(0))
        amounts = {s: balances.tradable.get(s, Decimal(0)) for s in [*bases, CASH]}
        return RunPlan(plan, None, quotes, pairs, fee_rate, cash, amounts)

    async def _run(
        self,
        run: Run,
        portfolio: Portfolio,
        exchange: Exchange,
        stopping: asyncio.Event,
        checks: RunChecks,
    ) -> RunOutcome:
        """Each step returns the outcome so far, so an exchange failure keeps what went before."""
        outcome = RunOutcome()
        before: snapshots.Taken | None = None  # written once the orders are done, off their path
        try:
            planned = await self.plan_run(portfolio, exchange)
            outcome = planned.outcome()
            before = snapshots.taken(run.portfolio_id, run.id, planned, self.clock())
            plan = planned.tradable
            if plan is None:
                return outcome
            _log_plan(portfolio.id, plan)
            held = await self.gate.review(run, portfolio, planned.quotes, plan, outcome, checks)
            if held is not None:
                return held
            if run.dry_run:
                outcome = outcome.with_orders(planned_json(o) for o in plan.orders)
                return outcome
            if portfolio.execution_mode == "maker" and isinstance(exchange, MakerExchange):
                outcome = await self._trade_maker(run, portfolio, exchange, planned, plan, stopping)
                return outcome
            outcome = await self._trade(run, exchange, planned, plan, outcome, stopping)
            return outcome
        except ExchangeError as exc:
            outcome = outcome.failed(self._exchange_failure(exc))
            return outcome
        finally:
            if before is not None:
                await snapshots.record_run(self.store, before, outcome.orders)

    async def _trade(
        self,
        run: Run,
        exchange: Exchange,
        planned: RunPlan,
        plan: planner.Plan,
        outcome: RunOutcome,
        stopping: asyncio.Event,
    ) -> RunOutcome:
        """Sell, buy with what the sells bring (bounded, not confirmed), confirm all at once."""
        pid = run.portfolio_id
        sold = await self.placement.send(run, exchange, plan.sells, 0, stopping)
        if stopping.is_set() or sold.ambiguous:
            await self.placement.cancel_resting(pid, exchange, [sold])
            settled = await self.placement.settle(pid, exchange, [sold])
            why = _not_buying(stopping, self.halt)
            return outcome.with_orders(settled.orders, settled.errors).failed(why)
        buys = _sized_buys(pid, planned, plan, proceeds_bound(sold, planned.fee_rate))
        try:
            bought = await self.placement.send(
                run, exchange, buys, len(plan.sells), stopping, after=sold
            )
        except ExchangeError:
            await self.placement.save(sold.intents)  # what the sells' replies said is kept
            raise
        await self.placement.cancel_resting(pid, exchange, [sold, bought])
        settled = await self.placement.settle(pid, exchange, [sold, bought])
        orders = market_json(settled.orders, planned.quotes)  # issue 16: execution fields
        observe(self.metrics, orders)
        return outcome.with_orders(orders, settled.errors)

    async def _trade_maker(
        self,
        run: Run,
        portfolio: Portfolio,
        exchange: MakerExchange,
        planned: RunPlan,
        plan: planner.Plan,
        stopping: asyncio.Event,
    ) -> RunOutcome:
        """Maker execution (issue 16): runs/maker_trade.py."""
        pid = run.portfolio_id

        def size_buys(proceeds: Decimal) -> tuple[planner.PlannedOrder, ...]:
            # The sells are settled here: their proceeds are real, not a bound.
            return _sized_buys(pid, planned, plan, proceeds)

        return await self.maker.trade(
            run,
            portfolio,
            exchange,
            (plan.sells, size_buys),
            (planned.quotes, planned.pairs),
            planned.outcome(),
            stopping,
        )

    def _exchange_failure(self, exc: ExchangeError) -> str:
        if isinstance(exc, FatalError):
            self.metrics.exchange_errors.labels("fatal").inc()
            return f"exchange refused the account: {exc}"
        self.metrics.exchange_errors.labels(type(exc).__name__).inc()
        return f"exchange error: {exc}"


def proceeds_bound(sold: Sent, fee_rate: Decimal) -> Decimal:
    """EUR the sells bring at most as far as is known before any status call.

    A reply that carries its fill (a paper account's) counts what it says; a sell placed but
    not confirmed counts its planned volume at the planned bid less the fee (a fill below the
    bid is what BUY_BUDGET's margin absorbs); a rejected or held-back sell counts nothing.
    """
    total = Decimal(0)
    for intent in sold.intents:
        if intent.status in ("filled", "canceled"):
            total += intent.cost - intent.fee
        elif intent.status == "placed":
            total += intent.volume * intent.expected_price * (1 - fee_rate)
    return total


def _sized_buys(
    pid: str, planned: RunPlan, plan: planner.Plan, proceeds: Decimal
) -> tuple[planner.PlannedOrder, ...]:
    """The plan's buys, re-sized to the cash there is with what the sells bring."""
    available = max((planned.cash + proceeds - plan.cash_reserve) * BUY_BUDGET, Decimal(0))
    sized, skipped = planner.size_buys(
        plan.buys, available, planned.quotes, planned.pairs, planned.fee_rate
    )
    for skip in skipped:
        _log(pid, logging.INFO, "INFO", "Skipped buy %s: %s", skip.symbol, skip.reason)
    return sized


def _rules(
    portfolio: Portfolio, weights: Mapping[str, Decimal], max_trade_value: Decimal | None
) -> planner.PortfolioRules:
    return planner.PortfolioRules(
        target_weights=weights,
        threshold=portfolio.rebalance_threshold,
        max_orders=portfolio.max_orders_per_rebalance,
        band_abs=portfolio.drift_band_abs,
        band_rel=portfolio.drift_band_rel,
        # safety controls
        sell_mode="never" if portfolio.sell_mode == "never" else "allow",
        max_trade_percent=portfolio.max_trade_percent,
        max_trade_value=max_trade_value,
    )


def _log_plan(pid: str, plan: planner.Plan) -> None:
    _log(pid, logging.INFO, "INFO", "Generated %d rebalance orders", len(plan.orders))
    for skip in plan.skipped:
        _log(pid, logging.INFO, "INFO", "Skipped %s %s: %s", skip.side, skip.symbol, skip.reason)


def _not_buying(stopping: asyncio.Event, halt: asyncio.Event) -> str:
    why = "the daemon is shutting down" if stopping.is_set() else "a sell's outcome is unknown"
    if halt.is_set():
        why = "halted by the operator"
    return f"stopped before buying: {why}"


def _dry(run: Run) -> str:
    return " (dry run)" if run.dry_run else ""


async def _zero() -> Decimal:
    return Decimal(0)


async def _settled(task: asyncio.Task[Balances]) -> None:
    """Let a read that is no longer needed end quietly (it is cancelled if still running)."""
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, ExchangeError):
        await task
