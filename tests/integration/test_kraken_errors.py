"""Every Kraken error string and transport failure lands in the right class of base.py's tree."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest

from rebalancerd.exchange.kraken.client import KrakenClient, LookupPolicy, RetryPolicy
from rebalancerd.exchange.kraken.errors import (
    ErrorReply,
    NoReply,
    Outcome,
    outcome_of,
    retry_after,
    to_error,
)
from rebalancerd.exchange.protocol import (
    AmbiguousOrderError,
    ExchangeError,
    FatalError,
    OrderRequest,
    RejectedError,
    RetryableError,
)
from tests.fake_kraken import FakeKraken, FastTime

R, S, J, F, A = Outcome.RETRY, Outcome.RESIGN, Outcome.REJECT, Outcome.FATAL, Outcome.AMBIGUOUS

# (Kraken error string, outcome for a read, outcome for AddOrder)
TABLE = [
    ("EAPI:Rate limit exceeded", R, R),
    ("EGeneral:Too many requests", R, R),
    ("EAuth:Rate limit exceeded", R, R),
    ("EOrder:Rate limit exceeded", R, R),
    ("EOrder:Domain rate limit exceeded", R, R),
    ("EService:Unavailable", R, A),
    ("EService:Busy", R, A),
    ("EService: Throttled: 1700000000", R, A),
    ("EService:Deadline elapsed", R, A),
    ("EGeneral:Internal error", R, A),
    ("EGeneral:Internal error:ABC123", R, A),
    ("EDatabase:Internal error", R, A),
    ("EAPI:Invalid nonce", S, S),
    ("EOrder:Insufficient funds", J, J),
    ("EOrder:Order minimum not met", J, J),
    ("EOrder:Cost minimum not met", J, J),
    ("EOrder:Tick size check failed", J, J),
    ("EOrder:Orders limit exceeded", J, J),
    ("EOrder:Invalid order", J, J),
    ("EOrder:Unknown order", J, J),
    ("EGeneral:Invalid arguments", J, J),
    ("EGeneral:Invalid arguments:volume", J, J),
    ("EGeneral:Invalid arguments:cl_ord_id", J, J),
    ("EQuery:Unknown asset pair", J, J),
    ("EQuery:Unknown asset", J, J),
    ("EService:Market in cancel_only mode", J, J),
    ("EService:Market in post_only mode", J, J),
    ("EService:Market in limit_only mode", J, J),
    ("EFunding:Max fee exceeded", J, J),
    ("EAPI:Invalid key", F, F),
    ("EAPI:Invalid signature", F, F),
    ("EGeneral:Permission denied", F, F),
    ("EGeneral:Temporary lockout", F, F),
    ("EAccount:Invalid permissions", F, F),
    ("EAuth:Account temporary disabled", F, F),
    ("EAuth:Account unconfirmed", F, F),
    ("ENew:Something never seen", J, A),  # unknown: don't loop on reads, look orders up
]
CLASS = {R: RetryableError, S: RetryableError, J: RejectedError, F: FatalError}
FAST_RETRY = RetryPolicy(attempts=3, base=0.001, cap=0.002)


@pytest.mark.parametrize(("code", "read", "placing"), TABLE)
def test_outcome_table(code: str, read: Outcome, placing: Outcome) -> None:
    assert outcome_of(code, placing=False) is read
    assert outcome_of(code, placing=True) is placing


def test_throttled_carries_retry_after() -> None:
    assert retry_after("EService: Throttled: 1000", now=990.0) == 10.0
    assert retry_after("EService:Throttled:1000", now=2000.0) == 0.0
    assert retry_after("EService:Unavailable", now=0.0) is None
    error = to_error(ErrorReply("Ticker", ["EService:Throttled:4102444800"]))
    assert isinstance(error, RetryableError) and error.retry_after and error.retry_after > 0


@pytest.mark.parametrize(
    ("failure", "placing", "cls"),
    [
        (NoReply("BalanceEx", "HTTP 502", sent=True, status=502), False, RetryableError),
        (NoReply("BalanceEx", "HTTP 429", sent=True, status=429), False, RetryableError),
        (NoReply("BalanceEx", "timeout", sent=True), False, RetryableError),
        (NoReply("BalanceEx", "HTTP 404", sent=True, status=404), False, FatalError),
        (NoReply("BalanceEx", "HTTP 403", sent=True, status=403), False, FatalError),
        (NoReply("AddOrder", "cannot connect", sent=False), True, RetryableError),
        (NoReply("AddOrder", "HTTP 404", sent=True, status=404), True, ExchangeError),
        (
            ErrorReply("BalanceEx", ["WGeneral:Warning", "EQuery:Unknown asset"]),
            False,
            RejectedError,
        ),
    ],
)
def test_transport_failures(
    failure: NoReply | ErrorReply, placing: bool, cls: type[ExchangeError]
) -> None:
    assert type(to_error(failure, placing=placing)) is cls


FAST = FastTime(1000)  # rate-limit waits after a refusal run 1000x faster, on both sides


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
        timeout=0.3,
        retry=FAST_RETRY,
        lookup=LookupPolicy((0.0, 0.001)),
        clock=FAST,
        sleep=FAST.sleep,
    )
    await kraken.pair_rules(["BTC"], "EUR")
    yield kraken
    await kraken.close()


@pytest.mark.parametrize(("code", "read", "placing"), TABLE)
async def test_reads_through_the_fake(
    client: KrakenClient, fake: FakeKraken, code: str, read: Outcome, placing: Outcome
) -> None:
    fake.inject("BalanceEx", error=code, times=None)
    with pytest.raises(CLASS[read]) as caught:
        await client.balances()
    assert caught.value.code == code
    retried = read in (R, S)
    resigned = 1 if read is S else 0  # once more at once, outside the retry budget
    assert len(fake.calls("BalanceEx")) == (FAST_RETRY.attempts if retried else 1) + resigned


async def test_a_transient_error_is_retried_then_succeeds(
    client: KrakenClient, fake: FakeKraken
) -> None:
    fake.inject("BalanceEx", error="EAPI:Rate limit exceeded")
    fake.inject("Ticker", status=502)
    assert (await client.balances()).tradable["EUR"] == Decimal(10000)
    assert (await client.tickers(["XXBTZEUR"]))["XXBTZEUR"].bid == Decimal("91234.4")
    assert len(fake.calls("BalanceEx")) == len(fake.calls("Ticker")) == 2


@pytest.mark.parametrize(
    ("fault", "cls"),
    [
        ({"status": 502}, RetryableError),
        ({"status": 504}, RetryableError),
        ({"status": 404}, FatalError),
        ({"hang": True}, RetryableError),
        ({"drop": True}, RetryableError),
    ],
)
async def test_read_transport_failures(
    client: KrakenClient, fake: FakeKraken, fault: dict[str, object], cls: type
) -> None:
    fake.inject("BalanceEx", times=None, **fault)
    with pytest.raises(cls):
        await client.balances()


def new_order() -> OrderRequest:
    return OrderRequest("XXBTZEUR", "buy", Decimal("0.001"), str(uuid.uuid4()))


@pytest.mark.parametrize(("code", "read", "placing"), [t for t in TABLE if t[2] in (R, J, F)])
async def test_add_order_refusals_are_not_looked_up(
    client: KrakenClient, fake: FakeKraken, code: str, read: Outcome, placing: Outcome
) -> None:
    fake.inject("AddOrder", error=code, times=None)
    with pytest.raises(CLASS[placing]) as caught:
        await client.place_order(new_order())
    assert caught.value.code == code
    assert len(fake.calls("AddOrder")) == 1  # never re-sent, not even rate-limited ones
    assert fake.calls("OpenOrders") == [] and fake.placed == []


@pytest.mark.parametrize(("code", "read", "placing"), [t for t in TABLE if t[2] is A])
async def test_add_order_ambiguous_errors_are_looked_up(
    client: KrakenClient, fake: FakeKraken, code: str, read: Outcome, placing: Outcome
) -> None:
    fake.inject("AddOrder", error=code)
    request = new_order()
    with pytest.raises(AmbiguousOrderError) as caught:
        await client.place_order(request)  # not placed: look-ups find nothing
    assert caught.value.client_order_id == request.client_order_id
    assert caught.value.code == code
    assert len(fake.calls("AddOrder")) == 1
    assert len(fake.calls("OpenOrders")) == len(fake.calls("ClosedOrders")) == 2


async def test_add_order_refused_for_nonce_is_checked_then_sent_once_more(
    client: KrakenClient, fake: FakeKraken
) -> None:
    fake.inject("AddOrder", error="EAPI:Invalid nonce")
    state = await client.place_order(new_order())
    assert state.status == "closed"
    assert len(fake.calls("AddOrder")) == 2 and len(fake.placed) == 1
    assert len(fake.calls("OpenOrders")) == 1  # looked up before sending again


async def test_add_order_invalid_nonce_twice_is_retryable(
    client: KrakenClient, fake: FakeKraken
) -> None:
    fake.inject("AddOrder", error="EAPI:Invalid nonce", times=2)
    with pytest.raises(RetryableError):
        await client.place_order(new_order())
    assert len(fake.calls("AddOrder")) == 2 and fake.placed == []


async def test_add_order_that_cannot_connect_is_retryable(fake: FakeKraken) -> None:
    # No pooled connection: a request on a kept-alive socket that dies is ambiguous instead.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    client = KrakenClient(fake.url, fake.api_key, fake.api_secret, session=session)
    try:
        await client.pair_rules(["BTC"], "EUR")
        await fake.stop()
        with pytest.raises(RetryableError) as caught:
            await client.place_order(new_order())
    finally:
        await client.close()
        await session.close()
    assert not isinstance(caught.value, AmbiguousOrderError)
    assert "cannot connect" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("cancel_only", "EService:Market in cancel_only mode"),
        ("post_only", "EService:Market in post_only mode"),
    ],
)
async def test_market_not_online_is_rejected(
    client: KrakenClient, fake: FakeKraken, status: str, code: str
) -> None:
    fake.set_status("XXBTZEUR", status)
    with pytest.raises(RejectedError) as caught:
        await client.place_order(new_order())
    assert caught.value.code == code
    assert fake.placed == []


@pytest.mark.parametrize(
    ("volume", "code"),
    [
        ("0.00001", "EOrder:Order minimum not met"),
        ("100", "EOrder:Insufficient funds"),
    ],
)
async def test_real_rejections_from_the_fake(
    client: KrakenClient, fake: FakeKraken, volume: str, code: str
) -> None:
    with pytest.raises(RejectedError) as caught:
        await client.place_order(
            OrderRequest("XXBTZEUR", "buy", Decimal(volume), str(uuid.uuid4()))
        )
    assert caught.value.code == code


async def test_cost_minimum_from_the_fake(client: KrakenClient, fake: FakeKraken) -> None:
    fake.set_price("XXBTZEUR", "100", "100.1")  # 0.00005 BTC now costs 0.005 EUR < 0.45
    with pytest.raises(RejectedError) as caught:
        await client.place_order(
            OrderRequest("XXBTZEUR", "buy", Decimal("0.00005"), str(uuid.uuid4()))
        )
    assert caught.value.code == "EOrder:Cost minimum not met"
