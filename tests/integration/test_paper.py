"""Paper exchange: Kraken's rules and error codes, exact fills, never twice; ledger conformance."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from rebalancerd.exchange.kraken.client import KrakenClient
from rebalancerd.exchange.paper import MemoryLedger, PaperExchange, PaperLedger
from rebalancerd.exchange.protocol import OrderRequest, OrderState, PairRules, Quote, RejectedError
from rebalancerd.exchange.simulated import SimulatedMarket
from rebalancerd.store.embedded import connect_pool
from rebalancerd.store.paper_ledger import PgPaperLedger
from rebalancerd.store.repository import Store
from tests.fake_kraken import FakeKraken

D = Decimal
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["memory", "postgresql"])
async def ledger(request: pytest.FixtureRequest) -> AsyncIterator[PaperLedger]:
    """Every PaperLedger implementation passes the same tests: in memory and in PostgreSQL."""
    if request.param == "memory":
        yield MemoryLedger()
        return
    url = request.getfixturevalue("database_url")
    store = Store(await connect_pool(url, timeout=10))
    try:
        yield PgPaperLedger(store)
    finally:
        await store.close()


def state(cl_ord_id: str = "a", txid: str = "OAAAAA-AAAAA-AAAAAA", **changes: object) -> OrderState:
    fields: dict[str, object] = {
        "client_order_id": cl_ord_id,
        "txid": txid,
        "pair": "XXBTZEUR",
        "side": "buy",
        "status": "closed",
        "volume": D("0.01"),
        "volume_executed": D("0.01"),
        "cost": D("900"),
        "fee": D("2.34"),
        "avg_price": D("90000"),
    }
    return OrderState(**{**fields, **changes})  # type: ignore[arg-type]


# --- ledger conformance ----------------------------------------------------------------------


async def test_ledger_seed_only_once(ledger: PaperLedger) -> None:
    assert await ledger.balances("acc") == {}
    await ledger.seed("acc", {"EUR": D("1000")})
    await ledger.seed("acc", {"EUR": D("5"), "BTC": D("1")})
    assert await ledger.balances("acc") == {"EUR": D("1000")}


async def test_ledger_records_order_and_applies_deltas(ledger: PaperLedger) -> None:
    await ledger.seed("acc", {"EUR": D("1000")})
    order = state()
    stored = await ledger.record_order("acc", order, {"EUR": D("-902.34"), "BTC": D("0.01")})
    assert stored == order
    assert await ledger.balances("acc") == {"EUR": D("97.66"), "BTC": D("0.01")}
    assert await ledger.find("acc", "a") == order
    assert await ledger.find("acc", "b") is None
    assert await ledger.by_txid("acc", ["OAAAAA-AAAAA-AAAAAA", "OTHER"]) == {
        "OAAAAA-AAAAA-AAAAAA": order
    }


async def test_ledger_same_client_order_id_returns_the_first_and_changes_nothing(
    ledger: PaperLedger,
) -> None:
    await ledger.seed("acc", {"EUR": D("1000")})
    first = await ledger.record_order("acc", state(), {"EUR": D("-100")})
    again = await ledger.record_order(
        "acc", state(txid="OBBBBB-BBBBB-BBBBBB", cost=D(1)), {"EUR": D("-100")}
    )
    assert again == first
    assert await ledger.balances("acc") == {"EUR": D("900")}
    assert await ledger.by_txid("acc", ["OBBBBB-BBBBB-BBBBBB"]) == {}


async def test_ledger_insufficient_funds_stores_nothing(ledger: PaperLedger) -> None:
    await ledger.seed("acc", {"EUR": D("100"), "BTC": D("1")})
    with pytest.raises(RejectedError) as caught:
        await ledger.record_order("acc", state(), {"BTC": D("-0.5"), "EUR": D("-100.01")})
    assert caught.value.code == "EOrder:Insufficient funds"
    assert await ledger.balances("acc") == {"EUR": D("100"), "BTC": D("1")}
    assert await ledger.find("acc", "a") is None
    # Down to exactly zero is fine.
    await ledger.record_order("acc", state(), {"EUR": D("-100")})
    assert (await ledger.balances("acc"))["EUR"] == 0


async def test_ledger_accounts_are_separate(ledger: PaperLedger) -> None:
    await ledger.seed("one", {"EUR": D("100")})
    await ledger.seed("two", {"EUR": D("50")})
    await ledger.record_order("one", state(), {"EUR": D("-10")})
    await ledger.record_order("two", state(), {"EUR": D("-10")})  # same client id, other account
    assert await ledger.balances("one") == {"EUR": D("90")}
    assert await ledger.balances("two") == {"EUR": D("40")}
    assert await ledger.by_txid("one", ["OAAAAA-AAAAA-AAAAAA"]) == {"OAAAAA-AAAAA-AAAAAA": state()}


async def test_ledger_concurrent_duplicates_apply_once(ledger: PaperLedger) -> None:
    await ledger.seed("acc", {"EUR": D("1000")})
    results = await asyncio.gather(
        *(ledger.record_order("acc", state(), {"EUR": D("-100")}) for _ in range(10))
    )
    assert all(r == results[0] for r in results)
    assert await ledger.balances("acc") == {"EUR": D("900")}


# --- the paper exchange ------------------------------------------------------------------------


class StubMarket:
    """Fixed rules and quotes."""

    def __init__(self) -> None:
        self.status = "online"
        self.calls: list[str] = []

    def _rules(self, base: str) -> PairRules:
        if base == "BTC":
            return PairRules(
                "XXBTZEUR",
                "XBTEUR",
                "BTC",
                "EUR",
                D("0.00005"),
                D("0.45"),
                8,
                1,
                D("0.1"),
                self.status,
            )
        return PairRules(
            "ADAEUR", "ADAEUR", "ADA", "EUR", D("15"), D("0.45"), 8, 6, D("0.000001"), self.status
        )

    async def pair_rules(self, bases: Sequence[str], quote: str) -> dict[str, PairRules]:
        self.calls.append("pair_rules")
        return {b: self._rules(b) for b in bases if b in ("BTC", "ADA") and quote == "EUR"}

    async def tickers(self, pairs: Sequence[str]) -> dict[str, Quote]:
        self.calls.append("tickers")
        prices = {
            "XXBTZEUR": (D("91234.4"), D("91234.5")),
            "ADAEUR": (D("0.194700"), D("0.194774")),
        }
        return {p: Quote(p, *prices[p], prices[p][1], NOW) for p in pairs}


@pytest.fixture
async def paper(ledger: PaperLedger) -> PaperExchange:
    exchange = PaperExchange("paper", StubMarket(), ledger)
    await exchange.seed({"EUR": D("1000"), "BTC": D("0.5"), "ADA.S": D("100")})
    await exchange.pair_rules(["BTC", "ADA"], "EUR")
    return exchange


def order(
    pair: str, side: str, volume: str, cl_ord_id: str | None = None, validate: bool = False
) -> OrderRequest:
    return OrderRequest(pair, side, D(volume), cl_ord_id or str(uuid.uuid4()), validate)  # type: ignore[arg-type]


async def test_buy_fills_at_ask_with_fee_in_eur(paper: PaperExchange) -> None:
    filled = await paper.place_order(order("XXBTZEUR", "buy", "0.001"))
    assert (filled.status, filled.avg_price, filled.volume_executed) == (
        "closed",
        D("91234.5"),
        D("0.001"),
    )
    assert filled.cost == D("91.2345")
    assert filled.fee == D("0.23720970")  # 91.2345 * 0.0026 = 0.2372097, exact
    assert filled.txid and filled.txid.startswith("O") and len(filled.txid) == 19
    balances = await paper.balances()
    assert balances.tradable == {
        "EUR": D("1000") - D("91.2345") - D("0.2372097"),
        "BTC": D("0.501"),
    }
    assert balances.locked == {"ADA.S": D("100")}


async def test_sell_fills_at_bid_and_fee_rounds_up(paper: PaperExchange) -> None:
    await paper.seed({})  # no effect: already seeded
    filled = await paper.place_order(order("ADAEUR", "buy", "15"))
    assert filled.cost == D("2.92161")
    assert filled.fee == D("0.00759619")  # 0.007596186 rounded UP to 1e-8: never undercharged
    sold = await paper.place_order(order("ADAEUR", "sell", "15"))
    assert (sold.avg_price, sold.cost) == (D("0.194700"), D("2.920500"))
    assert sold.fee == D("0.00759330")
    assert (await paper.balances()).tradable["ADA"] == 0


async def test_same_client_order_id_never_fills_twice(paper: PaperExchange) -> None:
    request = order("XXBTZEUR", "buy", "0.001", "fixed-id")
    first = await paper.place_order(request)
    again = await asyncio.gather(*(paper.place_order(request) for _ in range(5)))
    assert all(a == first for a in again)
    assert (await paper.balances()).tradable["BTC"] == D("0.501")
    assert await paper.find_order("fixed-id") == first
    assert first.txid is not None
    assert await paper.query_orders([first.txid]) == {first.txid: first}


@pytest.mark.parametrize(
    ("pair", "side", "volume", "code"),
    [
        ("XXBTZEUR", "buy", "0.00001", "EOrder:Order minimum not met"),
        ("XXBTZEUR", "buy", "0.000000001", "EGeneral:Invalid arguments:volume"),
        ("XXBTZEUR", "buy", "0", "EGeneral:Invalid arguments:volume"),
        ("XXBTZEUR", "buy", "1", "EOrder:Insufficient funds"),
        ("XXBTZEUR", "sell", "0.50000001", "EOrder:Insufficient funds"),
        ("ADAEUR", "sell", "15", "EOrder:Insufficient funds"),  # staked ADA.S is not ADA
        ("SOLEUR", "buy", "1", "EQuery:Unknown asset pair"),
    ],
)
async def test_kraken_rules_and_codes(
    paper: PaperExchange, pair: str, side: str, volume: str, code: str
) -> None:
    before = await paper.balances()
    with pytest.raises(RejectedError) as caught:
        await paper.place_order(order(pair, side, volume))
    assert caught.value.code == code
    assert await paper.balances() == before


async def test_cost_minimum(ledger: PaperLedger) -> None:
    market = StubMarket()
    exchange = PaperExchange("paper", market, ledger)
    await exchange.seed({"EUR": D("1000")})
    await exchange.pair_rules(["ADA"], "EUR")
    original = market.tickers

    async def cheap(pairs: Sequence[str]) -> dict[str, Quote]:
        quotes = await original(pairs)
        return {p: Quote(p, D("0.01"), D("0.02"), D("0.02"), NOW) for p in quotes}

    market.tickers = cheap  # type: ignore[method-assign]
    with pytest.raises(RejectedError) as caught:
        await exchange.place_order(order("ADAEUR", "buy", "15"))  # 0.30 EUR < 0.45
    assert caught.value.code == "EOrder:Cost minimum not met"


@pytest.mark.parametrize("status", ["cancel_only", "post_only", "limit_only"])
async def test_market_not_online(ledger: PaperLedger, status: str) -> None:
    market = StubMarket()
    exchange = PaperExchange("paper", market, ledger)
    await exchange.seed({"EUR": D("1000")})
    await exchange.pair_rules(["BTC"], "EUR")
    market.status = status  # changed after planning: the order sees it
    with pytest.raises(RejectedError) as caught:
        await exchange.place_order(order("XXBTZEUR", "buy", "0.001"))
    assert caught.value.code == f"EService:Market in {status} mode"


async def test_validate_checks_without_filling(paper: PaperExchange) -> None:
    checked = await paper.place_order(order("XXBTZEUR", "buy", "0.001", validate=True))
    assert checked.txid is None and checked.volume_executed == 0 and checked.done
    assert (await paper.balances()).tradable["EUR"] == D("1000")
    assert await paper.find_order(checked.client_order_id) is None
    with pytest.raises(RejectedError):
        await paper.place_order(order("XXBTZEUR", "buy", "0.00001", validate=True))


async def test_cancel_and_fee(paper: PaperExchange) -> None:
    assert await paper.fee_rate("XXBTZEUR") == D("0.0026")
    with pytest.raises(RejectedError) as caught:
        await paper.cancel_order("nothing-open")
    assert caught.value.code == "EOrder:Unknown order"


async def test_paper_with_simulated_prices(ledger: PaperLedger) -> None:
    market = SimulatedMarket(seed=7, clock=lambda: NOW)
    exchange = PaperExchange("sim", market, ledger, fee_rate=D("0.004"))
    await exchange.seed({"EUR": D("10000")})
    rules = await exchange.pair_rules(["BTC", "DOGE"], "EUR")
    quote = (await exchange.tickers([rules["BTC"].pair]))[rules["BTC"].pair]
    filled = await exchange.place_order(order(rules["BTC"].pair, "buy", "0.01"))
    assert filled.avg_price == quote.ask
    assert filled.fee == (filled.cost * D("0.004")).quantize(D("1E-8"))
    await exchange.close()


# --- the same rules as Kraken (the fake) -------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeKraken]:
    async with FakeKraken(balances={"ZEUR": "100.0000", "XXBT": "0.0100000000"}) as server:
        yield server


@pytest.mark.parametrize(
    ("pair", "side", "volume", "status"),
    [
        ("XXBTZEUR", "buy", "0.00001", "online"),
        ("XXBTZEUR", "buy", "0.000000001", "online"),
        ("XXBTZEUR", "buy", "0.01", "online"),  # 912 EUR > 100: funds
        ("XXBTZEUR", "sell", "0.02", "online"),
        ("XXBTZEUR", "buy", "0.0001", "cancel_only"),
        ("XXBTZEUR", "buy", "0.0001", "online"),  # fine on both
    ],
)
async def test_paper_and_kraken_agree(
    fake: FakeKraken, ledger: PaperLedger, pair: str, side: str, volume: str, status: str
) -> None:
    fake.set_status(pair, status)
    live = KrakenClient(fake.url, fake.api_key, fake.api_secret)
    prices = KrakenClient(fake.url, None, None)
    paper = PaperExchange("p", prices, ledger)
    await paper.seed({"EUR": D("100"), "BTC": D("0.01")})
    outcomes: list[tuple[str, object, object]] = []
    try:
        for exchange in (live, paper):
            await exchange.pair_rules(["BTC"], "EUR")
            try:
                result = await exchange.place_order(order(pair, side, volume))
                outcomes.append(("filled", result.cost, result.fee.quantize(D("0.00001"))))
            except RejectedError as exc:
                outcomes.append(("rejected", exc.code, None))
    finally:
        await live.close()
        await paper.close()
    assert outcomes[0] == outcomes[1]
