"""The fake Kraken itself, spoken to over raw HTTP: it checks what the real one checks."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.fake_kraken import FakeKraken, expected_sign


class Raw:
    """A bare-hands Kraken client: every field under the test's control."""

    def __init__(self, fake: FakeKraken, session: aiohttp.ClientSession) -> None:
        self.fake, self.session, self.nonce = fake, session, 1

    async def public(self, method: str, **params: str) -> dict[str, Any]:
        async with self.session.get(f"{self.fake.url}/0/public/{method}", params=params) as resp:
            return dict(await resp.json())

    async def private(
        self,
        method: str,
        *,
        nonce: int | None = None,
        key: str | None = None,
        secret: str | None = None,
        json_body: bool = False,
        **params: str,
    ) -> dict[str, Any]:
        if nonce is None:
            self.nonce += 1
            nonce = self.nonce
        fields = {"nonce": str(nonce), **params}
        body = json.dumps(fields) if json_body else urlencode(fields)
        path = f"/0/private/{method}"
        headers = {
            "API-Key": key or self.fake.api_key,
            "API-Sign": expected_sign(
                path, body.encode(), str(nonce), secret or self.fake.api_secret
            ),
            "Content-Type": "application/json"
            if json_body
            else "application/x-www-form-urlencoded",
        }
        async with self.session.post(
            self.fake.url + path, data=body.encode(), headers=headers
        ) as resp:
            return dict(await resp.json())


@pytest.fixture
async def raw() -> AsyncIterator[Raw]:
    async with FakeKraken() as fake, aiohttp.ClientSession() as session:
        yield Raw(fake, session)


def market(side: str, volume: str, pair: str = "XXBTZEUR", **extra: str) -> dict[str, str]:
    return {"ordertype": "market", "type": side, "volume": volume, "pair": pair, **extra}


async def test_auth_key_signature_nonce(raw: Raw) -> None:
    assert (await raw.private("Balance"))["error"] == []
    accepted = raw.nonce
    assert (await raw.private("Balance", key="unknown"))["error"] == ["EAPI:Invalid key"]
    _, other = raw.fake.add_account({})
    assert (await raw.private("Balance", secret=other))["error"] == ["EAPI:Invalid signature"]
    assert (await raw.private("Balance", nonce=accepted))["error"] == ["EAPI:Invalid nonce"]
    assert (await raw.private("Balance", nonce=accepted - 1))["error"] == ["EAPI:Invalid nonce"]
    assert (await raw.private("Balance", nonce=accepted + 1))["error"] == []
    assert (await raw.private("Balance", json_body=True))["error"] == []


async def test_nonces_are_per_key(raw: Raw) -> None:
    key, secret = raw.fake.add_account({"ZEUR": "1"})
    assert (await raw.private("Balance", nonce=1000))["error"] == []
    assert (await raw.private("Balance", nonce=5, key=key, secret=secret))["error"] == []


async def test_public_is_get_only(raw: Raw) -> None:
    async with raw.session.post(f"{raw.fake.url}/0/public/Time") as resp:
        assert resp.status == 405
    assert "unixtime" in (await raw.public("Time"))["result"]
    assert (await raw.public("SystemStatus"))["result"]["status"] == "online"


async def test_names_accepted_like_kraken(raw: Raw) -> None:
    ticker = await raw.public("Ticker", pair="XBTEUR,XDGEUR,ETH/EUR")
    assert set(ticker["result"]) == {"XXBTZEUR", "XDGEUR", "XETHZEUR"}
    assert (await raw.public("Ticker", pair="NOPE"))["error"] == ["EQuery:Unknown asset pair"]
    pairs = (await raw.public("AssetPairs", pair="XBTEUR"))["result"]
    assert pairs["XXBTZEUR"]["base"] == "XXBT"
    assert set((await raw.public("Assets", asset="XBT,ZEUR"))["result"]) == {"XXBT", "ZEUR"}


@pytest.mark.parametrize(
    ("volume", "error"),
    [
        ("5e-7", "EGeneral:Invalid arguments:volume"),
        ("5E-7", "EGeneral:Invalid arguments:volume"),
        ("0.000000005", "EGeneral:Invalid arguments:volume"),  # 9 decimals > lot_decimals 8
        ("-1", "EGeneral:Invalid arguments:volume"),
        ("abc", "EGeneral:Invalid arguments:volume"),
        ("0.00001", "EOrder:Order minimum not met"),
        ("1", "EOrder:Insufficient funds"),
        ("0.00100000", None),
        ("0.001", None),
    ],
)
async def test_add_order_volume_checks(raw: Raw, volume: str, error: str | None) -> None:
    reply = await raw.private("AddOrder", **market("buy", volume))
    assert reply["error"] == ([error] if error else [])
    assert len(raw.fake.placed) == (0 if error else 1)


async def test_add_order_fills_at_ask_and_bid_with_fees(raw: Raw) -> None:
    buy = await raw.private("AddOrder", **market("buy", "0.01"))
    assert buy["result"]["descr"]["order"] == "buy 0.01000000 XBTEUR @ market"
    (txid,) = buy["result"]["txid"]
    row = (await raw.private("QueryOrders", txid=txid))["result"][txid]
    assert (row["status"], row["price"], row["cost"], row["fee"], row["oflags"]) == (
        "closed",
        "91234.5",
        "912.34500",
        "2.37210",
        "fciq",
    )
    balances = raw.fake.account().balances
    assert balances["ZEUR"] == Decimal("10000") - Decimal("912.345") - Decimal("2.3721")
    sell = await raw.private("AddOrder", **market("sell", "0.01", oflags="fcib"))
    (sell_txid,) = sell["result"]["txid"]
    assert raw.fake.placed[-1].price == Decimal("91234.4")
    assert balances["XXBT"] == Decimal("0.05") - Decimal("0.000026")  # fee taken in base
    assert sell_txid != txid


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("cancel_only", "EService:Market in cancel_only mode"),
        ("post_only", "EService:Market in post_only mode"),
    ],
)
async def test_market_status(raw: Raw, status: str, error: str) -> None:
    raw.fake.set_status("XXBTZEUR", status)
    assert (await raw.private("AddOrder", **market("buy", "0.001")))["error"] == [error]


async def test_cost_minimum(raw: Raw) -> None:
    reply = await raw.private("AddOrder", **market("buy", "40", pair="XDGEUR"))  # 6 EUR: fine
    assert reply["error"] == []
    raw.fake.set_price("XDGEUR", "0.0100000", "0.0100100")
    reply = await raw.private("AddOrder", **market("buy", "40", pair="XDGEUR"))  # 0.40 EUR
    assert reply["error"] == ["EOrder:Cost minimum not met"]


async def test_validate_places_nothing(raw: Raw) -> None:
    reply = await raw.private("AddOrder", **market("buy", "0.001", validate="true"))
    assert reply["error"] == [] and "txid" not in reply["result"]
    assert raw.fake.placed == []


async def test_cl_ord_id_unique_among_open_orders_and_queryable(raw: Raw) -> None:
    raw.fake.venue.fill_market_orders = False
    cl_ord_id = str(uuid.uuid4())
    first = await raw.private("AddOrder", **market("buy", "0.001", cl_ord_id=cl_ord_id))
    assert first["error"] == []
    duplicate = await raw.private("AddOrder", **market("buy", "0.001", cl_ord_id=cl_ord_id))
    assert duplicate["error"] == ["EOrder:Duplicate order"]
    open_orders = (await raw.private("OpenOrders", cl_ord_id=cl_ord_id))["result"]["open"]
    assert list(open_orders) == first["result"]["txid"]
    assert (await raw.private("CancelOrder", cl_ord_id=cl_ord_id))["result"]["count"] == 1
    again = await raw.private("AddOrder", **market("buy", "0.001", cl_ord_id=cl_ord_id))
    assert again["error"] == []  # allowed once the first one is no longer open
    closed = (await raw.private("ClosedOrders", cl_ord_id=cl_ord_id))["result"]
    assert closed["count"] == 1


@pytest.mark.parametrize("cl_ord_id", ["x" * 19, "not-a-uuid-but-far-too-long-to-be-short", "é"])
async def test_bad_cl_ord_id(raw: Raw, cl_ord_id: str) -> None:
    reply = await raw.private("AddOrder", **market("buy", "0.001", cl_ord_id=cl_ord_id))
    assert reply["error"] == ["EGeneral:Invalid arguments:cl_ord_id"]


async def test_userref_lookup(raw: Raw) -> None:
    await raw.private("AddOrder", **market("buy", "0.001", userref="42"))
    await raw.private("AddOrder", **market("buy", "0.001", userref="7"))
    closed = (await raw.private("ClosedOrders", userref="42"))["result"]["closed"]
    assert [row["userref"] for row in closed.values()] == [42]


async def test_balance_ex_and_trade_volume(raw: Raw) -> None:
    raw.fake.venue.fill_market_orders = False
    await raw.private("AddOrder", **market("sell", "0.01"))
    balances = (await raw.private("BalanceEx"))["result"]
    assert balances["XXBT"] == {"balance": "0.0500000000", "hold_trade": "0.0100000000"}
    fees = (await raw.private("TradeVolume", pair="XBTEUR"))["result"]["fees"]
    assert fees["XXBTZEUR"]["fee"] == "0.2600"


async def test_faults_and_recording(raw: Raw) -> None:
    raw.fake.inject("Time", error="EService:Busy")
    raw.fake.inject("Time", status=502)
    assert (await raw.public("Time"))["error"] == ["EService:Busy"]
    async with raw.session.get(f"{raw.fake.url}/0/public/Time") as resp:
        assert resp.status == 502
    assert (await raw.public("Time"))["error"] == []
    raw.fake.inject("Time", drop=True, times=None)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await raw.public("Time")  # aiohttp retries a GET once on a fresh connection
    raw.fake.clear_faults()
    assert (await raw.public("Time"))["error"] == []
    assert [r.status for r in raw.fake.calls("Time")][:3] == [200, 502, 200]
    assert [r.answered for r in raw.fake.calls("Time")][3:] == [False, False, True]
    assert raw.fake.errors("EService") == ["EService:Busy"]
