"""An AddOrder without a clear answer is found by cl_ord_id and never sent twice."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from rebalancerd.exchange.kraken.client import KrakenClient, LookupPolicy, RetryPolicy
from rebalancerd.exchange.protocol import AmbiguousOrderError, OrderRequest
from tests import fake_kraken_calls
from tests.fake_kraken import FakeKraken, FastTime

TIMEOUT = 0.3
LOOKUP = LookupPolicy((0.0, 5.0, 10.0, 20.0))  # scaled by FAST: 0.35 s in all


FAST = FastTime(100)  # rate-limit waits after a refusal run 100x faster, on both sides


@pytest.fixture
async def fake() -> AsyncIterator[FakeKraken]:
    async with FakeKraken(clock=FAST) as server:
        yield server


@pytest.fixture
async def client(fake: FakeKraken) -> AsyncIterator[KrakenClient]:
    kraken = KrakenClient(
        fake.url,
        fake.api_key,
        fake.api_secret,
        timeout=TIMEOUT,
        retry=RetryPolicy(attempts=3, base=0.001, cap=0.002),
        lookup=LOOKUP,
        clock=FAST,
        sleep=FAST.sleep,
    )
    await kraken.pair_rules(["BTC", "ETH"], "EUR")
    yield kraken
    await kraken.close()


def new_order(volume: str = "0.001") -> OrderRequest:
    return OrderRequest("XXBTZEUR", "buy", Decimal(volume), str(uuid.uuid4()))


@pytest.mark.parametrize("how", ["drop", "502", "520", "hang"])
async def test_placed_but_reply_lost_is_found_not_resent(
    client: KrakenClient, fake: FakeKraken, how: str
) -> None:
    fake.lose_reply("AddOrder", how)
    request = new_order()
    state = await client.place_order(request)
    assert len(fake.calls("AddOrder")) == 1
    assert len(fake.placed) == 1
    placed = fake.placed[0]
    assert placed.cl_ord_id == request.client_order_id
    assert (state.txid, state.status, state.pair) == (placed.txid, "closed", "XXBTZEUR")
    assert (state.cost, state.fee) == (placed.cost, placed.fee)
    assert state.volume_executed == Decimal("0.001")


@pytest.mark.parametrize(
    "code", ["EService:Unavailable", "EService:Busy", "EGeneral:Internal error"]
)
async def test_placed_but_answered_with_a_service_error(
    client: KrakenClient, fake: FakeKraken, code: str
) -> None:
    fake.inject("AddOrder", error=code, after=True)
    state = await client.place_order(new_order())
    assert len(fake.calls("AddOrder")) == 1 and len(fake.placed) == 1
    assert state.txid == fake.placed[0].txid


@pytest.mark.parametrize(
    "fault", [{"status": 502}, {"hang": True}, {"drop": True}, {"error": "EService:Unavailable"}]
)
async def test_never_placed_raises_ambiguous_after_bounded_lookups(
    client: KrakenClient, fake: FakeKraken, fault: dict[str, object]
) -> None:
    fake.inject("AddOrder", **fault)
    request = new_order()
    with pytest.raises(AmbiguousOrderError) as caught:
        await client.place_order(request)
    assert caught.value.client_order_id == request.client_order_id
    assert len(fake.calls("AddOrder")) == 1 and fake.placed == []
    assert len(fake.calls("OpenOrders")) == len(LOOKUP.delays)
    assert len(fake.calls("ClosedOrders")) == len(LOOKUP.delays)


async def test_an_order_listed_late_is_found_by_a_later_lookup(
    client: KrakenClient, fake: FakeKraken
) -> None:
    fake.venue.listing_delay = 0.1  # Kraken may list a new order only after a while
    fake.lose_reply("AddOrder", "502")
    state = await client.place_order(new_order())
    assert state.txid == fake.placed[0].txid
    assert len(fake.placed) == 1
    assert len(fake.calls("OpenOrders")) >= 2  # the first look-up came too early


async def test_an_order_still_open_is_returned_open(client: KrakenClient, fake: FakeKraken) -> None:
    fake.venue.fill_market_orders = False
    fake.lose_reply("AddOrder", "drop")
    state = await client.place_order(new_order())
    assert state.status == "open" and not state.done
    assert len(fake.calls("ClosedOrders")) == 0  # found among the open orders


async def test_failing_lookups_are_retried(client: KrakenClient, fake: FakeKraken) -> None:
    fake.lose_reply("AddOrder", "drop")
    fake.inject("OpenOrders", status=502, times=2)
    fake.inject("ClosedOrders", error="EAPI:Rate limit exceeded")
    state = await client.place_order(new_order())
    assert state.txid == fake.placed[0].txid and len(fake.placed) == 1


async def test_lookup_matches_only_our_client_order_id(
    client: KrakenClient, fake: FakeKraken, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = await client.place_order(new_order())
    # A server that ignored the cl_ord_id filter would list the other order too.
    monkeypatch.setattr(fake_kraken_calls, "_matches", lambda order, params: True)
    fake.inject("AddOrder", status=502)
    request = new_order()
    with pytest.raises(AmbiguousOrderError):
        await client.place_order(request)
    assert other.txid and len(fake.placed) == 1


async def test_the_reply_lost_once_does_not_affect_the_next_order(
    client: KrakenClient, fake: FakeKraken
) -> None:
    fake.lose_reply("AddOrder", "hang")
    first = await client.place_order(new_order())
    second = await client.place_order(new_order("0.002"))
    assert len(fake.placed) == 2 and first.txid != second.txid
    assert second.volume_executed == Decimal("0.002")
