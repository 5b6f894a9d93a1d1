"""An independent Kraken client (ccxt) works against the fake: it signs and answers like Kraken."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from tests.fake_kraken import FakeKraken

ccxt_async = pytest.importorskip("ccxt.async_support")


@pytest.fixture
async def fake() -> AsyncIterator[FakeKraken]:
    async with FakeKraken() as server:
        yield server


@pytest.fixture
async def exchange(fake: FakeKraken) -> AsyncIterator[Any]:
    key, secret = fake.add_account({"ZEUR": "1000.0000", "XXBT": "0.1000000000", "XXDG": "500"})
    kraken = ccxt_async.kraken(
        {
            "apiKey": key,
            "secret": secret,
            "urls": {"api": {"public": fake.url, "private": fake.url}},
            "enableRateLimit": False,  # ccxt's own 1 call/s throttle only slows the test down
        }
    )
    yield kraken
    await kraken.close()


async def test_ccxt_fetches_balance(exchange: Any, fake: FakeKraken) -> None:
    balance = await exchange.fetch_balance()
    assert balance["total"]["EUR"] == 1000
    assert balance["total"]["BTC"] == 0.1
    assert balance["total"]["DOGE"] == 500  # ccxt maps XXDG the same way we do
    assert fake.errors() == []
    assert [r.endpoint for r in fake.calls() if r.private] == ["BalanceEx"]


async def test_ccxt_fetches_ticker(exchange: Any, fake: FakeKraken) -> None:
    ticker = await exchange.fetch_ticker("BTC/EUR")
    assert (ticker["bid"], ticker["ask"]) == (91234.4, 91234.5)
    assert fake.calls("Ticker")[0].params["pair"] == "XXBTZEUR"


async def test_ccxt_market_order_is_placed_signed_and_filled(
    exchange: Any, fake: FakeKraken
) -> None:
    order = await exchange.create_order(
        "BTC/EUR", "market", "buy", 0.001, None, {"clientOrderId": "ccxt-test-1"}
    )
    assert fake.errors() == []
    assert len(fake.placed) == 1
    placed = fake.placed[0]
    assert order["id"] == placed.txid
    assert (placed.pair, placed.side, placed.volume, placed.cl_ord_id) == (
        "XXBTZEUR",
        "buy",
        Decimal("0.001"),
        "ccxt-test-1",
    )
    account = fake.account(placed.account)
    assert account.balances["XXBT"] == Decimal("0.101")
    assert account.balances["ZEUR"] == Decimal(1000) - placed.cost - placed.fee
    fetched = await exchange.fetch_order(placed.txid)
    assert fetched["status"] == "closed" and fetched["filled"] == 0.001


async def test_ccxt_is_refused_like_kraken_would(exchange: Any, fake: FakeKraken) -> None:
    with pytest.raises(ccxt_async.InsufficientFunds):
        await exchange.create_order("BTC/EUR", "market", "buy", 1)
    with pytest.raises(ccxt_async.InvalidOrder):
        await exchange.create_order("BTC/EUR", "market", "buy", 0.00001)
    assert fake.placed == []
