"""Maker execution (issue 16): one side's orders rest post-only at the touch, follow it with
AmendOrder within the pair's trading counter, and after the portfolio's timeout the remainder
goes as an IOC limit bounded by the slippage cap. Whatever happens, nothing is left resting:
every exit path cancels what is on the book and stores the fills (the `finally` in run_side).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from rebalancerd.aio import wait_first
from rebalancerd.exchange.maker import LimitRequest, MakerExchange, amend_cost, would_take
from rebalancerd.exchange.protocol import (
    AmbiguousOrderError,
    ExchangeError,
    FatalError,
    OrderState,
    PairRules,
    Quote,
    RejectedError,
    Side,
)
from rebalancerd.runs import chase as pure
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import OrderIntent

log = logging.getLogger(__name__)
POST_ONLY_TRIES = 3  # a post-only order refused for taking is re-priced this often, then skipped
ZERO = Decimal(0)


@dataclass(frozen=True)
class MakerSettings:
    """A portfolio's maker settings for one run."""

    timeout: float  # seconds an order may rest before the fallback
    slippage_bps: Decimal  # the fallback's cap through the mid


@dataclass
class Chase:
    """One order being worked: the child orders that ended, and the one on the book."""

    intent: OrderIntent
    rules: PairRules
    ended: list[OrderState] = field(default_factory=list)
    live: OrderState | None = None
    price: Decimal = ZERO
    placed_at: float = 0.0
    problem: str | None = None  # why it stopped early (rejected, unknown, still open)
    status: str | None = None  # forced final status: rejected | unknown | placed

    @property
    def side(self) -> Side:
        return "buy" if self.intent.side == "buy" else "sell"

    @property
    def filled(self) -> Decimal:
        states = [*self.ended, *([self.live] if self.live else [])]
        return sum((s.volume_executed for s in states), ZERO)

    @property
    def remaining(self) -> Decimal:
        return self.intent.volume - self.filled

    @property
    def child_cid(self) -> str:
        """The client order id of the newest child order."""
        return pure.child_id(self.intent.client_order_id, max(self.intent.child_orders - 1, 0))


class MakerEngine:
    """Works a side's orders together: one QueryOrders and one Ticker per poll for all."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.monotonic,
        poll: float = 3.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.poll = poll  # real seconds between looks at the book

    async def run_side(
        self,
        pid: str,
        exchange: MakerExchange,
        intents: Sequence[OrderIntent],
        rules: Mapping[str, PairRules],
        settings: MakerSettings,
        stopping: asyncio.Event,
    ) -> list[OrderIntent]:
        """Rest, chase, cancel, fall back; the side's intents as stored at the end."""
        chases = [Chase(i, rules[i.symbol]) for i in intents]
        try:
            quotes = await self._quotes(exchange, chases)
            for c in chases:
                await self._rest(exchange, c, quotes[c.intent.pair])
            await self._save(chases)
            await self._follow_until(exchange, chases, settings.timeout, stopping)
        finally:
            await self._take_off_book(pid, exchange, chases)
            await self._save_quietly(pid, chases)  # an exception still leaves the truth stored
        if not stopping.is_set():
            await self._fall_back(exchange, chases, settings.slippage_bps)
        return await self._save(chases, final=True, stopping=stopping.is_set())

    # --- resting --------------------------------------------------------------------------

    async def _rest(self, exchange: MakerExchange, c: Chase, quote: Quote) -> None:
        """A new post-only child at the touch, committed before it is sent."""
        best = pure.touch(c.side, quote)
        if c.remaining < c.rules.ordermin or c.remaining * best < c.rules.costmin:
            return  # too small to rest: the fallback skips it, saying why
        c.intent = await self.store.add_child_order(c.intent.client_order_id, c.intent.child_orders)
        for _ in range(POST_ONLY_TRIES):
            price = pure.maker_price(c.side, quote, c.rules.tick_size)
            request = LimitRequest(c.intent.pair, c.side, c.remaining, price, c.child_cid)
            try:
                c.live = await exchange.place_limit(request)
            except RejectedError as exc:
                if would_take(exc):  # the book moved under us: look again, never take
                    quote = (await exchange.tickers([c.intent.pair]))[c.intent.pair]
                    continue
                c.problem, c.status = f"rejected: {exc}", "rejected"
                return
            except AmbiguousOrderError as exc:
                c.problem, c.status = f"outcome unknown: {exc}", "unknown"
                return
            c.price, c.placed_at = price, self.clock()
            c.intent = replace(c.intent, placements=c.intent.placements + 1)
            return
        c.problem = "post-only order kept being refused as taking"

    async def _follow_until(
        self, exchange: MakerExchange, chases: list[Chase], timeout: float, stopping: asyncio.Event
    ) -> None:
        """Poll fills and the touch until all filled, the timeout, or a stop."""
        deadline = self.clock() + timeout
        while any(c.live for c in chases) and not stopping.is_set():
            left = deadline - self.clock()
            if left <= 0:
                return
            await wait_first(stopping, timeout=self.poll)
            if stopping.is_set():
                return
            try:
                await self._refresh(exchange, chases)
                quotes = await self._quotes(exchange, [c for c in chases if c.live])
            except FatalError:
                raise
            except ExchangeError as exc:  # a passing fault: the orders rest on, look again
                log.warning("maker: cannot read the book this round: %s", exc)
                continue
            for c in chases:
                if c.live is not None and c.intent.pair in quotes:
                    await self._follow(exchange, c, quotes[c.intent.pair])
            await self._save(chases)

    async def _follow(self, exchange: MakerExchange, c: Chase, quote: Quote) -> None:
        """Amend to the new touch when it moved away and the counter has room for it."""
        target = pure.maker_price(c.side, quote, c.rules.tick_size)
        age = self.clock() - c.placed_at
        room = exchange.trading_room(c.intent.pair)
        if not pure.should_amend(c.side, c.price, target, room, amend_cost(age)):
            return
        try:
            await exchange.amend_price(c.child_cid, c.intent.pair, target, age)
        except RejectedError as exc:
            if would_take(exc) or "Unknown order" in str(exc) or "Invalid order" in str(exc):
                return  # the book moved again, or the order just filled: the next look tells
            log.info("maker: amend refused (%s); cancelling and placing anew", exc)
            await self._replace(exchange, c, quote)
            return
        except ExchangeError as exc:
            log.warning("maker: amend of %s failed this round: %s", c.child_cid, exc)
            return
        c.price = target
        c.intent = replace(c.intent, placements=c.intent.placements + 1)

    async def _replace(self, exchange: MakerExchange, c: Chase, quote: Quote) -> None:
        """Cancel + new child where amend is refused (only with room for both on the counter)."""
        if exchange.trading_room(c.intent.pair) < 2 * pure.CANCEL_RESERVE + 1:
            return
        await self._cancel(exchange, c)
        states = await exchange.query_orders([c.live.txid]) if c.live and c.live.txid else {}
        if c.live is not None and c.live.txid in states and states[c.live.txid].done:
            c.ended.append(states[c.live.txid])
            c.live = None
            await self._rest(exchange, c, quote)

    async def _refresh(self, exchange: MakerExchange, chases: list[Chase]) -> None:
        """One QueryOrders for every live child; ended children move to `ended`."""
        live = {c.live.txid: c for c in chases if c.live is not None and c.live.txid}
        if not live:
            return
        states = await exchange.query_orders(sorted(live))
        for txid, c in live.items():
            state = states.get(txid)
            if state is None:
                continue
            if state.done:
                c.ended.append(state)
                c.live = None
            else:
                c.live = state

    async def _quotes(self, exchange: MakerExchange, chases: list[Chase]) -> dict[str, Quote]:
        pairs = sorted({c.intent.pair for c in chases})
        return await exchange.tickers(pairs) if pairs else {}

    # --- leaving the book -------------------------------------------------------------------

    async def _take_off_book(self, pid: str, exchange: MakerExchange, chases: list[Chase]) -> None:
        """Cancel every live child and read its final fills; what stays open is said so."""
        for c in chases:
            if c.live is not None:
                await self._cancel(exchange, c)
        for _ in range(3):
            try:
                await self._refresh(exchange, chases)
            except ExchangeError as exc:
                log.warning("[Rebalance:%s] ERROR: cannot read fills after cancel: %s", pid, exc)
            if not any(c.live for c in chases):
                return
            await asyncio.sleep(0.2)  # a cancel may be pending for a moment
        for c in chases:
            if c.live is not None:
                c.problem, c.status = (
                    f"order {c.child_cid} may still rest; resolved next run",
                    "placed",
                )

    async def _cancel(self, exchange: MakerExchange, c: Chase) -> None:
        try:
            await exchange.cancel_order(c.child_cid)
        except RejectedError:
            pass  # unknown order: it filled or was cancelled already; the look-up tells
        except ExchangeError as exc:
            log.warning("maker: cancel of %s failed: %s", c.child_cid, exc)

    async def _fall_back(
        self, exchange: MakerExchange, chases: list[Chase], slippage_bps: Decimal
    ) -> None:
        """After the timeout: the remainder as an IOC limit within the cap, or skipped."""
        waiting = [c for c in chases if c.status is None and c.remaining > 0]
        if not waiting:
            return
        quotes = await self._quotes(exchange, waiting)
        for c in waiting:
            price = pure.fallback_price(
                c.side, pure.mid(quotes[c.intent.pair]), slippage_bps, c.rules.tick_size
            )
            if c.remaining < c.rules.ordermin or c.remaining * price < c.rules.costmin:
                c.problem = f"remainder {c.remaining} skipped: below the pair's minimum"
                continue
            await self._ioc(exchange, c, price)

    async def _ioc(self, exchange: MakerExchange, c: Chase, price: Decimal) -> None:
        c.intent = await self.store.add_child_order(c.intent.client_order_id, c.intent.child_orders)
        c.intent = replace(c.intent, fallback=True)
        request = LimitRequest(
            c.intent.pair, c.side, c.remaining, price, c.child_cid, post_only=False, ioc=True
        )
        try:
            state = await exchange.place_limit(request)
        except RejectedError as exc:
            c.problem = f"fallback rejected: {exc}"
            return
        except AmbiguousOrderError as exc:
            c.problem, c.status = f"fallback outcome unknown: {exc}", "unknown"
            return
        c.live = state
        await self._take_off_book("", exchange, [c])  # IOC ends at once; read its fill
        if c.remaining > 0:
            c.problem = f"remainder {c.remaining} skipped: no fill within {price}"

    # --- storing ------------------------------------------------------------------------------

    async def _save_quietly(self, pid: str, chases: list[Chase]) -> None:
        try:
            await self._save(chases)
        except Exception as exc:  # never mask the error that brought us here
            log.error("[Rebalance:%s] ERROR: cannot store maker orders: %s", pid, exc)

    async def _save(
        self, chases: list[Chase], *, final: bool = False, stopping: bool = False
    ) -> list[OrderIntent]:
        for c in chases:
            c.intent = summed(c, final=final, stopping=stopping)
        intents = [c.intent for c in chases]
        await self.store.save_maker_intents(intents)
        return intents


def summed(c: Chase, *, final: bool, stopping: bool) -> OrderIntent:
    """The intent with every child's fills added up, and its status."""
    states = [*c.ended, *([c.live] if c.live else [])]
    total = pure.filled_total(states)
    status = c.status or _status(total.volume, c.intent.volume, final=final, live=bool(c.live))
    error = c.problem
    if final and not states and c.intent.child_orders == 0 and c.status is None:
        status = "not_placed"  # nothing was ever sent for it
        error = error or "not placed"
    if final and stopping and status == "canceled" and error is None:
        error = "cancelled: the daemon is shutting down"
    return replace(
        c.intent,
        status=status,
        txid=total.txid or c.intent.txid,
        volume_executed=total.volume,
        cost=total.cost,
        fee=total.fee,
        avg_price=total.avg_price,
        error=error,
    )


def _status(volume: Decimal, planned: Decimal, *, final: bool, live: bool) -> str:
    if volume >= planned:
        return "filled"
    if live or not final:
        return "placed"
    return "canceled"
