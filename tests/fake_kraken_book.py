"""The fake Kraken's venue: accounts, balances, rules, market-order matching, order records."""

from __future__ import annotations

import copy
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from tests import fake_kraken_data as data

FIXED_POINT = re.compile(r"^\d+(\.\d+)?$")
UUID36 = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
TIERS = {
    "starter": (15, 0.33, 60, 1.0),
    "intermediate": (20, 0.5, 125, 2.34),
    "pro": (20, 1.0, 180, 3.75),
}
HEAVY = {"Ledgers", "QueryLedgers", "TradesHistory", "QueryTrades"}
CANCEL_COSTS = ((5, 8), (10, 6), (15, 5), (45, 4), (90, 2), (300, 1))
AMEND_EXTRA = ((5, 3), (10, 2), (15, 1))


class KrakenError(Exception):
    """A Kraken error string, answered as {"error": [code]}."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Counter:
    """Kraken's decaying call counter (written apart from the client's model on purpose)."""

    limit: float
    decay: float
    value: float = 0.0
    at: float = 0.0

    def try_add(self, cost: float, now: float) -> bool:
        level = max(0.0, self.value - (now - self.at) * self.decay)
        if level + cost > self.limit:
            return False
        self.value, self.at = level + cost, now
        return True


@dataclass
class Account:
    """One API key's account."""

    key: str
    secret: str
    balances: dict[str, Decimal]
    tier: str = "starter"  # may be changed any time: counters follow
    last_nonce: int = 0
    counters: dict[str, Counter] = field(default_factory=dict)

    @property
    def rest(self) -> Counter:
        rest_max, rest_decay, _, _ = TIERS[self.tier]
        return self.counters.setdefault(f"REST:{self.tier}", Counter(rest_max, rest_decay))

    def trade_counter(self, pair: str) -> Counter:
        _, _, trade_max, trade_decay = TIERS[self.tier]
        return self.counters.setdefault(f"{pair}:{self.tier}", Counter(trade_max, trade_decay))


@dataclass
class Order:
    """An order placed on the fake venue."""

    txid: str
    account: str
    pair: str
    side: str
    volume: Decimal
    oflags: str
    cl_ord_id: str | None
    userref: int | None
    opentm: float
    visible_at: float
    status: str = "open"
    volume_exec: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    price: Decimal = Decimal(0)
    closetm: float | None = None
    # limit orders (maker execution, issue 16)
    ordertype: str = "market"
    limit_price: Decimal | None = None
    placed_at: float = 0.0  # the venue's clock: what Kraken's counter ages are measured on
    misc: str = ""

    def record(self, altname: str) -> dict[str, Any]:
        """The order as OpenOrders/ClosedOrders/QueryOrders show it."""
        row: dict[str, Any] = {
            "refid": None,
            "userref": self.userref,
            "cl_ord_id": self.cl_ord_id,
            "status": self.status,
            "opentm": self.opentm,
            "starttm": 0,
            "expiretm": 0,
            "descr": {
                "pair": altname,
                "type": self.side,
                "ordertype": self.ordertype,
                "price": str(self.limit_price or 0),
                "price2": "0",
                "leverage": "none",
                "order": f"{self.side} {self.volume:.8f} {altname} @ {self._at()}",
                "close": "",
            },
            "vol": f"{self.volume:.8f}",
            "vol_exec": f"{self.volume_exec:.8f}",
            "cost": str(self.cost),
            "fee": str(self.fee),
            "price": str(self.price),
            "stopprice": "0.00000",
            "limitprice": "0.00000",
            "misc": self.misc,
            "oflags": self.oflags,
        }
        if self.closetm is not None:
            row["closetm"], row["reason"] = self.closetm, None
        return row

    def _at(self) -> str:
        return "market" if self.limit_price is None else f"limit {self.limit_price}"


def new_txid() -> str:
    """A Kraken-shaped txid."""
    raw = secrets.token_hex(8).upper()
    return f"O{raw[:5]}-{raw[5:10]}-{raw[10:16]}"


def decimal_arg(params: Mapping[str, str], name: str) -> Decimal:
    """A fixed-point decimal argument; exponents (5e-7), signs and junk are refused."""
    text = params.get(name, "")
    if not FIXED_POINT.match(text):
        raise KrakenError(f"EGeneral:Invalid arguments:{name}")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise KrakenError(f"EGeneral:Invalid arguments:{name}") from None


class Venue:
    """State and rules of the fake exchange; HTTP lives in fake_kraken.py."""

    def __init__(self, clock: Callable[[], float], fee_rate: Decimal) -> None:
        self.clock = clock  # drives the rate counters (may run faster than real time)
        self.fee_rate = fee_rate
        self.assets = copy.deepcopy(data.ASSETS)
        self.pairs = copy.deepcopy(data.PAIRS)
        self.prices = {k: (Decimal(b), Decimal(a)) for k, (b, a) in data.PRICES.items()}
        self.accounts: dict[str, Account] = {}
        self.orders: list[Order] = []
        self.rate_limits = True
        self.fill_market_orders = True
        self.listing_delay = 0.0  # seconds before a new order shows in order look-ups
        self.maker_fee_rate = fee_rate * 6 / 10  # what a resting order pays when it fills
        self.fill_fraction = Decimal(1)  # share of a resting order's rest filled per crossing

    def pair_key(self, name: str) -> str:
        """The pair key for a key, altname or wsname."""
        for key, row in self.pairs.items():
            if name in (key, row["altname"], row["wsname"]):
                return key
        raise KrakenError("EQuery:Unknown asset pair")

    def charge(self, account: Account, method: str, params: Mapping[str, str]) -> None:
        """Count the call against the REST or trading counter; refuse it when full."""
        if not self.rate_limits:
            return
        now = self.clock()
        if method in ("AddOrder", "CancelOrder", "AmendOrder"):
            self._charge_trading(account, method, params, now)
        elif not account.rest.try_add(2.0 if method in HEAVY else 1.0, now):
            raise KrakenError("EAPI:Rate limit exceeded")

    def _charge_trading(
        self, account: Account, method: str, params: Mapping[str, str], now: float
    ) -> None:
        if method == "AddOrder":
            pair, cost = self.pair_key(params.get("pair", "")), 1.0
        elif method == "AmendOrder":
            order = self.open_order(account, params)
            age = now - order.placed_at
            pair, cost = order.pair, 1 + next((c for lim, c in AMEND_EXTRA if age < lim), 0)
        else:
            order = self.open_order(account, params)
            age = now - order.placed_at
            pair, cost = order.pair, next((c for limit, c in CANCEL_COSTS if age < limit), 0)
        if not account.trade_counter(pair).try_add(cost, now):
            raise KrakenError("EOrder:Rate limit exceeded")

    def visible(self, account: Account) -> list[Order]:
        """The account's orders that order look-ups show by now."""
        now = time.monotonic()
        return [o for o in self.orders if o.account == account.key and o.visible_at <= now]

    def record(self, order: Order) -> dict[str, Any]:
        """An order's record."""
        return order.record(self.pairs[order.pair]["altname"])

    def open_order(self, account: Account, params: Mapping[str, str]) -> Order:
        ref = params.get("txid") or params.get("cl_ord_id")
        for order in self.orders:
            if (
                order.account == account.key
                and order.status == "open"
                and ref in (order.txid, order.cl_ord_id)
            ):
                return order
        raise KrakenError("EOrder:Unknown order")

    def cancel(self, account: Account, params: Mapping[str, str]) -> dict[str, Any]:
        """CancelOrder by txid or cl_ord_id."""
        order = self.open_order(account, params)
        order.status, order.closetm = "canceled", time.time()
        return {"count": 1, "pending": False}

    def held(self, account: Account, asset: str) -> Decimal:
        """What the account's open orders hold of an asset."""
        held = Decimal(0)
        for order in self.orders:
            if order.account != account.key or order.status != "open":
                continue
            row = self.pairs[order.pair]
            left = order.volume - order.volume_exec
            if order.side == "sell" and row["base"] == asset:
                held += left
            if order.side == "buy" and row["quote"] == asset:
                price = order.limit_price or self.prices[order.pair][1]
                held += left * price * (1 + self.fee_rate)
        return held

    def rewards_row(self, asset: str) -> str:
        """The Kraken Rewards row of an asset id: XXBT -> XBT.F (built on the altname)."""
        return f"{self.assets.get(asset, {}).get('altname', asset)}.F"

    def available(self, account: Account, asset: str) -> Decimal:
        """Spot plus Rewards (.F) balance, minus what open orders hold."""
        spot = account.balances.get(asset, Decimal(0))
        rewards = account.balances.get(self.rewards_row(asset), Decimal(0))
        return spot + rewards - self.held(account, asset)

    def row_hold(self, account: Account, row: str) -> Decimal:
        """The hold shown on one BalanceEx row: orders hold the spot row first, then .F."""
        base = self._asset_of_rewards(row) if row.endswith(".F") else row
        if base is None:
            return Decimal(0)
        held, spot = self.held(account, base), account.balances.get(base, Decimal(0))
        if base == row:
            return min(held, spot)
        return min(max(held - spot, Decimal(0)), account.balances.get(row, Decimal(0)))

    def _asset_of_rewards(self, row: str) -> str | None:
        altname = row.removesuffix(".F")
        return next((a for a, r in self.assets.items() if r["altname"] == altname), None)

    def apply(self, account: Account, asset: str, delta: Decimal) -> None:
        """Change a balance; a debit takes the spot row first, then the Rewards row, as Kraken."""
        spot = account.balances.get(asset, Decimal(0))
        rewards = self.rewards_row(asset)
        if delta < 0 and -delta > spot and rewards in account.balances:
            account.balances[asset] = Decimal(0)
            account.balances[rewards] += delta + spot
        else:
            account.balances[asset] = spot + delta

    def rounded(self, amount: Decimal, places: int) -> Decimal:
        """Kraken rounds cost and fee to the pair's cost_decimals."""
        return amount.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
