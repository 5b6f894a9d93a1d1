"""Value types of a rebalance plan, and how they read as JSON and as sentences."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic.alias_generators import to_camel

from rebalancerd.decimals import exact
from rebalancerd.exchange.protocol import Side

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class PortfolioRules:
    """Target weights (percent, summing to 100) and the limits of one rebalance."""

    target_weights: Mapping[str, Decimal]
    threshold: Decimal = ZERO  # min EUR deviation of an asset before it is traded
    max_orders: int | None = None
    band_abs: Decimal | None = None  # percentage points
    band_rel: Decimal | None = None  # percent of the target weight
    max_quote_age: timedelta = timedelta(minutes=2)
    max_spread: Decimal = Decimal("0.02")  # (ask - bid) / mid
    # ----- safety controls -----
    sell_mode: Literal["allow", "never"] = "allow"  # never: only buy, with the cash there is
    max_trade_percent: Decimal | None = None  # all orders' value, both sides, % of the value
    max_trade_value: Decimal | None = None  # the same in EUR ([safety] max_trade_value_eur)


@dataclass(frozen=True)
class PlannedOrder:
    """One market order to place, priced where it is expected to fill."""

    symbol: str
    pair: str
    side: Side
    volume: Decimal  # base units, rounded down to the pair's lot_decimals
    price: Decimal  # expected fill: bid for sells, ask for buys
    value: Decimal  # volume * price, EUR
    fee: Decimal  # value * fee rate, EUR
    deviation: Decimal  # |target - current| of the asset before the plan, EUR at mid


@dataclass(frozen=True)
class Skip:
    """An order the plan wanted but will not send, and why."""

    symbol: str
    side: Side
    value: Decimal  # EUR
    reason: str


@dataclass(frozen=True)
class Plan:
    """The outcome of planning one rebalance; `aborted` says why nothing may be traded."""

    value: Decimal
    current_weights: Mapping[str, Decimal]
    target_weights: Mapping[str, Decimal]
    expected_weights: Mapping[str, Decimal]
    orders: tuple[PlannedOrder, ...] = ()
    skipped: tuple[Skip, ...] = ()
    estimated_fees: Decimal = ZERO
    cash_reserve: Decimal = ZERO  # EUR the cash share keeps; buys never spend it
    aborted: str | None = None
    notes: tuple[str, ...] = ()  # what a person should know (e.g. the plan was capped)

    @property
    def sells(self) -> tuple[PlannedOrder, ...]:
        """The sell orders, which go first."""
        return tuple(o for o in self.orders if o.side == "sell")

    @property
    def buys(self) -> tuple[PlannedOrder, ...]:
        """The buy orders, to be re-sized with size_buys once the sells have filled."""
        return tuple(o for o in self.orders if o.side == "buy")

    @property
    def traded_value(self) -> Decimal:
        """EUR value of all orders, both sides."""
        return sum_of(o.value for o in self.orders)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: camelCase keys, Decimals as plain strings."""
        return {**_jsonable(self), "tradedValue": _jsonable(self.traded_value)}


def sum_of(amounts: Iterable[Decimal]) -> Decimal:
    """The Decimal sum, Decimal(0) when empty (never the int 0)."""
    return sum(amounts, ZERO)


def _jsonable(item: Any) -> Any:
    """Dataclasses, mappings and tuples as JSON types; Decimals as exact plain strings."""
    if isinstance(item, Decimal):
        return exact(item)
    if is_dataclass(item) and not isinstance(item, type):
        return {to_camel(f.name): _jsonable(getattr(item, f.name)) for f in fields(item)}
    if isinstance(item, Mapping):
        return {str(k): _jsonable(v) for k, v in item.items()}
    if isinstance(item, tuple):
        return [_jsonable(v) for v in item]
    return item
