"""Default venue data for the fake Kraken: Kraken's asset ids, pair keys, rules and prices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def _asset(altname: str, decimals: int, display: int) -> dict[str, Any]:
    return {
        "aclass": "currency",
        "altname": altname,
        "decimals": decimals,
        "display_decimals": display,
        "collateral_value": "1.0",
        "status": "enabled",
    }


ASSETS: dict[str, dict[str, Any]] = {
    "XXBT": _asset("XBT", 10, 5),
    "XETH": _asset("ETH", 10, 5),
    "SOL": _asset("SOL", 10, 5),
    "ADA": _asset("ADA", 8, 6),
    "XXDG": _asset("XDG", 8, 2),
    "XXRP": _asset("XRP", 8, 5),
    "XTZ": _asset("XTZ", 8, 4),
    "DOT": _asset("DOT", 10, 8),
    "USDT": _asset("USDT", 8, 4),
    "ZEUR": _asset("EUR", 4, 2),
    "ZUSD": _asset("USD", 4, 2),
    "DOT.S": _asset("DOT.S", 10, 8),
    "XBT.M": _asset("XBT.M", 10, 5),
    "ETH.F": _asset("ETH.F", 10, 5),
    "XBT.F": _asset("XBT.F", 10, 5),
    "SOL.F": _asset("SOL.F", 10, 5),
    "EUR.F": _asset("EUR.F", 4, 2),
}


def _pair(
    key: str,
    altname: str,
    wsname: str,
    base: str,
    quote: str,
    *,
    ordermin: str,
    pair_decimals: int,
    cost_decimals: int = 5,
    lot_decimals: int = 8,
    costmin: str = "0.45",
) -> dict[str, Any]:
    return {
        "altname": altname,
        "wsname": wsname,
        "aclass_base": "currency",
        "base": base,
        "aclass_quote": "currency",
        "quote": quote,
        "lot": "unit",
        "cost_decimals": cost_decimals,
        "pair_decimals": pair_decimals,
        "lot_decimals": lot_decimals,
        "lot_multiplier": 1,
        "leverage_buy": [],
        "leverage_sell": [],
        "fees": [],
        "fees_maker": [],
        "fee_volume_currency": "ZUSD",
        "margin_call": 80,
        "margin_stop": 40,
        "ordermin": ordermin,
        "costmin": costmin,
        "tick_size": str(Decimal(1).scaleb(-pair_decimals)),
        "status": "online",
    }


PAIRS: dict[str, dict[str, Any]] = {
    "XXBTZEUR": _pair(
        "XXBTZEUR", "XBTEUR", "XBT/EUR", "XXBT", "ZEUR", ordermin="0.00005", pair_decimals=1
    ),
    "XXBTZUSD": _pair(
        "XXBTZUSD", "XBTUSD", "XBT/USD", "XXBT", "ZUSD", ordermin="0.00005", pair_decimals=1
    ),
    "XETHZEUR": _pair(
        "XETHZEUR", "ETHEUR", "ETH/EUR", "XETH", "ZEUR", ordermin="0.001", pair_decimals=2
    ),
    "SOLEUR": _pair("SOLEUR", "SOLEUR", "SOL/EUR", "SOL", "ZEUR", ordermin="0.06", pair_decimals=2),
    "ADAEUR": _pair(
        "ADAEUR",
        "ADAEUR",
        "ADA/EUR",
        "ADA",
        "ZEUR",
        ordermin="15",
        pair_decimals=6,
        cost_decimals=8,
    ),
    "XDGEUR": _pair(
        "XDGEUR",
        "XDGEUR",
        "XDG/EUR",
        "XXDG",
        "ZEUR",
        ordermin="40",
        pair_decimals=7,
        cost_decimals=8,
    ),
    "XXRPZEUR": _pair(
        "XXRPZEUR", "XRPEUR", "XRP/EUR", "XXRP", "ZEUR", ordermin="10", pair_decimals=5
    ),
    "XTZEUR": _pair("XTZEUR", "XTZEUR", "XTZ/EUR", "XTZ", "ZEUR", ordermin="5", pair_decimals=4),
    "DOTEUR": _pair("DOTEUR", "DOTEUR", "DOT/EUR", "DOT", "ZEUR", ordermin="1", pair_decimals=4),
    "USDTZEUR": _pair(
        "USDTZEUR", "USDTEUR", "USDT/EUR", "USDT", "ZEUR", ordermin="5", pair_decimals=4
    ),
}

# (bid, ask) per pair key.
PRICES: dict[str, tuple[str, str]] = {
    "XXBTZEUR": ("91234.4", "91234.5"),
    "XXBTZUSD": ("99000.0", "99000.1"),
    "XETHZEUR": ("3101.44", "3101.45"),
    "SOLEUR": ("142.36", "142.37"),
    "ADAEUR": ("0.194700", "0.194774"),
    "XDGEUR": ("0.1500000", "0.1500400"),
    "XXRPZEUR": ("0.55000", "0.55020"),
    "XTZEUR": ("0.9000", "0.9008"),
    "DOTEUR": ("6.0000", "6.0020"),
    "USDTZEUR": ("0.9200", "0.9201"),
}

BALANCES: dict[str, str] = {
    "ZEUR": "10000.0000",
    "XXBT": "0.0500000000",
    "XETH": "1.2500000000",
    "SOL": "10.0000000000",
    "ADA": "1500.00000000",
    "DOT.S": "25.0000000000",
    "XBT.M": "0.0100000000",
}
