"""The API under test: the real app over a real Scheduler, store and paper accounts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from rebalancerd.api.app import make_app
from rebalancerd.config import AccountSettings, HttpSettings, PaperSettings, Settings
from rebalancerd.exchange.accounts import build_exchanges, close_exchanges
from rebalancerd.metrics import Metrics
from rebalancerd.runs.lifecycle import new_owner_id
from rebalancerd.runs.loop import Scheduler
from rebalancerd.store.embedded import connect_pool
from rebalancerd.store.paper_ledger import PgPaperLedger
from rebalancerd.store.repository import Store

# The original's curl body, verbatim.
ORIGINAL_BODY = {
    "name": "My Portfolio",
    "targetWeights": {"BTC": 40, "ETH": 30, "SOL": 20, "ADA": 10},
    "rebalanceEnabled": True,
    "rebalanceInterval": "weekly",
    "rebalanceThreshold": 10,
}


def api_settings(tmp_path: Path, token: str | None = None, max_body: int = 65536) -> Settings:
    """Two paper accounts priced by the offline simulated market."""
    return Settings(
        state_dir=tmp_path,
        accounts={
            "default": AccountSettings(mode="paper"),
            "sandbox": AccountSettings(mode="paper", balances={"EUR": Decimal("5000")}),
        },
        paper=PaperSettings(prices="simulated"),
        http=HttpSettings(
            api_token=None if token is None else SecretStr(token), max_body_bytes=max_body
        ),
    )


@dataclass
class Api:
    """A test client with the pieces behind it."""

    client: TestClient[web.Request, web.Application]
    scheduler: Scheduler
    store: Store
    metrics: Metrics
    token: str | None = None

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, Any]:
        """(status, decoded JSON) of one request; `raw` sends bytes as they are (still as JSON,
        unless `headers` name another Content-Type)."""
        sent = dict(headers or {})
        if auth and self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        data = raw if raw is not None else None if body is None else orjson.dumps(body)
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        async with self.client.request(method, path, data=data, headers=sent) as resp:
            text = await resp.read()
            ctype = resp.headers.get("Content-Type", "")
            return resp.status, orjson.loads(text) if "json" in ctype else text.decode()

    async def create(self, **fields: Any) -> dict[str, Any]:
        """Create a portfolio (the original's body, overridden by `fields`); its JSON."""
        status, body = await self.call(
            "POST", "/api/portfolios/manage", {**ORIGINAL_BODY, **fields}
        )
        assert status == 201, body
        portfolio: dict[str, Any] = body["portfolio"]
        return portfolio


@asynccontextmanager
async def running_api(
    store: Store,
    tmp_path: Path,
    token: str | None = None,
    max_body: int = 65536,
    settings: Settings | None = None,
) -> AsyncIterator[Api]:
    """The app served by aiohttp's TestServer on a loopback port."""
    async with (
        serving(store, tmp_path, token, max_body, settings) as (app, scheduler, metrics),
        TestClient(TestServer(app)) as client,
    ):
        yield Api(client, scheduler, store, metrics, token)


@asynccontextmanager
async def serving(
    store: Store,
    tmp_path: Path,
    token: str | None = None,
    max_body: int = 65536,
    settings: Settings | None = None,
) -> AsyncIterator[tuple[web.Application, Scheduler, Metrics]]:
    """The app, its scheduler (loop not started: triggers run inline) and metrics; `settings`
    replaces api_settings' two paper accounts."""
    settings = settings or api_settings(tmp_path, token, max_body)
    exchanges = await build_exchanges(settings, PgPaperLedger(store))
    metrics = Metrics()
    scheduler = Scheduler(settings.scheduler, store, exchanges, metrics, owner=new_owner_id())
    await scheduler.refresh()
    try:
        yield make_app(settings, store, scheduler, metrics), scheduler, metrics
    finally:
        await close_exchanges(exchanges)


@asynccontextmanager
async def on_port(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on a free loopback port; its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def own_database(base_url: str, template: str) -> AsyncIterator[Store]:
    """A store on a fresh database cloned from the migrated template (for module fixtures)."""
    from tests.conftest import _admin, dsn_for

    name = "t_" + uuid.uuid4().hex[:16]
    await _admin(base_url, f"CREATE DATABASE {name} TEMPLATE {template}")
    store = Store(await connect_pool(dsn_for(base_url, name), timeout=10))
    try:
        yield store
    finally:
        await store.close()
        await _admin(base_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def open_run(store: Store, portfolio_id: str) -> None:
    """Make the portfolio look busy: an open run held by another daemon."""
    async with store.transaction() as conn:
        portfolio = await store.lock_portfolio(conn, portfolio_id)
        assert portfolio is not None
        run = await store.insert_run(conn, portfolio, None, "manual", False, "elsewhere:1:x", 60)
        assert run is not None
