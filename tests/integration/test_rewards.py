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
from rebalancerd.exchange.kraken.parse import balances
from rebalancerd.exchange.kraken.ratelimit import RateLimiter
from rebalancerd.exchange.kraken.transport import KrakenTransport
from rebalancerd.exchange.names import AssetNames, holding_of
from rebalancerd.exchange.paper import MemoryLedger, PaperExchange, draw_spot_first
from rebalancerd.exchange.protocol import Balances
from rebalancerd.exchange.simulated import SimulatedMarket
from rebalancerd.store.repository import Store
from tests.factories import make_portfolio
from tests.fake_kraken import FakeKraken
from tests.integration.test_executor import client, current_weights, trigger
from tests.integration.test_kraken_client import order as kraken_order
from tests.integration.test_paper import order as paper_order

NAMES = AssetNames()

# Kraken's BalanceEx documentation example and a reply recorded by ccxt's test suite from an
# account with Kraken Rewards on (amounts as sent: strings, or numbers for credit fields).
KRAKEN_DOC_REPLY = {
    "ZUSD": {"balance": "25435.21", "hold_trade": "8249.76"},
    "XXBT": {"balance": "1.2435", "hold_trade": "0.8423"},
}
CCXT_RECORDED_REPLY = {
    "ZEUR": {"balance": "503.1542", "credit": "0.0000", "credit_used": "0.0000", "hold_trade": "0"},
    "XXBT": {"balance": "0.0000000000", "hold_trade": "0.0000000000"},
    "XBT.F": {"balance": "0.0120033000", "hold_trade": "0.0000000000"},
    "XETH": {"balance": "0.0051300000", "hold_trade": "0.0000000000"},
    "ETH.F": {"balance": "0.4081100000", "hold_trade": "0.0000000000"},
    "USDT.F": {"balance": "35.05791600", "hold_trade": "0.00000000"},
    "DOT.S": {"balance": "12.3500000000", "hold_trade": "0.0000000000"},
    "ETH2.S": {"balance": "0.5000000000", "hold_trade": "0.0000000000"},
    "SOL.M": {"balance": "3.0000000000", "hold_trade": "0.0000000000"},
}


@pytest.mark.parametrize(
    ("symbol", "holding"),
    [
        ("BTC", "BTC"),
        ("BTC.F", "BTC"),
        ("USDT.F", "USDT"),
        ("EUR.F", "EUR"),
        ("DOT.S", None),
        ("BTC.M", None),
        ("SOL.B", None),
        ("DOT.P", None),
        ("USD.HOLD", None),
        ("NEW.Q", None),  # unknown suffix: never sold
        ("BTC.f", None),  # Kraken's suffixes are upper case; anything else is not understood
    ],
)
def test_which_rows_are_holdings(symbol: str, holding: str | None) -> None:
    assert holding_of(symbol) == holding


def test_recorded_reply_with_rewards_rows_parses_to_holdings() -> None:
    parsed = balances(CCXT_RECORDED_REPLY, NAMES)
    assert parsed.tradable == {
        "EUR": D("503.1542"),
        "BTC": D("0.0120033000"),
        "ETH": D("0.4132400000"),
        "USDT": D("35.05791600"),
    }
    assert parsed.locked == {"DOT.S": D("12.35"), "ETH2.S": D("0.5"), "SOL.M": D(3)}


def test_kraken_documentation_reply_subtracts_holds() -> None:
    parsed = balances(KRAKEN_DOC_REPLY, NAMES)
    assert parsed.tradable == {"USD": D("17185.45"), "BTC": D("0.4012")}
    assert parsed.locked == {"USD": D("8249.76"), "BTC": D("0.8423")}


@pytest.mark.parametrize(
    ("rows", "tradable", "locked"),
    [
        # A hold larger than the spot row (it drew on .F too) never makes a negative amount.
        ({"XXBT": ("0.01", "0.02")}, {"BTC": D(0)}, {"BTC": D("0.01")}),
        ({"XXBT": ("0.01", "0.02"), "XBT.F": ("0.1", "0")}, {"BTC": D("0.09")}, {"BTC": D("0.02")}),
        ({"XBT.F": ("0.5", "0")}, {"BTC": D("0.5")}, {}),
        ({"DOT.S": ("25", "0"), "DOT": ("1", "0")}, {"DOT": D(1)}, {"DOT.S": D(25)}),
        ({"ZEUR": ("100", "100")}, {"EUR": D(0)}, {"EUR": D(100)}),
    ],
)
def test_holds_pool_over_spot_and_rewards_rows(
    rows: dict[str, tuple[str, str]], tradable: dict[str, D], locked: dict[str, D]
) -> None:
    reply = {a: {"balance": b, "hold_trade": h} for a, (b, h) in rows.items()}
    parsed = balances(reply, NAMES)
    assert parsed == Balances(tradable=tradable, locked=locked)
    assert all(amount >= 0 for amount in parsed.tradable.values())


@pytest.mark.parametrize(
    ("deltas", "amounts", "expected"),
    [
        ({"BTC": D("-0.05")}, {"BTC": D("0.1")}, {"BTC": D("-0.05")}),
        (
            {"BTC": D("-0.05")},
            {"BTC": D("0.02"), "BTC.F": D(1)},
            {"BTC": D("-0.02"), "BTC.F": D("-0.03")},
        ),
        ({"BTC": D("-0.05")}, {"BTC.F": D(1)}, {"BTC": D(0), "BTC.F": D("-0.05")}),
        ({"BTC": D("-0.05")}, {"BTC": D("0.02")}, {"BTC": D("-0.05")}),  # short: ledger refuses
        ({"BTC": D("0.05")}, {"BTC.F": D(1)}, {"BTC": D("0.05")}),  # credits go to spot
    ],
)
def test_paper_debits_draw_on_spot_then_rewards(
    deltas: dict[str, D], amounts: dict[str, D], expected: dict[str, D]
) -> None:
    assert draw_spot_first(deltas, amounts) == expected


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
