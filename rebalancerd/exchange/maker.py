"""Maker execution's view of an exchange (issue 16): post-only and IOC limit orders, amending a
resting order's price, and how much of the pair's trading counter is left."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from rebalancerd.exchange.protocol import Exchange, ExchangeError, OrderState, Side

POST_ONLY_REFUSED = "EOrder:Post only order"  # Kraken's answer when a post-only order would take


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
