"""What the executor needs from an exchange: typed values, one Protocol, an error tree."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from rebalancerd.exchange.names import holding_of

Side = Literal["buy", "sell"]
# pending/open: on the book; closed: filled; canceled/expired: off the book (maybe partly filled).
OrderStatus = Literal["pending", "open", "closed", "canceled", "expired"]


@dataclass(frozen=True)
class PairRules:
    """Trading rules of one spot pair, with plain symbols (BTC, EUR), never Kraken's XXBT."""

    pair: str  # the exchange's pair key, sent back on orders and ticker calls (XXBTZEUR)
    altname: str  # XBTEUR
    base: str  # plain symbol: BTC
    quote: str  # plain symbol: EUR
    ordermin: Decimal  # minimum volume, base units
    costmin: Decimal  # minimum cost, quote units
    lot_decimals: int  # volume precision
    pair_decimals: int  # price precision
    tick_size: Decimal
    status: str  # online | cancel_only | post_only | limit_only | reduce_only

    @property
    def tradable(self) -> bool:
        return self.status == "online"


@dataclass(frozen=True)
class Quote:
    """Best bid/ask of a pair, and when it was observed (for staleness checks)."""

    pair: str
    bid: Decimal
    ask: Decimal
    last: Decimal
    observed_at: datetime


@dataclass(frozen=True)
class Balances:
    """Spendable amounts per plain symbol, and what is held, staked or locked (never sold)."""

    tradable: dict[str, Decimal]
    locked: dict[str, Decimal] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, Decimal, Decimal]]) -> Balances:
        """From (plain symbol, balance, held) rows: spot and Rewards (.F) rows pool by asset."""
        totals: dict[str, Decimal] = {}
        held: dict[str, Decimal] = {}
        locked: dict[str, Decimal] = {}
        for symbol, amount, hold in rows:
            asset = holding_of(symbol)
            if asset is None:  # bonded (.S, .M, .B, .P, unknown): counted apart, never sold
                _add(locked, symbol, amount)
                continue
            _add(totals, asset, amount)
            _add(held, asset, hold)
        for asset, hold in held.items():
            # A hold may exceed one row (it can draw on the .F row too): never below zero.
            if hold > 0:
                _add(locked, asset, min(hold, totals[asset]))
        return cls(
            tradable={a: max(total - held[a], Decimal(0)) for a, total in totals.items()},
            locked={s: a for s, a in locked.items() if a},
        )


def _add(into: dict[str, Decimal], symbol: str, amount: Decimal) -> None:
    into[symbol] = into.get(symbol, Decimal(0)) + amount


@dataclass(frozen=True)
class OrderRequest:
    """A market order. `validate` asks the exchange to check it without placing it."""

    pair: str
    side: Side
    volume: Decimal
    client_order_id: str
    validate: bool = False


@dataclass(frozen=True)
class OrderState:
    """What the exchange says about one order. Fills are in quote currency (EUR)."""

    client_order_id: str
    txid: str | None
    pair: str
    side: Side
    status: OrderStatus
    volume: Decimal
    volume_executed: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)

    @property
    def done(self) -> bool:
        """True when the order can change no more."""
        return self.status in ("closed", "canceled", "expired")


class Exchange(Protocol):
    """The few calls a rebalance makes. Implemented by the Kraken client and the paper account."""

    async def balances(self) -> Balances:
        """Spendable and locked balances of the account, by plain symbol."""
        ...

    async def pair_rules(self, bases: Sequence[str], quote: str) -> dict[str, PairRules]:
        """Rules of the BASE/QUOTE pairs that exist, keyed by plain base symbol."""
        ...

    async def tickers(self, pairs: Sequence[str]) -> dict[str, Quote]:
        """Quotes for many pairs in one call, keyed by the pair key asked for."""
        ...

    async def fee_rate(self, pair: str) -> Decimal:
        """Taker fee of a market order on `pair`, as a fraction (0.0026 = 0.26 %)."""
        ...

    async def place_order(self, request: OrderRequest) -> OrderState:
        """Place a market order carrying its client order id; never sent twice.

        An ambiguous reply (timeout, 5xx, EService) is resolved by looking the order up by
        client order id; AmbiguousOrderError is raised only if it still cannot be known.
        """
        ...

    async def find_order(self, client_order_id: str) -> OrderState | None:
        """The order with this client order id, open or closed, or None if never placed."""
        ...

    async def query_orders(self, txids: Sequence[str]) -> dict[str, OrderState]:
        """Orders by exchange id."""
        ...

    async def cancel_order(self, client_order_id: str) -> None:
        """Cancel an open order by client order id."""
        ...

    async def warm(self) -> None:
        """Fetch what a run needs and is missing or stale (metadata, fees), ahead of the run.

        The scheduler may call it shortly before an account's next due slot, so the run pays no
        round trip for them. Never raises: a failure is logged and the run does without.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class ExchangeError(Exception):
    """Base of exchange failures; `code` is the exchange's error string when there is one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class RetryableError(ExchangeError):
    """Nothing happened; the same call may be tried again after a pause."""

    def __init__(self, message: str, code: str | None = None, retry_after: float | None = None):
        super().__init__(message, code)
        self.retry_after = retry_after


class RejectedError(ExchangeError):
    """The exchange refused the request (minimums, funds, arguments, market status)."""


class FatalError(ExchangeError):
    """The account cannot be used as configured (bad key, signature, permission)."""


class AmbiguousOrderError(ExchangeError):
    """An order may or may not have been placed, and a look-up could not tell yet."""

    def __init__(self, message: str, client_order_id: str, code: str | None = None) -> None:
        super().__init__(message, code)
        self.client_order_id = client_order_id
