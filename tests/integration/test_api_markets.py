"""A portfolio's symbols are checked against its account's EUR markets where it enters:
from the cached Kraken market list for live accounts, from the price source for paper ones;
when the list cannot be had, the portfolio is stored with a warning and its run says why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from rebalancerd.api.markets import MARKETS
from rebalancerd.config import AccountSettings, KrakenSettings, PaperSettings, Settings
from rebalancerd.store.repository import Store
from tests.api_support import Api, running_api
from tests.fake_kraken import FakeKraken, Fault

MANAGE = "/api/portfolios/manage"
UNKNOWN = {"BTC": 50, "NOPE": 50}


@pytest.fixture
async def paper(store: Store, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(store, tmp_path) as running:  # paper accounts, simulated prices
        yield running


@pytest.fixture
async def kraken() -> AsyncIterator[FakeKraken]:
    async with FakeKraken() as server:
        yield server


def live_settings(tmp_path: Path, fake: FakeKraken) -> Settings:
    """Account `default` live on the fake; a paper account priced by the same (fake) Kraken."""
    key, secret = SecretStr(fake.api_key), SecretStr(fake.api_secret)
    return Settings(
        state_dir=tmp_path,
        kraken=KrakenSettings(api_url=fake.url, timeout=1.0),
        accounts={
            "default": AccountSettings(mode="live", api_key=key, api_secret=secret),
            "paper": AccountSettings(mode="paper"),
        },
        paper=PaperSettings(prices="kraken"),
    )


@pytest.fixture
async def live(store: Store, tmp_path: Path, kraken: FakeKraken) -> AsyncIterator[Api]:
    async with running_api(store, tmp_path, settings=live_settings(tmp_path, kraken)) as running:
        yield running


async def create(api: Api, weights: dict[str, int], account: str = "default") -> tuple[int, dict]:
    body = {"name": "p", "targetWeights": weights, "account": account}
    status, reply = await api.call("POST", MANAGE, body)
    return status, reply


async def test_paper_account_refuses_a_symbol_its_price_source_does_not_list(paper: Api) -> None:
    status, reply = await create(paper, UNKNOWN)
    assert status == 422, reply
    assert "NOPE" in reply["error"] and "BTC" not in reply["error"]
    assert (await paper.call("GET", MANAGE))[1]["count"] == 0  # nothing stored


async def test_a_known_symbol_is_stored_without_warnings(paper: Api) -> None:
    status, reply = await create(paper, {"BTC": 60, "ETH": 30, "EUR": 10})
    assert status == 201, reply
    assert reply["warnings"] == []


async def test_update_refuses_an_unknown_symbol_and_keeps_the_weights(paper: Api) -> None:
    status, created = await create(paper, {"BTC": 100})
    pid = created["portfolio"]["id"]
    change = {"id": pid, "targetWeights": {"NOPE": 60, "ZZZ": 40}}
    status, reply = await paper.call("PUT", MANAGE, change)
    assert status == 422, reply
    assert "NOPE" in reply["error"] and "ZZZ" in reply["error"]
    listed = (await paper.call("GET", MANAGE))[1]["portfolios"]
    assert listed[0]["targetWeights"] == {"BTC": 100}


async def test_live_account_checks_against_the_cached_kraken_market_list(
    live: Api, kraken: FakeKraken
) -> None:
    status, reply = await create(live, UNKNOWN)
    assert status == 422, reply
    assert "NOPE" in reply["error"] and "'default'" in reply["error"]
    status, reply = await create(live, {"BTC": 60, "ETH": 40})
    assert (status, reply["warnings"]) == (201, [])
    # Known once, the list is served from the cache: one AssetPairs for both requests.
    assert len(kraken.calls("AssetPairs")) == 1


async def test_paper_account_priced_at_kraken_refuses_what_kraken_does_not_list(
    live: Api,
) -> None:
    status, reply = await create(live, UNKNOWN, account="paper")
    assert status == 422, reply
    assert "NOPE" in reply["error"]


async def test_without_a_market_list_the_portfolio_is_stored_with_a_warning(
    live: Api, kraken: FakeKraken
) -> None:
    live.client.app[MARKETS].timeout = 0.2
    kraken.inject("AssetPairs", Fault(hang=True))  # the first read never answers
    status, reply = await create(live, UNKNOWN)
    assert status == 201, reply
    [warning] = reply["warnings"]
    assert "not checked" in warning and "market list unavailable" in warning
    pid = reply["portfolio"]["id"]
    assert reply["portfolio"]["targetWeights"] == UNKNOWN

    # The run then reports the same problem (once Kraken answers again).
    status, ran = await live.call(
        "POST", "/api/scheduler/trigger", {"portfolioId": pid, "dryRun": True}
    )
    assert status == 200, ran
    assert ran["success"] is False
    assert any("no EUR market for NOPE" in e for e in ran["history"]["errors"])
