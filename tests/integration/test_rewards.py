"""Kraken Rewards (.F) balances are holdings of their base asset; bonded ones are never sold.

An account with Rewards switched on shows its coins as `XBT.F`, `ETH.F`... rows, and Kraken
spends them through the base asset. Counting them as locked made rebalancerd buy more BTC
when BTC was already 69 % of the account (issue 20): these tests keep that from coming back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D

import orjson
import pytest
from aiohttp import web

from rebalancerd.exchange.kraken.errors import ErrorReply
from rebalancerd.exchange.kraken.ratelimit import RateLimiter
from rebalancerd.exchange.kraken.transport import KrakenTransport
from rebalancerd.exchange.paper import MemoryLedger, PaperExchange
from rebalancerd.exchange.simulated import SimulatedMarket
from rebalancerd.store.repository import Store
from tests.factories import make_portfolio
from tests.fake_kraken import FakeKraken
from tests.integration.test_executor import client, current_weights, trigger
from tests.integration.test_kraken_client import order as kraken_order
from tests.integration.test_paper import order as paper_order

REWARDS_ACCOUNT = {"ZEUR": "1000.0000", "XBT.F": "0.1000000000", "ETH.F": "1.0000000000"}


@pytest.fixture
async def rewards_fake() -> AsyncIterator[FakeKraken]:
    async with FakeKraken(balances=REWARDS_ACCOUNT) as server:
        yield server


async def test_rewards_account_is_rebalanced_toward_target_not_away(
    store: Store, rewards_fake: FakeKraken
) -> None:
    exchange = client(rewards_fake)
    portfolio = await make_portfolio(
        store, target_weights={"BTC": 40, "ETH": 40, "EUR": 20}, rebalance_threshold=D(1)
    )
    before = await current_weights(exchange, portfolio)
    assert before["BTC"] > 68  # the operator's account: BTC already 69 %
    record = await trigger(store, exchange, portfolio)
    assert record.success, record.errors
    sides = {(o["symbol"], o["side"]) for o in record.orders}
    assert ("BTC", "sell") in sides and ("ETH", "buy") in sides
    after = await current_weights(exchange, portfolio)
    for symbol, target in portfolio.weights().items():
        assert abs(after[symbol] - target) <= D("1.5"), (symbol, after)
    # The sell was taken from the Rewards row, since there was no spot BTC.
    account = rewards_fake.account()
    assert account.balances["XBT.F"] < D("0.1")
    assert account.balances.get("XXBT", D(0)) == 0
    await exchange.close()


async def test_bonded_rows_are_neither_counted_nor_sold(store: Store) -> None:
    rows = {"ZEUR": "1000.0000", "XXBT": "0.0100000000", "DOT.S": "25.0000000000"}
    async with FakeKraken(balances={**rows, "XBT.M": "5.0000000000"}) as fake:
        exchange = client(fake)
        portfolio = await make_portfolio(
            store, target_weights={"BTC": 50, "DOT": 50}, rebalance_threshold=D(1)
        )
        record = await trigger(store, exchange, portfolio)
        assert record.success, record.errors
        # The value is 0.01 BTC + 1000 EUR: the 5 BTC.M and 25 DOT.S are not in it.
        assert D(1800) < record.portfolio_value < D(2000)
        assert all(o["side"] == "buy" for o in record.orders)
        assert fake.account().balances["DOT.S"] == D(25)
        assert fake.account().balances["XBT.M"] == D(5)
        await exchange.close()


async def test_the_fake_sells_spot_first_then_rewards(store: Store) -> None:
    async with FakeKraken(balances={"ZEUR": "0", "XXBT": "0.01", "XBT.F": "0.1"}) as fake:
        exchange = client(fake)
        portfolio = await make_portfolio(
            store, target_weights={"BTC": 0, "EUR": 100}, rebalance_threshold=D(1)
        )
        record = await trigger(store, exchange, portfolio)
        assert record.success, record.errors
        assert [(o["symbol"], o["side"], D(o["volume"])) for o in record.orders] == [
            ("BTC", "sell", D("0.11"))
        ]
        assert fake.account().balances["XXBT"] == 0
        assert fake.account().balances["XBT.F"] == 0
        await exchange.close()


async def test_a_sell_past_spot_and_rewards_is_refused_by_the_fake() -> None:
    async with FakeKraken(balances={"ZEUR": "0", "XXBT": "0.01", "XBT.F": "0.1"}) as fake:
        exchange = client(fake)
        with pytest.raises(Exception, match="Insufficient funds"):
            await exchange.place_order(kraken_order("XXBTZEUR", "sell", "0.11000001"))
        assert fake.placed == []
        await exchange.close()


async def test_paper_account_with_only_rewards_rows_trades() -> None:
    ledger = MemoryLedger()
    paper = PaperExchange("demo", SimulatedMarket(seed=3), ledger)
    await paper.seed({"EUR": D(0), "BTC.F": D(1)})
    assert (await paper.balances()).tradable == {"EUR": D(0), "BTC": D(1)}
    rules = await paper.pair_rules(["BTC"], "EUR")
    await paper.place_order(paper_order(rules["BTC"].pair, "sell", "0.25"))
    after = await ledger.balances("demo")
    assert after["BTC.F"] == D("0.75") and after["BTC"] == 0 and after["EUR"] > 0


async def test_error_envelope_as_a_string_is_one_error() -> None:
    async def handler(request: web.Request) -> web.Response:
        body = {"error": "EService:Unavailable"}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_get("/0/public/{method}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    transport = KrakenTransport(f"http://{host}:{port}", "", "", RateLimiter("starter"))
    try:
        with pytest.raises(ErrorReply) as caught:
            await transport.public("Time")
        assert caught.value.errors == ["EService:Unavailable"]
    finally:
        await transport.close()
        await runner.cleanup()
