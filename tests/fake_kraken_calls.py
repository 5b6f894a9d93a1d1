"""The fake Kraken's endpoints: market-order matching and the JSON results Kraken returns."""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tests.fake_kraken_book import (
    HEX32,
    UUID36,
    Account,
    KrakenError,
    Order,
    Venue,
    decimal_arg,
    new_txid,
)
from tests.fake_kraken_limits import LimitBook


class Matcher:
    """AddOrder on the venue: Kraken's checks, then an immediate fill at bid/ask."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.limits = LimitBook(venue)

    def add_order(self, account: Account, params: Mapping[str, str]) -> dict[str, Any]:
        """Check, then place (and fill) a market order; validate=true only checks."""
        if params.get("ordertype") not in ("market", "limit"):
            raise KrakenError("EGeneral:Invalid arguments:ordertype")
        side = params.get("type", "")
        if side not in ("buy", "sell"):
            raise KrakenError("EGeneral:Invalid arguments:type")
        key = self.venue.pair_key(params.get("pair", ""))
        row = self.venue.pairs[key]
        volume = self._volume(params, row)
        cl_ord_id, userref = self._ids(account, params)
        if params.get("ordertype") == "limit":  # maker execution (issue 16)
            checked = (key, side, volume, cl_ord_id, userref, self._oflags(params))
            return self.limits.add(account, params, checked)
        price, cost, fee, deltas = self._fill(key, row, side, volume, params)
        descr = {"order": f"{side} {volume:.8f} {row['altname']} @ market"}
        if params.get("validate") in ("true", "1", "True"):
            return {"descr": descr}
        for asset, delta in deltas.items():
            if delta < 0 and self.venue.available(account, asset) + delta < 0:
                raise KrakenError("EOrder:Insufficient funds")
        order = Order(
            txid=new_txid(),
            account=account.key,
            pair=key,
            side=side,
            volume=volume,
            oflags=self._oflags(params),
            cl_ord_id=cl_ord_id,
            userref=userref,
            opentm=time.time(),
            visible_at=time.monotonic() + self.venue.listing_delay,
            placed_at=self.venue.clock(),
        )
        if self.venue.fill_market_orders:
            for asset, delta in deltas.items():
                self.venue.apply(account, asset, delta)
            order.status, order.volume_exec, order.closetm = "closed", volume, time.time()
            order.cost, order.fee, order.price = cost, fee, price
        self.venue.orders.append(order)
        return {"descr": descr, "txid": [order.txid]}

    def _volume(self, params: Mapping[str, str], row: Mapping[str, Any]) -> Decimal:
        volume = decimal_arg(params, "volume")
        exponent = volume.as_tuple().exponent
        if volume <= 0 or (isinstance(exponent, int) and -exponent > row["lot_decimals"]):
            raise KrakenError("EGeneral:Invalid arguments:volume")
        status = row.get("status", "online")
        if status != "online":
            raise KrakenError(f"EService:Market in {status} mode")
        if volume < Decimal(row["ordermin"]):
            raise KrakenError("EOrder:Order minimum not met")
        return volume

    def _ids(self, account: Account, params: Mapping[str, str]) -> tuple[str | None, int | None]:
        cl_ord_id, userref = params.get("cl_ord_id"), params.get("userref")
        if cl_ord_id is not None and userref is not None:
            raise KrakenError("EGeneral:Invalid arguments:cl_ord_id")
        if cl_ord_id is not None:
            short = len(cl_ord_id) <= 18 and cl_ord_id.isascii() and cl_ord_id.isprintable()
            if not (UUID36.match(cl_ord_id) or HEX32.match(cl_ord_id) or short):
                raise KrakenError("EGeneral:Invalid arguments:cl_ord_id")
            if any(
                o.cl_ord_id == cl_ord_id and o.status == "open" and o.account == account.key
                for o in self.venue.orders
            ):
                # Kraken enforces uniqueness among OPEN orders only; the string is a guess.
                raise KrakenError("EOrder:Duplicate order")
        try:
            return cl_ord_id, int(userref) if userref is not None else None
        except ValueError:
            raise KrakenError("EGeneral:Invalid arguments:userref") from None

    def _oflags(self, params: Mapping[str, str]) -> str:
        flags = [f for f in params.get("oflags", "").split(",") if f]
        if "fcib" in flags and "fciq" in flags:
            raise KrakenError("EGeneral:Invalid arguments:oflags")
        return ",".join(flags) if "fcib" in flags or "fciq" in flags else ",".join([*flags, "fciq"])

    def _fill(
        self,
        key: str,
        row: Mapping[str, Any],
        side: str,
        volume: Decimal,
        params: Mapping[str, str],
    ) -> tuple[Decimal, Decimal, Decimal, dict[str, Decimal]]:
        """Price, cost, fee and balance changes of a fill; fee in quote unless fcib."""
        bid, ask = self.venue.prices[key]
        price = ask if side == "buy" else bid
        cost = self.venue.rounded(volume * price, row["cost_decimals"])
        if cost < Decimal(row["costmin"]):
            raise KrakenError("EOrder:Cost minimum not met")
        fee = self.venue.rounded(cost * self.venue.fee_rate, row["cost_decimals"])
        base, quote = row["base"], row["quote"]
        sign = 1 if side == "buy" else -1
        deltas = {base: sign * volume, quote: -sign * cost}
        if "fcib" in self._oflags(params):
            deltas[base] -= self.venue.rounded(volume * self.venue.fee_rate, row["lot_decimals"])
        else:
            deltas[quote] -= fee
        return price, cost, fee, deltas


def _names(params: Mapping[str, str], name: str) -> list[str]:
    return [n for n in params.get(name, "").split(",") if n]


def _amount(amount: Decimal, places: int) -> str:
    """Fixed point with the asset's decimals, or more when rounding would lose digits."""
    step = Decimal(1).scaleb(-places)
    return f"{amount.quantize(step)}" if amount == amount.quantize(step) else f"{amount:f}"


class Endpoints:
    """What each Kraken endpoint answers, from the venue's state."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.matcher = Matcher(venue)

    def public(self, method: str, params: Mapping[str, str]) -> Any:
        """The `result` of a public endpoint."""
        if method == "Time":
            now = int(time.time())
            return {
                "unixtime": now,
                "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now)),
            }
        if method == "SystemStatus":
            return {
                "status": "online",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        if method == "Assets":
            return self.assets(params)
        if method == "AssetPairs":
            keys = [self.venue.pair_key(n) for n in _names(params, "pair")] or list(
                self.venue.pairs
            )
            return {k: self.venue.pairs[k] for k in keys}
        if method == "Ticker":
            keys = [self.venue.pair_key(n) for n in _names(params, "pair")] or list(
                self.venue.prices
            )
            return {k: self.ticker(k) for k in keys}
        raise KrakenError("EGeneral:Unknown method")

    def assets(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Assets, all or those named by id or altname."""
        wanted = _names(params, "asset")
        rows = self.venue.assets
        picked = {
            k: r for k, r in rows.items() if not wanted or k in wanted or r["altname"] in wanted
        }
        if wanted and len(picked) < len(wanted):
            raise KrakenError("EQuery:Unknown asset")
        return picked

    def ticker(self, key: str) -> dict[str, Any]:
        """One Ticker row."""
        bid, ask = self.venue.prices[key]
        return {
            "a": [str(ask), "1", "1.000"],
            "b": [str(bid), "2", "2.000"],
            "c": [str(ask), "0.00150000"],
            "v": ["512.33104512", "1480.91220734"],
            "p": [str(bid), str(bid)],
            "t": [18234, 51277],
            "l": [str(bid), str(bid)],
            "h": [str(ask), str(ask)],
            "o": str(bid),
        }

    def private(self, account: Account, method: str, params: Mapping[str, str]) -> Any:
        """The `result` of a private endpoint."""
        if method == "AddOrder":
            return self.matcher.add_order(account, params)
        if method == "CancelOrder":
            return self.venue.cancel(account, params)
        if method == "AmendOrder":
            return self.matcher.limits.amend(account, params)
        if method == "Balance":
            return {a: _amount(v, self._decimals(a)) for a, v in account.balances.items()}
        if method == "BalanceEx":
            return {a: self._balance_ex(account, a, v) for a, v in account.balances.items()}
        if method == "TradeVolume":
            return self.trade_volume(params)
        if method in ("OpenOrders", "ClosedOrders", "QueryOrders"):
            return self.orders(account, method, params)
        raise KrakenError("EGeneral:Unknown method")

    def _decimals(self, asset: str) -> int:
        return int(self.venue.assets.get(asset, {}).get("decimals", 8))

    def _balance_ex(self, account: Account, asset: str, amount: Decimal) -> dict[str, str]:
        hold = self.venue.row_hold(account, asset)
        places = self._decimals(asset)
        return {"balance": _amount(amount, places), "hold_trade": _amount(hold, places)}

    def trade_volume(self, params: Mapping[str, str]) -> dict[str, Any]:
        """30-day volume and, per pair asked for, the fee tier."""
        keys = [self.venue.pair_key(n) for n in _names(params, "pair")]
        percent = f"{self.venue.fee_rate * 100:.4f}"
        fee = {
            "fee": percent,
            "minfee": "0.1000",
            "maxfee": percent,
            "nextfee": None,
            "tiervolume": "0.0000",
            "nextvolume": None,
        }
        maker = {**fee, "fee": f"{self.venue.fee_rate * 100 * 6 / 10:.4f}"}
        return {
            "currency": "ZUSD",
            "volume": "0.0000",
            "fees": {k: fee for k in keys},
            "fees_maker": {k: maker for k in keys},
        }

    def orders(self, account: Account, method: str, params: Mapping[str, str]) -> dict[str, Any]:
        """OpenOrders / ClosedOrders / QueryOrders, filtered like Kraken's."""
        seen = self.venue.visible(account)
        if method == "QueryOrders":
            txids = _names(params, "txid")
            if not txids:
                raise KrakenError("EGeneral:Invalid arguments:txid")
            found = {o.txid: o for o in seen if o.txid in txids}
            if len(found) < len(txids):
                raise KrakenError("EOrder:Invalid order")
            return {t: self.venue.record(found[t]) for t in txids}
        picked = [o for o in seen if _matches(o, params)]
        if method == "OpenOrders":
            return {
                "open": {
                    o.txid: self.venue.record(o) for o in picked if o.status in ("pending", "open")
                }
            }
        closed = sorted(
            (o for o in picked if o.status not in ("pending", "open")), key=lambda o: -o.opentm
        )
        offset = int(params.get("ofs", "0"))
        page = closed[offset : offset + 50]
        return {"closed": {o.txid: self.venue.record(o) for o in page}, "count": len(closed)}


def _matches(order: Order, params: Mapping[str, str]) -> bool:
    if "cl_ord_id" in params and order.cl_ord_id != params["cl_ord_id"]:
        return False
    return not ("userref" in params and str(order.userref) != params["userref"])
