"""One portfolio's run: plan, commit each order's intent, send it once, record the truth."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rebalancerd.backoff import doubling
from rebalancerd.exchange.protocol import (
    AmbiguousOrderError,
    Exchange,
    ExchangeError,
    FatalError,
    OrderRequest,
    OrderState,
    RejectedError,
    Side,
)
from rebalancerd.metrics import Metrics
from rebalancerd.planning import plan as planner
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import OrderIntent, Portfolio, Run, decimal_str

log = logging.getLogger(__name__)
CASH = "EUR"
# Buys are budgeted to this share of the cash: a market order fills at the ask or worse, and
# Kraken rounds cost and fee up to the pair's cost decimals; spending to the last cent fails.
BUY_BUDGET = Decimal("0.997")
FINAL = ("filled", "canceled", "rejected", "not_placed")  # intent states that change no more


def _log(portfolio_id: str, level: int, kind: str, msg: str, *args: Any) -> None:
    log.log(level, f"[Rebalance:{portfolio_id}] {kind}: {msg}", *args)


@dataclass
class RunOutcome:
    """What a run did, as the history row will say."""

    portfolio_value: Decimal = Decimal(0)
    orders: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    planned: int = 0
    plan: dict[str, Any] | None = None
    ambiguous: bool = False
    seq: int = 0  # the next order's number within the run

    def history(self, run: Run, started: float) -> dict[str, Any]:
        executed = [o for o in self.orders if o["status"] == "filled"]
        failed = [o for o in self.orders if o["status"] in ("rejected", "unknown", "not_placed")]
        traded = sum((Decimal(o["cost"]) for o in executed), Decimal(0))
        return {
            "success": not self.errors,
            "dry_run": run.dry_run,
            "portfolio_value": self.portfolio_value,
            "orders_planned": self.planned,
            "orders_executed": len(executed),
            "orders_failed": len(failed),
            "total_value_traded": traded,
            "orders": self.orders,
            "errors": self.errors or None,
            "triggered_by": run.triggered_by,
            "duration": int((time.monotonic() - started) * 1000),
        }


def intent_json(intent: OrderIntent) -> dict[str, Any]:
    """One order of a history record."""
    return {
        "symbol": intent.symbol,
        "pair": intent.pair,
        "side": intent.side,
        "volume": decimal_str(intent.volume),
        "status": intent.status,
        "clientOrderId": intent.client_order_id,
        "txid": intent.txid,
        "volumeExecuted": decimal_str(intent.volume_executed),
        "cost": decimal_str(intent.cost),
        "fee": decimal_str(intent.fee),
        "price": decimal_str(intent.avg_price),
        "error": intent.error,
    }


def status_of(state: OrderState) -> str:
    """Our intent status for what the exchange reports."""
    if state.status == "closed":
        return "filled"
    if state.status in ("canceled", "expired"):
        return "canceled"
    return "placed"


class Executor:
    """Runs one claimed portfolio against its exchange; `stopping` asks for a safe early end."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fill_timeout: float = 30.0,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.fill_timeout = fill_timeout

    async def rebalance(
        self, run: Run, portfolio: Portfolio, exchange: Exchange, stopping: asyncio.Event
    ) -> RunOutcome:
        """Plan and trade; never raises for exchange trouble (it is recorded instead)."""
        outcome = RunOutcome()
        pid = portfolio.id
        _log(pid, logging.INFO, "INFO", "Starting portfolio rebalance%s", _dry(run))
        try:
            await self._trade(run, portfolio, exchange, stopping, outcome)
        except FatalError as exc:
            self.metrics.exchange_errors.labels("fatal").inc()
            outcome.errors.append(f"exchange refused the account: {exc}")
        except ExchangeError as exc:
            self.metrics.exchange_errors.labels(type(exc).__name__).inc()
            outcome.errors.append(f"exchange error: {exc}")
        for message in outcome.errors:
            _log(pid, logging.ERROR, "ERROR", "%s", message)
        return outcome

    async def preview(self, portfolio: Portfolio, exchange: Exchange) -> dict[str, Any]:
        """What a run would trade now and why each skip, without placing anything."""
        outcome = RunOutcome()
        await self._plan(portfolio, exchange, outcome)
        return {
            "portfolioValue": outcome.portfolio_value,
            "plan": outcome.plan,
            "errors": outcome.errors,
        }

    async def current_plan(self, portfolio: Portfolio, exchange: Exchange) -> planner.Plan | None:
        """The plan a run would make now, or None when it could not be made."""
        plan, *_ = await self._plan(portfolio, exchange, RunOutcome())
        return plan  # type: ignore[no-any-return]

    async def _trade(
        self,
        run: Run,
        portfolio: Portfolio,
        exchange: Exchange,
        stopping: asyncio.Event,
        outcome: RunOutcome,
    ) -> None:
        pid = portfolio.id
        plan, quotes, pairs, fee_rate, cash = await self._plan(portfolio, exchange, outcome)
        if plan is None:
            return
        _log(pid, logging.INFO, "INFO", "Generated %d rebalance orders", len(plan.orders))
        for skip in plan.skipped:
            _log(
                pid, logging.INFO, "INFO", "Skipped %s %s: %s", skip.side, skip.symbol, skip.reason
            )
        if run.dry_run:
            outcome.orders = [_planned_json(o, "planned") for o in plan.orders]
            return
        sells = [o for o in plan.orders if o.side == "sell"]
        buys = [o for o in plan.orders if o.side == "buy"]
        proceeds = await self._place_all(run, pid, exchange, sells, stopping, outcome)
        if stopping.is_set() or outcome.ambiguous:
            outcome.errors.append(
                "stopped before buying: "
                + (
                    "the daemon is shutting down"
                    if stopping.is_set()
                    else "a sell's outcome is unknown"
                )
            )
            return
        available = max((cash + proceeds - plan.cash_reserve) * BUY_BUDGET, Decimal(0))
        sized, skipped = planner.size_buys(buys, available, quotes, pairs, fee_rate)
        for skip in skipped:
            _log(pid, logging.INFO, "INFO", "Skipped buy %s: %s", skip.symbol, skip.reason)
        await self._place_all(run, pid, exchange, list(sized), stopping, outcome)

    async def _plan(
        self, portfolio: Portfolio, exchange: Exchange, outcome: RunOutcome
    ) -> tuple[Any, Any, Any, Decimal, Decimal]:
        weights = portfolio.weights()
        bases = sorted(s for s in weights if s != CASH)
        pairs = await exchange.pair_rules(bases, CASH)
        missing = [b for b in bases if b not in pairs]
        if missing:
            outcome.errors.append(f"no {CASH} market for {', '.join(missing)}")
            return None, None, None, Decimal(0), Decimal(0)
        pair_keys = [pairs[b].pair for b in bases]
        balances, tickers, fee_rate = await asyncio.gather(
            exchange.balances(),
            exchange.tickers(pair_keys),
            exchange.fee_rate(pair_keys[0]) if pair_keys else _zero(),
        )
        quotes = {b: tickers[pairs[b].pair] for b in bases if pairs[b].pair in tickers}
        rules = planner.PortfolioRules(
            target_weights=weights,
            threshold=portfolio.rebalance_threshold,
            max_orders=portfolio.max_orders_per_rebalance,
            band_abs=portfolio.drift_band_abs,
            band_rel=portfolio.drift_band_rel,
        )
        plan = planner.plan(balances, quotes, pairs, fee_rate, rules, self.clock(), cash=CASH)
        outcome.portfolio_value = plan.value
        outcome.planned = len(plan.orders)
        outcome.plan = plan.as_dict()
        if plan.aborted:
            outcome.errors.append(f"plan aborted: {plan.aborted}")
            return None, None, None, Decimal(0), Decimal(0)
        _log(
            portfolio.id,
            logging.INFO,
            "SUCCESS",
            "Portfolio value calculated: €%s",
            f"{plan.value:,.2f}",
        )
        cash = balances.tradable.get(CASH, Decimal(0))
        return plan, quotes, pairs, fee_rate, cash

    async def _place_all(
        self,
        run: Run,
        pid: str,
        exchange: Exchange,
        orders: Sequence[planner.PlannedOrder],
        stopping: asyncio.Event,
        outcome: RunOutcome,
    ) -> Decimal:
        """Place one side's orders, confirm their fills together; EUR net received (sells)."""
        intents = await self._commit_intents(run, orders, outcome)
        sent: list[OrderIntent] = []
        for intent in intents:
            held = _held_back(intent, stopping, outcome)
            if held:
                outcome.errors.append(held)
                sent.append(replace(intent, status="not_placed", error=held))
                continue
            sent.append(await self._send(pid, exchange, intent))
            outcome.ambiguous |= sent[-1].status == "unknown"
        done = await self._confirm(exchange, sent, outcome)
        await self.store.save_intents(done)
        return self._account(pid, done, outcome)

    async def _commit_intents(
        self, run: Run, orders: Sequence[planner.PlannedOrder], outcome: RunOutcome
    ) -> list[OrderIntent]:
        """Commit every intent of the side before any of its orders leaves.

        A crash from here on is reconciled by looking each client order id up at the
        exchange, never by sending it again. One transaction for the side, not one per order.
        """
        rows = []
        for order in orders:
            coid = str(uuid.uuid4())
            rows.append(
                (outcome.seq, coid, order.symbol, order.pair, order.side, order.volume, order.price)
            )
            outcome.seq += 1
        return await self.store.insert_intents(run.id, rows) if rows else []

    async def _send(self, pid: str, exchange: Exchange, intent: OrderIntent) -> OrderIntent:
        """Send one committed order; what became of it, not yet stored."""
        side: Side = "buy" if intent.side == "buy" else "sell"
        request = OrderRequest(intent.pair, side, intent.volume, intent.client_order_id)
        try:
            state = await exchange.place_order(request)
        except RejectedError as exc:
            _log(
                pid,
                logging.WARNING,
                "ERROR",
                "Order rejected: %s %s: %s",
                intent.side,
                intent.symbol,
                exc,
            )
            return replace(intent, status="rejected", error=str(exc))
        except AmbiguousOrderError as exc:
            self.metrics.exchange_errors.labels("ambiguous").inc()
            return replace(intent, status="unknown", error=f"outcome unknown: {exc}")
        except (FatalError, asyncio.CancelledError):
            raise
        except ExchangeError as exc:
            # Only errors raised before the request could have been accepted reach here.
            return replace(intent, status="not_placed", error=str(exc))
        return with_state(intent, state)

    async def _confirm(
        self, exchange: Exchange, intents: list[OrderIntent], outcome: RunOutcome
    ) -> list[OrderIntent]:
        """Wait (bounded) until the placed orders are done, asking for all of them at once."""
        deadline = time.monotonic() + self.fill_timeout
        looks = 0
        while open_ := {i.txid for i in intents if i.status == "placed" and i.txid}:
            if time.monotonic() >= deadline:
                outcome.ambiguous = True
                outcome.errors.append(f"{len(open_)} order(s) not confirmed filled in time")
                break
            # Market orders fill at once: the first look needs no pause.
            await asyncio.sleep(doubling(looks - 1, 0.2, 2.0) if looks else 0.0)
            looks += 1
            try:
                states = await exchange.query_orders(sorted(open_))
            except ExchangeError as exc:
                outcome.ambiguous = True
                outcome.errors.append(f"fills not confirmed: {exc}")
                break
            intents = [with_state(i, states[i.txid]) if i.txid in states else i for i in intents]
        return intents

    def _account(self, pid: str, intents: list[OrderIntent], outcome: RunOutcome) -> Decimal:
        """Add the side's orders to the outcome; the EUR its sells brought in, net of fees."""
        net = Decimal(0)
        for intent in intents:
            outcome.orders.append(intent_json(intent))
            self.metrics.orders.labels(intent.status, intent.side).inc()
            if intent.error and intent.status != "not_placed":
                outcome.errors.append(f"{intent.side} {intent.symbol}: {intent.error}")
            if intent.status == "filled":
                _log(
                    pid,
                    logging.INFO,
                    "SUCCESS",
                    "Order executed successfully: %s %s %s",
                    intent.side,
                    decimal_str(intent.volume_executed),
                    intent.symbol,
                )
            if intent.side == "sell":
                net += intent.cost - intent.fee
        return net


def with_state(intent: OrderIntent, state: OrderState) -> OrderIntent:
    """The intent as the exchange reports its order."""
    return replace(
        intent,
        status=status_of(state),
        txid=state.txid,
        volume_executed=state.volume_executed,
        cost=state.cost,
        fee=state.fee,
        avg_price=state.avg_price,
    )


def _held_back(order: OrderIntent, stopping: asyncio.Event, outcome: RunOutcome) -> str:
    """Why an order must not be sent now, or "" when it may."""
    if stopping.is_set():
        return f"not placed ({order.side} {order.symbol}): shutting down"
    if outcome.ambiguous:
        # The exchange could not say what became of an order: trading on would rest on
        # guessed balances. The next run settles it first.
        return f"not placed ({order.side} {order.symbol}): an earlier order's outcome is unknown"
    return ""


async def record_state(store: Store, client_order_id: str, state: OrderState) -> OrderIntent:
    """Store what the exchange says about an order."""
    return await store.update_intent(
        client_order_id,
        status_of(state),
        txid=state.txid,
        volume_executed=state.volume_executed,
        cost=state.cost,
        fee=state.fee,
        avg_price=state.avg_price,
    )


def _planned_json(order: planner.PlannedOrder, status: str) -> dict[str, Any]:
    return {
        "symbol": order.symbol,
        "pair": order.pair,
        "side": order.side,
        "volume": decimal_str(order.volume),
        "status": status,
        "price": decimal_str(order.price),
        "value": decimal_str(order.value),
        "fee": decimal_str(order.fee),
    }


def _dry(run: Run) -> str:
    return " (dry run)" if run.dry_run else ""


async def _zero() -> Decimal:
    return Decimal(0)
