"""Maker execution on Kraken (issue 16): AddOrder limit (post-only or IOC) and AmendOrder."""

from __future__ import annotations

from decimal import Decimal

from rebalancerd.exchange.kraken import parse
from rebalancerd.exchange.kraken.errors import KrakenFailure, to_error
from rebalancerd.exchange.kraken.meta import PairTable
from rebalancerd.exchange.kraken.transport import KrakenTransport
from rebalancerd.exchange.maker import LimitRequest, amend_cost
from rebalancerd.exchange.protocol import OrderRequest, RejectedError


def limit_params(table: PairTable, request: LimitRequest) -> tuple[str, dict[str, str]]:
    """(pair key, AddOrder parameters) of a limit order; a volume or price off-grid is refused."""
    key = _key(table, request.pair)
    row = table.rows[key]
    volume = parse.format_volume(request.volume, int(row["lot_decimals"]))
    if volume is None or request.volume <= 0:
        message = f"volume {request.volume} is not a positive multiple of {key}'s lot size"
        raise RejectedError(message, "EGeneral:Invalid arguments:volume")
    params = {
        "ordertype": "limit",
        "type": request.side,
        "volume": volume,
        "price": price_text(table, key, request.price),
        "pair": key,
        "cl_ord_id": request.client_order_id,
        # fee in EUR, so cost and fee are both quote amounts; post: rest or be refused.
        "oflags": "post,fciq" if request.post_only else "fciq",
    }
    if request.ioc:
        params["timeinforce"] = "IOC"
    return key, params


def as_order_request(request: LimitRequest) -> OrderRequest:
    """What the AddOrder placer needs to look an ambiguous order up."""
    return OrderRequest(request.pair, request.side, request.volume, request.client_order_id)


def price_text(table: PairTable, key: str, price: Decimal) -> str:
    """The price with the pair's decimals; a price off its grid is refused, never rounded."""
    text = parse.format_volume(price, int(table.rows[key]["pair_decimals"]))
    if text is None or price <= 0:
        raise RejectedError(
            f"price {price} is off {key}'s grid", "EGeneral:Invalid arguments:price"
        )
    return text


async def amend(
    http: KrakenTransport,
    table: PairTable,
    client_order_id: str,
    pair: str,
    price: Decimal,
    age: float,
) -> None:
    """AmendOrder: a new limit price for a resting post-only order; txid and cl_ord_id stay."""
    key = _key(table, pair)
    params = {
        "cl_ord_id": client_order_id,
        "limit_price": price_text(table, key, price),
        "post_only": "true",
    }
    try:
        await http.private("AmendOrder", params, pair=key, cost=amend_cost(age))
    except KrakenFailure as failure:
        raise to_error(failure) from None


def _key(table: PairTable, pair: str) -> str:
    key = table.key_of(pair)
    if key is None:
        raise RejectedError(f"unknown pair {pair}", "EQuery:Unknown asset pair")
    return key
