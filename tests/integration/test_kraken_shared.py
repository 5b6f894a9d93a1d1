"""One daemon, many accounts: one HTTP session, one metadata cache, nothing fetched at start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from rebalancerd.config import Settings, load_settings
from rebalancerd.exchange.accounts import Exchanges, build_exchanges, close_exchanges
from rebalancerd.exchange.kraken.client import KrakenClient, KrakenMarket
from rebalancerd.exchange.paper import MemoryLedger, PaperExchange
from tests.fake_kraken import FakeKraken


@pytest.fixture
async def fake() -> AsyncIterator[FakeKraken]:
    async with FakeKraken() as server:
        yield server


def settings_for(tmp_path: Path, fake: FakeKraken, live: int, paper: str = "kraken") -> Settings:
    lines = [f'[kraken]\napi_url = "{fake.url}"', f'[paper]\nprices = "{paper}"']
    for i in range(live):
        key, secret = fake.add_account({"ZEUR": "100"})
        lines.append(
            f'[accounts.live{i}]\nmode = "live"\napi_key = "{key}"\napi_secret = "{secret}"'
        )
    lines.append('[accounts.sandbox]\nmode = "paper"')
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return load_settings(path, {"HOME": str(tmp_path)})


async def test_accounts_share_one_market_and_one_session_and_fetch_nothing_at_start(
    tmp_path: Path, fake: FakeKraken
) -> None:
    exchanges = await build_exchanges(settings_for(tmp_path, fake, live=3), MemoryLedger())
    try:
        assert fake.calls() == []  # nothing per account at start-up
        clients = [exchanges[f"live{i}"] for i in range(3)]
        assert all(isinstance(c, KrakenClient) for c in clients)
        assert len({id(c.market) for c in clients if isinstance(c, KrakenClient)}) == 1
        for client in clients:
            await client.pair_rules(["BTC", "ETH"], "EUR")
            await client.balances()
        paper = exchanges["sandbox"]
        await paper.pair_rules(["BTC"], "EUR")
        await paper.tickers(["XXBTZEUR"])
        # Assets and AssetPairs once for the daemon, not once per account.
        assert len(fake.calls("Assets")) == len(fake.calls("AssetPairs")) == 1
        assert len(fake.calls("BalanceEx")) == 3 and len(fake.calls("Ticker")) == 1
        # One pool of kept-alive connections: Assets || AssetPairs opened two, and every later
        # call (three accounts' BalanceEx, the paper account's Ticker) reused one of them.
        assert len({r.peer for r in fake.calls()}) == 2
        assert isinstance(exchanges, Exchanges) and exchanges.kraken is not None
        session = exchanges.kraken.session
    finally:
        await close_exchanges(exchanges)
    assert session.closed
    assert fake.errors() == []


async def test_a_simulated_daemon_opens_no_session(tmp_path: Path, fake: FakeKraken) -> None:
    exchanges = await build_exchanges(
        settings_for(tmp_path, fake, live=0, paper="simulated"), MemoryLedger()
    )
    try:
        assert isinstance(exchanges["sandbox"], PaperExchange)
        assert isinstance(exchanges, Exchanges) and exchanges.kraken is None
    finally:
        await close_exchanges(exchanges)


async def test_warming_one_client_warms_the_metadata_of_all(
    tmp_path: Path, fake: FakeKraken
) -> None:
    exchanges = await build_exchanges(settings_for(tmp_path, fake, live=2), MemoryLedger())
    try:
        await exchanges["live0"].warm()
        await exchanges["sandbox"].warm()  # the same market: fresh, nothing to fetch
        assert [r.endpoint for r in fake.calls()] in (
            ["Assets", "AssetPairs"],
            ["AssetPairs", "Assets"],
        )
        await exchanges["live1"].pair_rules(["BTC"], "EUR")
        await exchanges["live1"].balances()
        assert [r.endpoint for r in fake.calls()][2:] == ["BalanceEx"]
    finally:
        await close_exchanges(exchanges)


async def test_clients_leave_a_market_and_session_they_were_given_open(fake: FakeKraken) -> None:
    async with aiohttp.ClientSession() as session:
        market = KrakenMarket(fake.url, session=session)
        clients = [
            KrakenClient(fake.url, fake.api_key, fake.api_secret, market=market, session=session)
            for _ in range(2)
        ]
        await asyncio.gather(*(c.pair_rules(["BTC"], "EUR") for c in clients))
        for client in clients:
            await client.close()
        assert not session.closed
        assert "SOL" in await market.pair_rules(["SOL"], "EUR")  # still cached and usable
        assert len(fake.calls("AssetPairs")) == 1  # concurrent first callers shared one fetch
        quotes = await market.tickers(["SOLEUR"])
        assert quotes["SOLEUR"].bid > 0
        await market.close()
        assert not session.closed
