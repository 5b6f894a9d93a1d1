"""Maker execution on paper (issue 16): limit orders rest in memory and fill at their own price
when the market's price path crosses them, at the maker fee; IOC fills what crosses at once.

Resting paper orders live in memory only: after a crash they are simply gone (cancelled), and
the ledger, which records every fill atomically, stays the truth.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import ROUND_UP, Decimal

from rebalancerd.exchange.maker import POST_ONLY_REFUSED, LimitRequest
from rebalancerd.exchange.protocol import OrderState, PairRules, Quote, RejectedError

FEE_STEP = Decimal("1E-8")
Record = Callable[[OrderState, dict[str, Decimal]], Awaitable[OrderState]]


def crosses(side: str, price: Decimal, quote: Quote) -> bool:
    """True when a limit at `price` meets the other side of the market."""
    return quote.ask <= price if side == "buy" else quote.bid >= price


def filled(
    state: OrderState, rules: PairRules, price: Decimal, fee_rate: Decimal
) -> tuple[OrderState, dict[str, Decimal]]:
    """The order entirely filled at `price`, and the balance changes (fee in quote)."""
    cost = state.volume * price
    fee = (cost * fee_rate).quantize(FEE_STEP, ROUND_UP)
    sign = 1 if state.side == "buy" else -1
    deltas = {rules.base: sign * state.volume, rules.quote: -sign * cost - fee}
    done = replace(
        state, status="closed", volume_executed=state.volume, cost=cost, fee=fee, avg_price=price
    )
    return done, deltas


class PaperBook:
    """The resting limit orders of one paper account, by client order id."""

    def __init__(self, maker_fee: Decimal, taker_fee: Decimal) -> None:
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.resting: dict[str, tuple[OrderState, Decimal, PairRules]] = {}

    async def place(
        self,
        request: LimitRequest,
        state: OrderState,
        rules: PairRules,
        quote: Quote,
        record: Record,
    ) -> OrderState:
        """Rest, fill (IOC that crosses) or refuse (post-only that would take)."""
        takes = crosses(request.side, request.price, quote)
        if request.post_only and takes:
            raise RejectedError("post-only order would take", POST_ONLY_REFUSED)
        if takes:
            market = quote.ask if request.side == "buy" else quote.bid
            return await record(*filled(state, rules, market, self.taker_fee))
        if request.ioc:
            return await record(replace(state, status="canceled"), {})
        self.resting[request.client_order_id] = (state, request.price, rules)
        return state

    async def match(self, quotes: dict[str, Quote], record: Record) -> None:
        """Fill every resting order the current prices reached, at its own price."""
        for cid, (state, price, rules) in list(self.resting.items()):
            quote = quotes.get(state.pair)
            if quote is not None and crosses(state.side, price, quote):
                del self.resting[cid]
                try:
                    await record(*filled(state, rules, price, self.maker_fee))
                except RejectedError:  # the funds went elsewhere meanwhile: it is cancelled
                    await record(replace(state, status="canceled"), {})

    def amend(self, client_order_id: str, price: Decimal, quote: Quote) -> None:
        """A new price for a resting order; refused if it would take."""
        if client_order_id not in self.resting:
            raise RejectedError(f"no open order {client_order_id}", "EOrder:Unknown order")
        state, _, rules = self.resting[client_order_id]
        if crosses(state.side, price, quote):
            raise RejectedError("post-only amend would take", POST_ONLY_REFUSED)
        self.resting[client_order_id] = (state, price, rules)

    async def cancel(self, client_order_id: str, record: Record) -> None:
        """Take a resting order off the book (recorded as cancelled, nothing filled)."""
        if client_order_id not in self.resting:
            raise RejectedError(f"no open order {client_order_id}", "EOrder:Unknown order")
        state, _, _ = self.resting.pop(client_order_id)
        await record(replace(state, status="canceled"), {})

    def pairs(self) -> list[str]:
        return sorted({state.pair for state, _, _ in self.resting.values()})

    def by_txid(self) -> dict[str, OrderState]:
        return {s.txid: s for s, _, _ in self.resting.values() if s.txid}
