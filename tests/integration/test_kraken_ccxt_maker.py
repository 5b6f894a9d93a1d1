"""ccxt's Kraken client drives the fake's maker calls (issue 16): post-only createOrder,
editOrder (ccxt 4.x sends AmendOrder), fetchOpenOrders with partial fills, cancelOrder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from tests.fake_kraken import FakeKraken

ccxt_async = pytest.importorskip("ccxt.async_support")
PAIR = "XXBTZEUR"


@pytest.fixture
async def fake() -> AsyncIterator[FakeKraken]:
    async with FakeKraken() as server:
        server.set_price(PAIR, "90000.0", "90010.0")
        yield server


@pytest.fixture
async def exchange(fake: FakeKraken) -> AsyncIterator[Any]:
    key, secret = fake.add_account({"ZEUR": "1000.0000", "XXBT": "0.1000000000"})
    kraken = ccxt_async.kraken(
        {
            "apiKey": key,
            "secret": secret,
            "urls": {"api": {"public": fake.url, "private": fake.url}},
            "enableRateLimit": False,
        }
    )
    yield kraken
    await kraken.close()


async def test_ccxt_post_only_order_rests_amends_fills_partly_and_cancels(
    exchange: Any, fake: FakeKraken
) -> None:
    await exchange.create_order(
        "BTC/EUR", "limit", "buy", 0.002, 90000.0, {"postOnly": True, "clientOrderId": "mk-1"}
    )
    [order] = fake.resting()
    assert fake.calls("AddOrder")[0].params["oflags"].split(",")[0] == "post"
    assert (order.limit_price, order.cl_ord_id) == (Decimal("90000.0"), "mk-1")

    await exchange.edit_order(order.txid, "BTC/EUR", "limit", "buy", None, 90005.0)
    [amend] = fake.calls("AmendOrder")
    assert amend.params["txid"] == order.txid and Decimal(amend.params["limit_price"]) == Decimal(
        "90005"
    )
    assert order.limit_price == Decimal("90005.0") and fake.errors() == []

    fake.venue.fill_fraction = Decimal("0.5")
    fake.set_price(PAIR, "89995.0", "90005.0")  # a seller reaches the bid: half fills
    [seen] = await exchange.fetch_open_orders("BTC/EUR")
    assert (seen["id"], seen["filled"], seen["remaining"]) == (order.txid, 0.001, 0.001)
    assert seen["price"] == 90005.0 and seen["clientOrderId"] == "mk-1"

    await exchange.cancel_order(order.txid)
    assert fake.resting() == [] and order.volume_exec == Decimal("0.001")
    assert await exchange.fetch_open_orders("BTC/EUR") == []


async def test_ccxt_post_only_that_would_take_is_refused(exchange: Any, fake: FakeKraken) -> None:
    with pytest.raises(ccxt_async.BaseError) as refused:  # ccxt: InvalidOrder
        await exchange.create_order("BTC/EUR", "limit", "buy", 0.002, 90010.0, {"postOnly": True})
    assert "EOrder:Post only order" in str(refused.value)
    assert fake.resting() == [] and fake.placed == []


async def test_ccxt_ioc_limit_fills_what_crosses_and_leaves_nothing(
    exchange: Any, fake: FakeKraken
) -> None:
    await exchange.create_order("BTC/EUR", "limit", "buy", 0.002, 90100.0, {"timeInForce": "IOC"})
    [placed] = fake.placed
    assert fake.calls("AddOrder")[0].params["timeinforce"] == "IOC"
    assert placed.status == "closed" and placed.price == Decimal("90010.0")  # at the ask
