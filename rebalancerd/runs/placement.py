"""Placing a run's orders: commit a side's intents, send each once; then confirm every fill of
the run together (one QueryOrders) and store what the exchange says."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rebalancerd.backoff import doubling
from rebalancerd.decimals import plain
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
from rebalancerd.planning.types import PlannedOrder
from rebalancerd.runs.outcome import OrderJson, intent_json
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import OrderIntent, Run

log = logging.getLogger(__name__)
FINAL = ("filled", "canceled", "rejected", "not_placed")  # intent states that change no more


@dataclass(frozen=True)
class Sent:
    """One side's orders as their AddOrder replies left them: not confirmed, not stored yet."""

    intents: tuple[OrderIntent, ...]
    held: tuple[str, ...]  # why orders were held back

    @property
    def ambiguous(self) -> bool:
        """An order's outcome is unknown: trading on would rest on guessed balances."""
        return any(i.status == "unknown" for i in self.intents)


@dataclass(frozen=True)
class Settled:
    """What a run's orders came to once confirmed and stored."""

    orders: tuple[OrderJson, ...]
    errors: tuple[str, ...]


class OrderPlacement:
    """Places a run's orders; `stopping` holds back what is not sent yet."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        fill_timeout: float = 30.0,
        halt: asyncio.Event | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.fill_timeout = fill_timeout
        self.halt = halt or asyncio.Event()  # the kill switch: what rests is cancelled

    async def cancel_resting(self, pid: str, exchange: Exchange, sides: Sequence[Sent]) -> None:
        """Halted: cancel the run's orders still on the book (settle then reads their end)."""
        if not self.halt.is_set():
            return
        for intent in (i for s in sides for i in s.intents if i.status == "placed"):
            try:
                await exchange.cancel_order(intent.client_order_id)
                log.warning(
                    "[Rebalance:%s] WARN: halted: cancelled resting order %s %s (%s)",
                    pid,
                    intent.side,
                    intent.symbol,
                    intent.client_order_id,
                )
            except ExchangeError as exc:  # filled or gone meanwhile: settle reads what it is
                log.warning("[Rebalance:%s] WARN: could not cancel %s: %s", pid, intent.symbol, exc)

    async def send(
        self,
        run: Run,
        exchange: Exchange,
        orders: Sequence[PlannedOrder],
        first_seq: int,
        stopping: asyncio.Event,
        *,
        after: Sent | None = None,
    ) -> Sent:
        """Commit one side's intents, then send its orders one after another.

        `after`: the side sent before, whose replies are stored with this side's intents.
        """
        saving = after.intents if after else ()
        intents = await self._commit_intents(run, orders, first_seq, saving)
        sent, held = await self._send_all(run.portfolio_id, exchange, intents, stopping)
        return Sent(tuple(sent), tuple(held))

    async def settle(self, pid: str, exchange: Exchange, sides: Sequence[Sent]) -> Settled:
        """Confirm the fills of every side in one look-up, store them, say what they came to."""
        done, unconfirmed = await self._confirm(exchange, [i for s in sides for i in s.intents])
        await self.save(done)
        self._count(pid, done)
        held = [reason for s in sides for reason in s.held]
        return Settled(
            orders=tuple(intent_json(i) for i in done),
            errors=(*held, *([unconfirmed] if unconfirmed else []), *_order_errors(done)),
        )

    async def save(self, intents: Sequence[OrderIntent]) -> None:
        """Store what became of the orders (as far as is known)."""
        if intents:
            await self.store.save_intents(intents)

    async def _commit_intents(
        self,
        run: Run,
        orders: Sequence[PlannedOrder],
        first_seq: int,
        saving: Sequence[OrderIntent] = (),
    ) -> list[OrderIntent]:
        """Commit every intent of the side before any of its orders leaves.

        A crash from here on is reconciled by looking each client order id up at the
        exchange, never by sending it again. One transaction for the side, not one per order.
        """
        rows = [
            (seq, str(uuid.uuid4()), o.symbol, o.pair, o.side, o.volume, o.price)
            for seq, o in enumerate(orders, start=first_seq)
        ]
        if rows:
            return await self.store.insert_intents(run.id, rows, saving=saving)
        await self.save(saving)
        return []

    async def _send_all(
        self, pid: str, exchange: Exchange, intents: list[OrderIntent], stopping: asyncio.Event
    ) -> tuple[list[OrderIntent], list[str]]:
        """Send the orders in turn; (what became of each, why some were held back)."""
        sent: list[OrderIntent] = []
        held: list[str] = []
        for intent in intents:
            unsure = any(i.status == "unknown" for i in sent)
            reason = _held_back(intent, stopping, unsure, self.halt.is_set())
            if reason:
                held.append(reason)
                sent.append(replace(intent, status="not_placed", error=reason))
            else:
                sent.append(await self._send(pid, exchange, intent))
        return sent, held

    async def _send(self, pid: str, exchange: Exchange, intent: OrderIntent) -> OrderIntent:
        """Send one committed order; what became of it, not yet stored."""
        side: Side = "buy" if intent.side == "buy" else "sell"
        request = OrderRequest(intent.pair, side, intent.volume, intent.client_order_id)
        try:
            state = await exchange.place_order(request)
        except RejectedError as exc:
            log.warning(
                "[Rebalance:%s] ERROR: Order rejected: %s %s: %s",
                pid,
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
        self, exchange: Exchange, intents: list[OrderIntent]
    ) -> tuple[list[OrderIntent], str | None]:
        """Wait (bounded) until the placed orders are done, asking for all of them at once.

        Returns the intents as last seen, and why they are not all confirmed (None if they are).
        """
        deadline = time.monotonic() + self.fill_timeout
        looks = 0
        while open_ := {i.txid for i in intents if i.status == "placed" and i.txid}:
            if time.monotonic() >= deadline:
                return intents, f"{len(open_)} order(s) not confirmed filled in time"
            # Market orders fill at once: the first look needs no pause.
            await asyncio.sleep(doubling(looks - 1, 0.2, 2.0) if looks else 0.0)
            looks += 1
            try:
                states = await exchange.query_orders(sorted(open_))
            except ExchangeError as exc:
                return intents, f"fills not confirmed: {exc}"
            intents = [with_state(i, states[i.txid]) if i.txid in states else i for i in intents]
        return intents, None

    def _count(self, pid: str, intents: list[OrderIntent]) -> None:
        """Metrics and log lines of the side's orders."""
        for intent in intents:
            self.metrics.orders.labels(intent.status, intent.side).inc()
            if intent.status == "filled":
                log.info(
                    "[Rebalance:%s] SUCCESS: Order executed successfully: %s %s %s",
                    pid,
                    intent.side,
                    plain(intent.volume_executed),
                    intent.symbol,
                )


def status_of(state: OrderState) -> str:
    """Our intent status for what the exchange reports."""
    if state.status == "closed":
        return "filled"
    if state.status in ("canceled", "expired"):
        return "canceled"
    return "placed"


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


def _held_back(order: OrderIntent, stopping: asyncio.Event, unsure: bool, halted: bool) -> str:
    """Why an order must not be sent now, or "" when it may."""
    if halted:
        return f"not placed ({order.side} {order.symbol}): halted by the operator"
    if stopping.is_set():
        return f"not placed ({order.side} {order.symbol}): shutting down"
    if unsure:
        # The exchange could not say what became of an order: trading on would rest on
        # guessed balances. The next run settles it first.
        return f"not placed ({order.side} {order.symbol}): an earlier order's outcome is unknown"
    return ""


def _order_errors(intents: list[OrderIntent]) -> list[str]:
    """The errors of orders that reached the exchange (held-back ones are reported already)."""
    return [
        f"{i.side} {i.symbol}: {i.error}" for i in intents if i.error and i.status != "not_placed"
    ]
