"""KrakenClient against the fake: typed Decimal results, few round trips, exact order bodies."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from rebalancerd.exchange.kraken.client import DEFAULT_TAKER_FEE, KrakenClient, RetryPolicy
from rebalancerd.exchange.protocol import OrderRequest, RejectedError, RetryableError
from tests.fake_kraken import FakeKraken, FastTime

FAST = FastTime(100)  # rate-limit waits run 100x faster, on both sides


@pytest.fixture
async def fake() -> AsyncIterator[FakeKraken]:
    async with FakeKraken(clock=FAST, tier="pro") as server:
        yield server


@pytest.fixture
async def client(fake: FakeKraken) -> AsyncIterator[KrakenClient]:
    kraken = KrakenClient(
        fake.url,
        fake.api_key,
        fake.api_secret,
        "pro",
        retry=RetryPolicy(attempts=2),
        clock=FAST,
        sleep=FAST.sleep,
    )
    yield kraken
    await kraken.close()


def order(pair: str, side: str, volume: str, *, validate: bool = False) -> OrderRequest:
    return OrderRequest(pair, side, Decimal(volume), str(uuid.uuid4()), validate)  # type: ignore[arg-type]


async def test_pair_rules_map_kraken_names_to_plain_symbols(client: KrakenClient) -> None:
    rules = await client.pair_rules(["BTC", "ETH", "DOGE", "XRP", "XTZ", "SOL", "NOPE"], "EUR")
    assert {b: r.pair for b, r in rules.items()} == {
        "BTC": "XXBTZEUR",
        "ETH": "XETHZEUR",
        "DOGE": "XDGEUR",
        "XRP": "XXRPZEUR",
        "XTZ": "XTZEUR",
        "SOL": "SOLEUR",
    }
    btc = rules["BTC"]
    assert (btc.base, btc.quote, btc.altname) == ("BTC", "EUR", "XBTEUR")
    assert btc.ordermin == Decimal("0.00005") and isinstance(btc.ordermin, Decimal)
    assert (btc.costmin, btc.lot_decimals, btc.pair_decimals) == (Decimal("0.45"), 8, 1)
    assert btc.tick_size == Decimal("0.1") and btc.tradable


async def test_pair_rules_only_for_the_quote_asked(client: KrakenClient) -> None:
    assert (await client.pair_rules(["BTC"], "USD"))["BTC"].pair == "XXBTZUSD"
    assert await client.pair_rules(["SOL"], "USD") == {}


async def test_metadata_is_cached(client: KrakenClient, fake: FakeKraken) -> None:
    for _ in range(3):
        await client.pair_rules(["BTC"], "EUR")
        await client.balances()
    assert len(fake.calls("AssetPairs")) == 1
    assert len(fake.calls("Assets")) == 1
    assert len(fake.calls("BalanceEx")) == 3


async def test_market_status_is_reported(client: KrakenClient, fake: FakeKraken) -> None:
    fake.set_status("SOLEUR", "cancel_only")
    rules = await client.pair_rules(["SOL"], "EUR")
    assert rules["SOL"].status == "cancel_only" and not rules["SOL"].tradable


async def test_balances_split_tradable_held_and_staked(
    client: KrakenClient, fake: FakeKraken
) -> None:
    fake.venue.fill_market_orders = False  # the order stays open and holds EUR
    await client.place_order(order("XXBTZEUR", "buy", "0.01"))
    balances = await client.balances()
    held = Decimal("0.01") * Decimal("91234.5") * Decimal("1.0026")
    assert balances.tradable["EUR"] == Decimal("10000") - held
    assert balances.tradable["BTC"] == Decimal("0.05")
    assert balances.tradable["ETH"] == Decimal("1.25")
    assert balances.locked == {"EUR": held, "DOT.S": Decimal(25), "BTC.M": Decimal("0.01")}
    assert all(isinstance(v, Decimal) for v in balances.tradable.values())
    assert "XXBT" not in balances.tradable and "ZEUR" not in balances.tradable


async def test_tickers_in_one_call_keyed_as_asked(client: KrakenClient, fake: FakeKraken) -> None:
    quotes = await client.tickers(["XXBTZEUR", "XDGEUR", "ETHEUR"])
    assert len(fake.calls("Ticker")) == 1
    assert fake.calls("Ticker")[0].params["pair"] == "XXBTZEUR,XDGEUR,ETHEUR"
    assert set(quotes) == {"XXBTZEUR", "XDGEUR", "ETHEUR"}
    btc = quotes["XXBTZEUR"]
    assert (btc.bid, btc.ask) == (Decimal("91234.4"), Decimal("91234.5"))
    assert quotes["ETHEUR"].ask == Decimal("3101.45")
    assert quotes["XDGEUR"].bid == Decimal("0.1500000")


async def test_unknown_ticker_pair_is_rejected(client: KrakenClient) -> None:
    with pytest.raises(RejectedError) as caught:
        await client.tickers(["NOPEEUR"])
    assert caught.value.code == "EQuery:Unknown asset pair"


async def test_fee_rate_answers_at_once_then_one_call_for_all_pairs(
    client: KrakenClient, fake: FakeKraken
) -> None:
    await client.pair_rules(["BTC", "ETH", "SOL"], "EUR")
    assert await client.fee_rate("XXBTZEUR") == DEFAULT_TAKER_FEE == Decimal("0.0040")
    assert fake.calls("TradeVolume") == []  # not on the caller's path
    await client.wait_refreshes()
    rates = [await client.fee_rate(p) for p in ("XXBTZEUR", "XETHZEUR", "SOLEUR", "XXBTZEUR")]
    assert rates == [Decimal("0.0026")] * 4
    calls = fake.calls("TradeVolume")
    assert len(calls) == 1
    assert set(calls[0].params["pair"].split(",")) == {"XXBTZEUR", "XETHZEUR", "SOLEUR"}
    assert await client.fee_rate("ETHEUR") == Decimal("0.0026")  # by altname: same cache
    await client.wait_refreshes()
    assert len(fake.calls("TradeVolume")) == 1


async def test_fee_look_up_never_queues_ahead_of_a_runs_next_call(fake: FakeKraken) -> None:
    # A run: balances, then orders. TradeVolume is private (it takes the key's turn), so the
    # background look-up the first fee_rate starts must wait until the run's calls are over.
    # Gaps of 2 s against a quiet period of 30 s: a slow machine cannot make a gap look quiet.
    client = KrakenClient(
        fake.url, fake.api_key, fake.api_secret, "pro", fee_quiet=30, clock=FAST, sleep=FAST.sleep
    )
    try:
        fake.venue.fill_market_orders = False
        await client.pair_rules(["BTC", "SOL"], "EUR")
        await client.fee_rate("XXBTZEUR")
        await client.balances()
        for _ in range(3):
            await FAST.sleep(2.0)  # commits and fill polls between a run's calls
            await client.place_order(order("SOLEUR", "buy", "1"))
        await client.wait_refreshes()
        private = [r.endpoint for r in fake.calls() if r.private]
        assert private == ["BalanceEx", *["AddOrder", "QueryOrders"] * 3, "TradeVolume"]
        assert await client.fee_rate("XXBTZEUR") == Decimal("0.0026")
    finally:
        await client.close()


async def test_fee_rate_falls_back_when_trade_volume_fails(
    client: KrakenClient, fake: FakeKraken, caplog: pytest.LogCaptureFixture
) -> None:
    fake.inject("TradeVolume", error="EService:Unavailable", times=None)
    assert await client.fee_rate("XXBTZEUR") == DEFAULT_TAKER_FEE == Decimal("0.0040")
    await client.wait_refreshes()  # failed in the background: logged, never raised
    assert "background TradeVolume failed" in caplog.text
    assert await client.fee_rate("XXBTZEUR") == DEFAULT_TAKER_FEE
    await client.wait_refreshes()
    assert len(fake.calls("TradeVolume")) == 2  # two attempts, then a pause before the next


async def test_warm_fetches_ahead_so_a_run_asks_only_for_balances_and_prices(
    client: KrakenClient, fake: FakeKraken
) -> None:
    await client.pair_rules(["BTC", "ETH"], "EUR")  # an earlier run: the pairs are known
    await client.warm()
    assert len(fake.calls("TradeVolume")) == 1
    before = len(fake.calls())
    rules = await client.pair_rules(["BTC", "ETH"], "EUR")
    pairs = [r.pair for r in rules.values()]
    _, _, fee = await asyncio.gather(
        client.balances(), client.tickers(pairs), client.fee_rate(pairs[0])
    )
    assert fee == Decimal("0.0026")
    assert sorted(r.endpoint for r in fake.calls()[before:]) == ["BalanceEx", "Ticker"]
    await client.warm()  # all fresh: nothing to fetch
    assert len(fake.calls()) == before + 2


async def test_warm_never_raises(
    client: KrakenClient, fake: FakeKraken, caplog: pytest.LogCaptureFixture
) -> None:
    await client.pair_rules(["BTC"], "EUR")
    fake.inject("TradeVolume", error="EGeneral:Permission denied", times=None)
    await client.warm()
    assert "fee warm-up failed" in caplog.text and "EGeneral:Permission denied" in caplog.text
    async with FakeKraken(clock=FAST) as gone:
        url = gone.url
    cold = KrakenClient(url, fake.api_key, fake.api_secret, retry=RetryPolicy(attempts=1))
    try:
        await cold.warm()  # nothing listens there
    finally:
        await cold.close()
    assert "metadata warm-up failed" in caplog.text


async def test_close_cancels_a_pending_refresh(fake: FakeKraken) -> None:
    kraken = KrakenClient(fake.url, fake.api_key, fake.api_secret, "pro", fee_quiet=3600)
    await kraken.fee_rate("XXBTZEUR")
    assert [t for t in asyncio.all_tasks() if t.get_name() == "client TradeVolume"]
    await kraken.close()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "client TradeVolume"]
    assert fake.calls("TradeVolume") == []


async def test_market_buy_is_one_add_order_and_one_query(
    client: KrakenClient, fake: FakeKraken
) -> None:
    await client.pair_rules(["BTC"], "EUR")
    request = order("XXBTZEUR", "buy", "0.001")
    state = await client.place_order(request)
    assert [r.endpoint for r in fake.calls() if r.private] == ["AddOrder", "QueryOrders"]
    sent = fake.calls("AddOrder")[0].params
    assert sent == {
        "nonce": sent["nonce"],
        "ordertype": "market",
        "type": "buy",
        "volume": "0.00100000",
        "pair": "XXBTZEUR",
        "cl_ord_id": request.client_order_id,
        "oflags": "fciq",
    }
    assert state.status == "closed" and state.done
    assert (state.client_order_id, state.pair, state.side) == (
        request.client_order_id,
        "XXBTZEUR",
        "buy",
    )
    assert state.txid == fake.placed[0].txid
    assert state.volume_executed == Decimal("0.001")
    assert state.cost == Decimal("91.2345")
    assert state.fee == Decimal("0.23721")  # 91.2345 * 0.0026, at cost_decimals
    assert state.avg_price == Decimal("91234.5")
    assert fake.account().balances["ZEUR"] == Decimal("10000") - Decimal("91.2345") - Decimal(
        "0.23721"
    )


async def test_market_sell_by_altname(client: KrakenClient, fake: FakeKraken) -> None:
    state = await client.place_order(order("ETHEUR", "sell", "0.5"))
    assert state.pair == "ETHEUR" and state.side == "sell"
    assert state.cost == Decimal("1550.72")
    assert fake.account().balances["XETH"] == Decimal("0.75")


@pytest.mark.parametrize(
    ("volume", "lot_decimals", "sent"),
    [
        ("5E-7", 8, "0.00000050"),
        ("0.0000005", 8, "0.00000050"),
        ("1E+2", 8, "100.00000000"),
        ("15", 8, "15.00000000"),
        ("0.1", 2, "0.10"),
        ("3", 0, "3"),
    ],
)
async def test_volumes_are_sent_as_fixed_point(
    client: KrakenClient, fake: FakeKraken, volume: str, lot_decimals: int, sent: str
) -> None:
    fake.venue.pairs["ADAEUR"].update(lot_decimals=lot_decimals, ordermin="0", costmin="0")
    await client.place_order(order("ADAEUR", "buy", volume))
    assert fake.calls("AddOrder")[0].params["volume"] == sent
    assert fake.errors() == []


async def test_too_many_decimals_rejected_before_sending(
    client: KrakenClient, fake: FakeKraken
) -> None:
    with pytest.raises(RejectedError) as caught:
        await client.place_order(order("XXBTZEUR", "buy", "0.000000001"))
    assert caught.value.code == "EGeneral:Invalid arguments:volume"
    assert fake.calls("AddOrder") == []


async def test_validate_checks_without_placing(client: KrakenClient, fake: FakeKraken) -> None:
    state = await client.place_order(order("XXBTZEUR", "buy", "0.001", validate=True))
    assert fake.calls("AddOrder")[0].params["validate"] == "true"
    assert fake.placed == []
    assert state.txid is None and state.volume_executed == 0 and state.done
    with pytest.raises(RejectedError) as caught:
        await client.place_order(order("XXBTZEUR", "buy", "0.00001", validate=True))
    assert caught.value.code == "EOrder:Order minimum not met"


async def test_find_order_open_then_closed(client: KrakenClient, fake: FakeKraken) -> None:
    assert await client.find_order(str(uuid.uuid4())) is None
    placed = await client.place_order(order("SOLEUR", "buy", "1"))
    found = await client.find_order(placed.client_order_id)
    assert found == placed
    assert [r.endpoint for r in fake.calls()][-2:] == ["OpenOrders", "ClosedOrders"]


async def test_query_and_cancel_open_orders(client: KrakenClient, fake: FakeKraken) -> None:
    fake.venue.fill_market_orders = False
    placed = await client.place_order(order("SOLEUR", "buy", "1"))
    assert placed.status == "open" and not placed.done
    assert (await client.find_order(placed.client_order_id)) == placed
    await client.cancel_order(placed.client_order_id)
    assert placed.txid is not None
    assert (await client.query_orders([placed.txid]))[placed.txid].status == "canceled"
    with pytest.raises(RejectedError) as caught:
        await client.cancel_order(placed.client_order_id)
    assert caught.value.code == "EOrder:Unknown order"


async def test_query_orders_batches_of_fifty(client: KrakenClient, fake: FakeKraken) -> None:
    txids = [(await client.place_order(order("ADAEUR", "buy", "15"))).txid for _ in range(55)]
    queried = len(fake.calls("QueryOrders"))
    states = await client.query_orders([t for t in txids if t])
    assert len(states) == 55
    assert len(fake.calls("QueryOrders")) - queried == 2
    assert fake.errors() == []


async def test_every_request_carries_our_user_agent(client: KrakenClient, fake: FakeKraken) -> None:
    await client.pair_rules(["BTC"], "EUR")
    await client.balances()
    assert {r.user_agent.split("/")[0] for r in fake.calls()} == {"rebalancerd"}


class SteppedClock:
    """Monotonic time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_metadata_and_fees_are_served_stale_past_their_ttl_then_refreshed(
    fake: FakeKraken,
) -> None:
    clock = SteppedClock()
    kraken = KrakenClient(
        fake.url,
        fake.api_key,
        fake.api_secret,
        "pro",
        metadata_ttl=300,
        fee_ttl=3600,
        fee_quiet=0,
        clock=clock,
    )
    try:
        await kraken.pair_rules(["BTC"], "EUR")
        await kraken.warm()
        clock.now = 299.0
        await kraken.pair_rules(["BTC"], "EUR")
        await kraken.fee_rate("XXBTZEUR")
        await kraken.wait_refreshes()
        assert len(fake.calls("AssetPairs")) == len(fake.calls("TradeVolume")) == 1
        clock.now = 301.0
        fake.set_status("XXBTZEUR", "cancel_only")
        # Past the TTL: the cached rules at once, a fresh table once the refresh is in.
        assert (await kraken.pair_rules(["BTC"], "EUR"))["BTC"].status == "online"
        await kraken.wait_refreshes()
        assert len(fake.calls("AssetPairs")) == 2
        assert (await kraken.pair_rules(["BTC"], "EUR"))["BTC"].status == "cancel_only"
        clock.now = 3601.0
        fake.venue.fee_rate = Decimal("0.004")
        assert await kraken.fee_rate("XXBTZEUR") == Decimal("0.0026")
        await kraken.wait_refreshes()
        assert await kraken.fee_rate("XXBTZEUR") == Decimal("0.004")
        assert len(fake.calls("AssetPairs")) == 3  # fee_rate looked a pair up: stale again
        # Past the hard maximum age (24 h) a table is not served: the caller waits for it.
        clock.now = 3601.0 + 24 * 3600
        fake.set_status("XXBTZEUR", "online")
        assert (await kraken.pair_rules(["BTC"], "EUR"))["BTC"].status == "online"
        assert len(fake.calls("AssetPairs")) == 4
    finally:
        await kraken.close()


async def test_reads_back_off_exponentially_with_jitter_and_give_up(fake: FakeKraken) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(attempts=5, base=0.5, cap=3.0)
    kraken = KrakenClient(fake.url, fake.api_key, fake.api_secret, "pro", retry=policy, sleep=sleep)
    fake.inject("BalanceEx", error="EService:Unavailable", times=None)
    try:
        with pytest.raises(RetryableError):
            await kraken.balances()
    finally:
        await kraken.close()
    assert len(fake.calls("BalanceEx")) == 5 and len(slept) == 4
    for attempt, delay in enumerate(slept):
        ceiling = min(3.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling  # jitter within the exponential step, capped


async def test_throttled_reads_wait_until_kraken_says(fake: FakeKraken) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    kraken = KrakenClient(fake.url, fake.api_key, fake.api_secret, "pro", sleep=sleep)
    until = int(time.time()) + 30
    fake.inject("Ticker", error=f"EService: Throttled: {until}")
    try:
        await kraken.tickers(["XXBTZEUR"])
    finally:
        await kraken.close()
    assert 25 < slept[0] <= 30
