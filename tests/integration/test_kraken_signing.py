"""Signing per Kraken's official test vector, accepted by the fake; secrets never leak."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from rebalancerd.exchange.kraken.client import KrakenClient, LookupPolicy, RetryPolicy
from rebalancerd.exchange.kraken.transport import decode_secret, sign
from rebalancerd.exchange.protocol import ExchangeError, FatalError, OrderRequest
from tests.fake_kraken import FakeKraken, expected_sign

# Quoted exactly from docs.kraken.com (spot REST authentication guide).
VECTOR_SECRET = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)
VECTOR_NONCE = "1616492376594"
VECTOR_BODY = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
VECTOR_SIGN = (
    "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeKraken]:
    async with FakeKraken() as server:
        yield server


def test_official_test_vector() -> None:
    secret = base64.b64decode(VECTOR_SECRET)
    assert sign("/0/private/AddOrder", VECTOR_NONCE, VECTOR_BODY, secret) == VECTOR_SIGN
    assert sign("/0/private/AddOrder", int(VECTOR_NONCE), VECTOR_BODY, secret) == VECTOR_SIGN


def test_fake_checks_signatures_with_the_same_vector() -> None:
    signed = expected_sign("/0/private/AddOrder", VECTOR_BODY.encode(), VECTOR_NONCE, VECTOR_SECRET)
    assert signed == VECTOR_SIGN


def test_signature_depends_on_path_nonce_and_body() -> None:
    secret = base64.b64decode(VECTOR_SECRET)
    variants = {
        sign("/0/private/AddOrder", VECTOR_NONCE, VECTOR_BODY, secret),
        sign("/0/private/Balance", VECTOR_NONCE, VECTOR_BODY, secret),
        sign("/0/private/AddOrder", "1616492376595", VECTOR_BODY, secret),
        sign("/0/private/AddOrder", VECTOR_NONCE, VECTOR_BODY.replace("1.25", "1.26"), secret),
    }
    assert len(variants) == 4


async def test_fake_accepts_our_signed_calls(fake: FakeKraken) -> None:
    client = KrakenClient(fake.url, fake.api_key, fake.api_secret)
    try:
        await client.balances()
    finally:
        await client.close()
    assert fake.errors() == []
    assert [r.endpoint for r in fake.calls() if r.private] == ["BalanceEx"]


async def test_wrong_secret_is_fatal_and_not_retried(fake: FakeKraken) -> None:
    _, other_secret = fake.add_account({})
    client = KrakenClient(fake.url, fake.api_key, other_secret, retry=RetryPolicy(base=0.001))
    try:
        with pytest.raises(FatalError) as caught:
            await client.balances()
    finally:
        await client.close()
    assert caught.value.code == "EAPI:Invalid signature"
    assert len(fake.calls("BalanceEx")) == 1


def test_a_secret_that_is_not_base64_is_fatal_without_echoing_it() -> None:
    with pytest.raises(FatalError) as caught:
        decode_secret("not base64 at all!!")
    assert "not base64 at all" not in str(caught.value)


async def test_no_credentials_means_public_only(fake: FakeKraken) -> None:
    client = KrakenClient(fake.url, None, None)
    try:
        assert "BTC" in await client.pair_rules(["BTC"], "EUR")
        with pytest.raises(FatalError):
            await client.balances()
    finally:
        await client.close()


async def test_secrets_never_in_repr_logs_or_errors(
    fake: FakeKraken, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = KrakenClient(
        fake.url,
        fake.api_key,
        fake.api_secret,
        timeout=0.2,
        retry=RetryPolicy(attempts=2, base=0.001),
        lookup=LookupPolicy((0.0,)),
    )
    fake.inject("BalanceEx", status=502, times=None)
    fake.inject("AddOrder", hang=True)
    fake.inject("OpenOrders", drop=True, times=None)
    errors: list[ExchangeError] = []
    try:
        for call in (
            client.balances(),
            client.place_order(
                OrderRequest("XXBTZEUR", "buy", Decimal("0.001"), str(uuid.uuid4()))
            ),
        ):
            with pytest.raises(ExchangeError) as caught:
                await call
            errors.append(caught.value)
    finally:
        await client.close()
    texts = [repr(client), caplog.text, *(f"{e!s} {e!r} {e.__cause__!r}" for e in errors)]
    raw_secret = base64.b64decode(fake.api_secret)
    for text in texts:
        assert fake.api_key not in text
        assert fake.api_secret not in text
        assert repr(raw_secret) not in text
    assert len(caplog.records) > 3  # the logs did talk about these failures
