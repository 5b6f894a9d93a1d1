"""Private calls on one key go one at a time with ordered nonces; bursts wait for the limits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from rebalancerd.exchange.kraken.client import KrakenClient, RetryPolicy
from rebalancerd.exchange.kraken.ratelimit import TierLimits
from rebalancerd.exchange.protocol import OrderRequest
from tests.fake_kraken import FakeKraken, FastTime

NO_LIMITS = TierLimits("none", rest_max=1e9, rest_decay=1e9, trade_max=1e9, trade_decay=1e9)


@pytest.fixture
def fast() -> FastTime:
    return FastTime(100)


@pytest.fixture
async def fake(fast: FastTime) -> AsyncIterator[FakeKraken]:
    async with FakeKraken(clock=fast) as server:
        yield server


def client_for(fake: FakeKraken, fast: FastTime, **kwargs: Any) -> KrakenClient:
    return KrakenClient(
        fake.url,
        fake.api_key,
        fake.api_secret,
        clock=fast,
        sleep=fast.sleep,
        retry=RetryPolicy(attempts=1),  # any refusal surfaces: nothing hides behind a retry
        **kwargs,
    )


def private_calls(client: KrakenClient, txid: str) -> list[Callable[[], Awaitable[Any]]]:
    return [
        client.balances,
        lambda: client.find_order(str(uuid.uuid4())),
        client.warm,  # TradeVolume (once: later ones find the fees fresh)
        lambda: client.query_orders([txid]),
    ]


async def test_fifty_concurrent_private_calls_reach_kraken_in_nonce_order(
    fake: FakeKraken, fast: FastTime
) -> None:
    fake.latency = 0.002  # replies take a while, so calls really overlap
    fake.account().tier = "pro"  # nonces are the point here; rate limits have their own tests
    client = client_for(fake, fast, tier="pro")
    await client.pair_rules(["BTC"], "EUR")
    placed = await client.place_order(OrderRequest("XXBTZEUR", "buy", Decimal("0.001"), "a"))
    assert placed.txid is not None
    calls = private_calls(client, placed.txid)
    try:
        await asyncio.gather(*(calls[i % len(calls)]() for i in range(50)))
    finally:
        await client.close()
    assert fake.errors() == []  # no EAPI:Invalid nonce, no rate-limit refusal
    nonces = [int(r.params["nonce"]) for r in fake.calls() if r.private]
    assert len(nonces) >= 50
    assert nonces == sorted(set(nonces))


async def test_private_calls_do_not_overlap_but_public_ones_run_alongside() -> None:
    # Judged from what the fake saw (when each request arrived and was answered), not from how
    # long the caller waited: a slow machine can neither fail this nor make it pass wrongly.
    async with FakeKraken(latency=0.1) as fake:
        client = KrakenClient(fake.url, fake.api_key, fake.api_secret)
        try:
            await client.pair_rules(["BTC"], "EUR")
            mark = len(fake.requests)
            await asyncio.gather(client.balances(), client.tickers(["XXBTZEUR"]))
            balance, ticker = (
                next(r for r in fake.requests[mark:] if r.endpoint == name)
                for name in ("BalanceEx", "Ticker")
            )
            mark = len(fake.requests)
            await asyncio.gather(client.balances(), client.balances())
            first, second = fake.requests[mark:]
        finally:
            await client.close()
    assert balance.done_at is not None and ticker.done_at is not None
    assert ticker.at < balance.done_at and balance.at < ticker.done_at  # in flight together
    assert first.done_at is not None and first.done_at <= second.at  # one after the other


async def test_starter_burst_waits_instead_of_being_refused(
    fake: FakeKraken, fast: FastTime
) -> None:
    client = client_for(fake, fast, tier="starter")
    started = fast()
    try:
        await asyncio.gather(*(client.balances() for _ in range(30)))
    finally:
        await client.close()
    assert fake.errors() == []
    assert len(fake.calls("BalanceEx")) == 30
    # Kraken's starter counter (15, -0.33/s) lets 30 calls through in no less than 15/0.33 s.
    assert fast() - started >= 15 / 0.33


async def test_the_fake_refuses_the_same_burst_without_a_limiter(
    fake: FakeKraken, fast: FastTime
) -> None:
    client = client_for(fake, fast, tier=NO_LIMITS)
    try:
        results = await asyncio.gather(
            *(client.balances() for _ in range(40)), return_exceptions=True
        )
    finally:
        await client.close()
    refused = len(fake.errors("EAPI:Rate limit exceeded"))
    assert refused >= 10  # about 25, less what decays while the calls run
    assert sum(isinstance(r, Exception) for r in results) == refused


@pytest.mark.parametrize(("tier", "refused"), [("starter", False), (NO_LIMITS, True)])
async def test_order_burst_on_one_pair_respects_the_trading_counter(
    tier: str | TierLimits, refused: bool
) -> None:
    # validate=true: AddOrder alone (no QueryOrders), and it still counts on Kraken's counter.
    fast = FastTime(100 if not refused else 1)  # the control must not decay while it runs
    orders = [
        OrderRequest("ADAEUR", "buy", Decimal(15), str(uuid.uuid4()), True) for _ in range(70)
    ]
    async with FakeKraken(clock=fast) as fake:
        client = client_for(fake, fast, tier=tier)
        started = fast()
        try:
            await asyncio.gather(
                *(client.place_order(o) for o in orders), return_exceptions=refused
            )
        finally:
            await client.close()
    assert bool(fake.errors("EOrder:Rate limit exceeded")) is refused
    assert len(fake.calls("AddOrder")) == 70
    if not refused:
        assert fake.errors() == []
        assert fast() - started >= 10  # threshold 60 decaying 1/s: the last 10 wait


async def wait_for_request(fake: FakeKraken, endpoint: str) -> None:
    """Until the fake has received a request for `endpoint` (bounded)."""
    for _ in range(400):
        if fake.calls(endpoint):
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{endpoint} never reached the fake")


async def test_a_key_shared_by_two_daemons_loses_no_call_to_a_nonce_race(
    fake: FakeKraken, fast: FastTime
) -> None:
    # Two daemons on one database share an account's key. Daemon A's BalanceEx takes its nonce,
    # then is slow to arrive; daemon B's TradeVolume, with a later nonce, is processed first.
    refused: list[str] = []
    first = client_for(fake, fast, on_nonce_refused=refused.append)
    second = client_for(fake, fast)
    fake.inject("BalanceEx", delay=0.2)
    await second.pair_rules(["BTC"], "EUR")  # its fee look-up asks for this pair
    try:
        balances = asyncio.create_task(first.balances())
        await wait_for_request(fake, "BalanceEx")
        await second.warm()
        assert (await balances).tradable["EUR"] == Decimal(10000)
    finally:
        await first.close()
        await second.close()
    # Kraken refused the first BalanceEx (not carried out), it was signed once more and counted.
    assert fake.errors("EAPI:Invalid nonce") == ["EAPI:Invalid nonce"]
    assert [r.endpoint for r in fake.calls() if r.private].count("BalanceEx") == 2
    assert refused == ["BalanceEx"]
