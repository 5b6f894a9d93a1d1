"""Kraken JSON results to base.py's typed values, with Decimal throughout."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from rebalancerd.exchange.names import AssetNames
from rebalancerd.exchange.protocol import Balances, OrderState, OrderStatus, PairRules, Quote, Side

STATUSES: frozenset[str] = frozenset({"pending", "open", "closed", "canceled", "expired"})


def dec(value: Any) -> Decimal:
    """A Decimal from a Kraken number (string, int or Decimal); floats are refused."""
    if isinstance(value, float):
        raise TypeError("floats are not money: parse JSON with parse_float=Decimal")
    try:
        return Decimal(value if isinstance(value, Decimal | int) else str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def format_volume(volume: Decimal, lot_decimals: int) -> str | None:
    """`volume` as fixed-point text with exactly `lot_decimals` places, or None if it has more."""
    try:
        rounded = volume.quantize(Decimal(1).scaleb(-lot_decimals))
    except InvalidOperation:  # more digits than the context holds
        return None
    if rounded != volume:
        return None
    return format(rounded, "f")


def pair_rules(key: str, row: Mapping[str, Any], base: str, quote: str) -> PairRules:
    """One AssetPairs row as PairRules with plain symbols."""
    pair_decimals = int(row["pair_decimals"])
    tick = row.get("tick_size")
    return PairRules(
        pair=key,
        altname=str(row.get("altname", key)),
        base=base,
        quote=quote,
        ordermin=dec(row.get("ordermin", 0)),
        costmin=dec(row.get("costmin", 0)),
        lot_decimals=int(row["lot_decimals"]),
        pair_decimals=pair_decimals,
        tick_size=dec(tick) if tick is not None else Decimal(1).scaleb(-pair_decimals),
        # Kraken omits status on some pairs; it still refuses orders a closed market can't take.
        status=str(row.get("status", "online")),
    )


def quote(pair: str, row: Mapping[str, Any], observed_at: datetime) -> Quote:
    """One Ticker row (a=ask, b=bid, c=last trade) as a Quote."""
    return Quote(
        pair=pair,
        bid=dec(row["b"][0]),
        ask=dec(row["a"][0]),
        last=dec(row["c"][0]),
        observed_at=observed_at,
    )


def balances(rows: Mapping[str, Mapping[str, Any]], names: AssetNames) -> Balances:
    """BalanceEx rows: available = balance - hold_trade, Rewards (.F) rows included."""
    # Credit lines are borrowed money: never counted as spendable.
    return Balances.from_rows(
        (names.plain(asset_id), dec(row.get("balance", 0)), dec(row.get("hold_trade", 0)))
        for asset_id, row in rows.items()
    )


def order_state(txid: str, row: Mapping[str, Any], pair: str) -> OrderState:
    """One OpenOrders/ClosedOrders/QueryOrders record as an OrderState."""
    descr = row.get("descr") or {}
    status = str(row.get("status", "pending"))
    return OrderState(
        client_order_id=str(row.get("cl_ord_id") or ""),
        txid=txid,
        pair=pair,
        side=cast(Side, descr.get("type", "buy")),
        # An unknown status is treated as not final, so the caller looks again.
        status=cast(OrderStatus, status if status in STATUSES else "pending"),
        volume=dec(row.get("vol", 0)),
        volume_executed=dec(row.get("vol_exec", 0)),
        cost=dec(row.get("cost", 0)),
        fee=dec(row.get("fee", 0)),
        avg_price=dec(row.get("price", 0)),
    )


def newest(orders: Mapping[str, Mapping[str, Any]]) -> tuple[str, Mapping[str, Any]] | None:
    """The most recently opened order of an OpenOrders/ClosedOrders map."""
    if not orders:
        return None
    return max(orders.items(), key=lambda item: dec(item[1].get("opentm", 0)))


def fee_rates(result: Mapping[str, Any]) -> dict[str, Decimal]:
    """TradeVolume's taker fees by pair key, as fractions (Kraken sends percent)."""
    fees = result.get("fees") or {}
    return {pair: dec(row["fee"]) / 100 for pair, row in fees.items() if "fee" in row}
