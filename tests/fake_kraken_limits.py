"""The fake Kraken's limit orders (maker execution, issue 16): post-only and IOC AddOrder,
AmendOrder, and a top-of-book that fills resting orders when the price crosses them."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tests.fake_kraken_book import Account, KrakenError, Order, Venue, decimal_arg, new_txid

POST_ONLY = "EOrder:Post only order"


def price_arg(params: Mapping[str, str], name: str, row: Mapping[str, Any]) -> Decimal:
    """A limit price on the pair's grid (Kraken refuses more decimals than pair_decimals)."""
    price = decimal_arg(params, name)
    exponent = price.as_tuple().exponent
    if price <= 0 or (isinstance(exponent, int) and -exponent > int(row["pair_decimals"])):
        raise KrakenError(f"EGeneral:Invalid arguments:{name}")
    return price


def would_take(venue: Venue, pair: str, side: str, price: Decimal) -> bool:
    bid, ask = venue.prices[pair]
    return price >= ask if side == "buy" else price <= bid


class LimitBook:
    """Limit orders on the venue; resting ones fill at their own price when crossed."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue

    def add(
        self,
        account: Account,
        params: Mapping[str, str],
        checked: tuple[str, str, Decimal, str | None, int | None, str],
    ) -> dict[str, Any]:
        """AddOrder ordertype=limit; `checked`: (pair, side, volume, cl_ord_id, userref, oflags)."""
        key, side, volume, cl_ord_id, userref, oflags = checked
        row = self.venue.pairs[key]
        price = price_arg(params, "price", row)
        if volume * price < Decimal(row["costmin"]):
            raise KrakenError("EOrder:Cost minimum not met")
        post = "post" in oflags.split(",")
        ioc = params.get("timeinforce", "GTC") == "IOC"
        if post and would_take(self.venue, key, side, price):
            raise KrakenError(POST_ONLY)
        descr = {"order": f"{side} {volume:.8f} {row['altname']} @ limit {price}"}
        if params.get("validate") in ("true", "1", "True"):
            return {"descr": descr}
        self._check_funds(account, key, side, volume, price)
        order = Order(
            txid=new_txid(),
            account=account.key,
            pair=key,
            side=side,
            volume=volume,
            oflags=oflags,
            cl_ord_id=cl_ord_id,
            userref=userref,
            opentm=time.time(),
            visible_at=time.monotonic() + self.venue.listing_delay,
            ordertype="limit",
            limit_price=price,
            placed_at=self.venue.clock(),
        )
        self.venue.orders.append(order)
        if would_take(self.venue, key, side, price):
            bid, ask = self.venue.prices[key]
            self.fill(order, volume, ask if side == "buy" else bid, maker=False)
        if ioc and order.status == "open":
            order.status, order.closetm = "canceled", time.time()
        return {"descr": descr, "txid": [order.txid]}

    def _check_funds(
        self, account: Account, key: str, side: str, volume: Decimal, price: Decimal
    ) -> None:
        row = self.venue.pairs[key]
        if side == "sell":
            asset, need = row["base"], volume
        else:
            asset, need = row["quote"], volume * price * (1 + self.venue.fee_rate)
        if self.venue.available(account, asset) < need:
            raise KrakenError("EOrder:Insufficient funds")

    def amend(self, account: Account, params: Mapping[str, str]) -> dict[str, Any]:
        """AmendOrder: a new limit price (and quantity); txid and cl_ord_id stay."""
        order = self.venue.open_order(account, params)
        row = self.venue.pairs[order.pair]
        if order.limit_price is None:
            raise KrakenError("EGeneral:Invalid arguments:ordertype")
        price = price_arg(params, "limit_price", row) if "limit_price" in params else None
        if price is not None:
            post = params.get("post_only") in ("true", "1", "True") or "post" in order.oflags
            if post and would_take(self.venue, order.pair, order.side, price):
                raise KrakenError(POST_ONLY)
            order.limit_price = price
        if "order_qty" in params:
            qty = decimal_arg(params, "order_qty")
            if qty <= order.volume_exec:
                raise KrakenError("EGeneral:Invalid arguments:order_qty")
            order.volume = qty
        order.misc = "amended"
        self.cross(order.pair)
        return {"amend_id": "T" + secrets.token_hex(8).upper()}

    def cross(self, pair: str) -> None:
        """Fill every resting order of `pair` the current bid/ask reached, at its own price."""
        bid, ask = self.venue.prices[pair]
        for order in self.venue.orders:
            if order.pair != pair or order.status != "open" or order.limit_price is None:
                continue
            reached = ask <= order.limit_price if order.side == "buy" else bid >= order.limit_price
            if reached:
                left = order.volume - order.volume_exec
                self.fill(order, left * self.venue.fill_fraction, order.limit_price, maker=True)

    def fill(self, order: Order, volume: Decimal, price: Decimal, *, maker: bool) -> None:
        """Execute `volume` of an order at `price` (rounded to the lot), balances included."""
        row = self.venue.pairs[order.pair]
        volume = min(
            self.venue.rounded(volume, row["lot_decimals"]), order.volume - order.volume_exec
        )
        if volume <= 0:
            return
        cost = self.venue.rounded(volume * price, row["cost_decimals"])
        rate = self.venue.maker_fee_rate if maker else self.venue.fee_rate
        fee = self.venue.rounded(cost * rate, row["cost_decimals"])
        account = self.venue.accounts[order.account]
        sign = 1 if order.side == "buy" else -1
        self.venue.apply(account, row["base"], sign * volume)
        self.venue.apply(account, row["quote"], -sign * cost - fee)
        # The average of the fill prices themselves: the cost is rounded, the prices are not.
        order.price = (order.price * order.volume_exec + price * volume) / (
            order.volume_exec + volume
        )
        order.volume_exec += volume
        order.cost += cost
        order.fee += fee
        if order.volume_exec >= order.volume:
            order.status, order.closetm = "closed", time.time()
