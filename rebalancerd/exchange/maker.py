"""Maker execution's view of an exchange (issue 16): post-only and IOC limit orders, amending a
resting order's price, and how much of the pair's trading counter is left."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from rebalancerd.exchange.protocol import Exchange, ExchangeError, OrderState, Side

POST_ONLY_REFUSED = "EOrder:Post only order"  # Kraken's answer when a post-only order would take

# Points an amend and a cancel add to the pair's trading counter, by the order's age in seconds
# (Kraken's table; the paper account has no counter).
AMEND_EXTRA = ((5.0, 3.0), (10.0, 2.0), (15.0, 1.0))
CANCEL_COST = ((5.0, 8.0), (10.0, 6.0), (15.0, 5.0), (45.0, 4.0), (90.0, 2.0), (300.0, 1.0))


def amend_cost(age: float) -> float:
    """What an AmendOrder of an order `age` seconds old adds to the pair's counter."""
    return 1.0 + next((cost for limit, cost in AMEND_EXTRA if age < limit), 0.0)


def cancel_cost(age: float) -> float:
    """What a CancelOrder of an order `age` seconds old adds to the pair's counter."""
    return next((cost for limit, cost in CANCEL_COST if age < limit), 0.0)


@dataclass(frozen=True)
class LimitRequest:
    """A limit order: post-only (rests or is refused) or IOC (fills what it can, at once)."""

    pair: str
    side: Side
    volume: Decimal
    price: Decimal
    client_order_id: str
    post_only: bool = True
    ioc: bool = False


def would_take(error: ExchangeError) -> bool:
    """True when a post-only order or amend was refused because it would have taken."""
    return (error.code or "").startswith(POST_ONLY_REFUSED)


@runtime_checkable
class MakerExchange(Exchange, Protocol):
    """An exchange that can rest orders: the Kraken client and the paper account."""

    async def place_limit(self, request: LimitRequest) -> OrderState:
        """Place a limit order with its client order id; never sent twice (as place_order)."""
        ...

    async def amend_price(
        self, client_order_id: str, pair: str, price: Decimal, age: float
    ) -> None:
        """Move a resting post-only order to `price`, keeping its id (`age`: seconds on book)."""
        ...

    def trading_room(self, pair: str) -> float:
        """Points left on the pair's trading counter before the exchange refuses a call."""
        ...
