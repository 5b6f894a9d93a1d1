"""Safety controls through the HTTP API, in-process, against the fake Kraken over real HTTP:
approval before trading (approve, stale, reject, expire), the kill switch mid-run, trade caps,
the no-sell mode and the price-jump guard."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rebalancerd.api.app import make_app
from rebalancerd.config import AccountSettings, SchedulerSettings, Settings
from rebalancerd.exchange.kraken.client import KrakenClient
from rebalancerd.exchange.protocol import Exchange, OrderRequest, OrderState
from rebalancerd.metrics import Metrics
from rebalancerd.runs.loop import Scheduler
from rebalancerd.store.repository import Store
from tests.api_support import Api
from tests.fake_kraken import FakeKraken
from tests.integration.test_executor import FAST_LOOKUP, FAST_RETRY

TWO = {"BTC": 50, "ETH": 50}  # from the fake's balances: buys BTC and ETH with the cash
SELL_SELL_BUY = {"BTC": 10, "ETH": 10, "ADA": 80}
TRIGGER = "/api/scheduler/trigger"


@pytest.fixture
async def fake() -> AsyncIterator[FakeKraken]:
    async with FakeKraken() as server:
        yield server


def kraken(fake: FakeKraken) -> KrakenClient:
    return KrakenClient(
        fake.url,
        fake.api_key,
        fake.api_secret,
        retry=FAST_RETRY,
        lookup=FAST_LOOKUP,
        query_fill=False,
        timeout=2.0,
    )


@asynccontextmanager
async def safe_api(
    store: Store,
    tmp_path: Path,
    exchange: Exchange,
    *,
    owner: str = "test:1:a",
    max_trade_value: Decimal | None = None,
) -> AsyncIterator[Api]:
    """The real app over a Scheduler whose account `default` is `exchange` (loop not started:
    triggers and approvals run inline, as the API runs them)."""
    settings = Settings(state_dir=tmp_path, accounts={"default": AccountSettings(mode="paper")})
    metrics = Metrics()
    scheduler = Scheduler(
        SchedulerSettings(lease_seconds=30),
        store,
        {"default": exchange},
        metrics,
        owner=owner,
        max_trade_value=max_trade_value,
    )
    await scheduler.refresh()
    app = make_app(settings, store, scheduler, metrics)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, scheduler, store, metrics)


async def create(api: Api, **fields: Any) -> str:
    """A portfolio of account default (disabled: only triggers run it); its id."""
    body = {"name": "safe", "targetWeights": TWO, "rebalanceThreshold": 10, **fields}
    status, reply = await api.call("POST", "/api/portfolios/manage", body)
    assert status == 201, reply
    return str(reply["portfolio"]["id"])


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def mid_price(fake: FakeKraken, pair: str) -> Decimal:
    bid, ask = fake.venue.prices[pair]
    return (bid + ask) / 2


def move_price(fake: FakeKraken, pair: str, factor: str) -> None:
    bid, ask = fake.venue.prices[pair]
    fake.set_price(pair, bid * Decimal(factor), ask * Decimal(factor))


# ----- approval before trading ----------------------------------------------------------------


async def test_manual_portfolio_places_nothing_until_approved(
    store: Store, fake: FakeKraken, tmp_path: Path
) -> None:
    exchange = kraken(fake)
    async with safe_api(store, tmp_path, exchange) as api:
        pid = await create(api, approval="manual")
        status, reply = await api.call("POST", TRIGGER, {"portfolioId": pid})
        assert status == 202, reply
        assert reply["history"] is None and reply["run"]["status"] == "awaiting_approval"
        assert fake.placed == []
        run_id = reply["run"]["id"]
        status, listed = await api.call(
            "GET", f"/api/runs?status=awaiting_approval&portfolioId={pid}"
        )
        assert status == 200 and listed["count"] == 1
        [run] = listed["runs"]
        assert run["id"] == run_id and run["expiresAt"] > run["createdAt"]
        planned = {(o["symbol"], o["side"]) for o in run["plan"]["orders"]}
        assert planned and fake.placed == []
        # While it waits, nothing else runs the portfolio.
        status, _ = await api.call("POST", TRIGGER, {"portfolioId": pid})
        assert status == 409
        status, done = await api.call("POST", f"/api/runs/{run_id}/approve")
        assert status == 200, done
        assert done["success"] and done["run"]["status"] == "succeeded"
        assert {(o["symbol"], o["side"]) for o in done["history"]["orders"]} == planned
        assert len(fake.placed) == len(planned)
        # Approved once: a second approval is refused and places nothing more.
        status, again = await api.call("POST", f"/api/runs/{run_id}/approve")
        assert status == 409 and "succeeded" in again["error"]
        assert len(fake.placed) == len(planned)
    await exchange.close()


async def test_stale_approval_is_refused_with_the_new_plan(
    store: Store, fake: FakeKraken, tmp_path: Path
) -> None:
    exchange = kraken(fake)
    async with safe_api(store, tmp_path, exchange) as api:
        pid = await create(api, approval="manual", approvalTolerancePct=0.5)
        _, reply = await api.call("POST", TRIGGER, {"portfolioId": pid})
        run_id = reply["run"]["id"]
        old_plan = reply["run"]["plan"]
        move_price(fake, "XXBTZEUR", "1.10")  # under the guard; the BTC buy moves ~1.2 %
        status, stale = await api.call("POST", f"/api/runs/{run_id}/approve")
        assert status == 409, stale
        assert stale["success"] is False and "prices moved" in stale["error"]
        assert any("BTC" in change for change in stale["changes"])
        assert stale["run"]["status"] == "awaiting_approval"
        assert stale["run"]["plan"] != old_plan  # the new plan is the one to approve now
        assert fake.placed == []
        status, done = await api.call("POST", f"/api/runs/{run_id}/approve")
        assert status == 200 and done["success"], done
        assert len(fake.placed) == len(stale["run"]["plan"]["orders"])
    await exchange.close()


async def test_rejected_and_expired_runs_place_nothing_and_are_recorded(
    store: Store, fake: FakeKraken, tmp_path: Path
) -> None:
    exchange = kraken(fake)
    async with safe_api(store, tmp_path, exchange) as api:
        pid = await create(api, approval="manual", approvalTtlSeconds=1)
        _, first = await api.call("POST", TRIGGER, {"portfolioId": pid})
        status, rejected = await api.call("POST", f"/api/runs/{first['run']['id']}/reject")
        assert status == 200, rejected
        assert rejected["run"]["status"] == "rejected"
        assert "rejected by the operator" in rejected["history"]["errors"][0]
        _, second = await api.call("POST", TRIGGER, {"portfolioId": pid})
        run_id = second["run"]["id"]

        async def expired() -> bool:
            _, body = await api.call("GET", f"/api/runs?status=expired&portfolioId={pid}")
            return bool(body["count"])

        await until(expired, 5, "the approval to expire")
        status, late = await api.call("POST", f"/api/runs/{run_id}/approve")
        assert status == 409 and "expired" in late["error"]
        _, history = await api.call("GET", f"/api/history?portfolioId={pid}")
        errors = [r["errors"][0] for r in history["history"]]
        assert any("approval expired" in e for e in errors)
        assert all(e.startswith("skipped:") for e in errors)
        assert fake.placed == []
        # The portfolio is free again: the next trigger makes a new plan to approve.
        status, _ = await api.call("POST", TRIGGER, {"portfolioId": pid})
        assert status == 202
        status, bad = await api.call("POST", "/api/runs/abc/approve")
        assert status == 400 and bad["error"].startswith("id: ")
        status, missing = await api.call("POST", "/api/runs/999999/reject")
        assert status == 404 and missing["error"] == "run 999999 not found"
    await exchange.close()


# ----- the kill switch --------------------------------------------------------------------------


class HaltAfterFirstOrder:
    """The real client; right after the run's first order is placed, an operator halts."""

    def __init__(self, inner: KrakenClient) -> None:
        self.inner = inner
        self.halt: Callable[[], Awaitable[object]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def place_order(self, request: OrderRequest) -> OrderState:
        state = await self.inner.place_order(request)
        if self.halt is not None:
            halt, self.halt = self.halt, None
            await halt()
        return state


async def test_halt_mid_run_places_no_further_order_and_leaves_nothing_resting(
    store: Store, fake: FakeKraken, tmp_path: Path
) -> None:
    fake.venue.fill_market_orders = False  # orders rest on the book until filled or cancelled
    exchange = HaltAfterFirstOrder(kraken(fake))
    async with safe_api(store, tmp_path, exchange) as api:  # type: ignore[arg-type]
        pid = await create(api, targetWeights=SELL_SELL_BUY)

        async def halt() -> None:
            status, body = await api.call("POST", "/api/scheduler", {"action": "halt"})
            assert status == 200 and body["status"]["halted"], body

        exchange.halt = halt
        status, reply = await api.call("POST", TRIGGER, {"portfolioId": pid})
        assert status == 200 and not reply["success"], reply
        assert len(fake.placed) == 1  # the order in flight when the halt came; no other
        assert [o.status for o in fake.placed] == ["canceled"]  # nothing left resting
        history = reply["history"]
        assert any("halted" in e for e in history["errors"])
        statuses = [o["status"] for o in history["orders"]]
        assert statuses[0] == "canceled" and set(statuses[1:]) == {"not_placed"}
        # Halted: triggers answer 409, every daemon's state says so, and a metric shows it.
        status, refused = await api.call("POST", TRIGGER, {"portfolioId": pid})
        assert status == 409 and refused["error"].startswith("halted")
        assert "rebalancerd_halted 1.0" in (await api.call("GET", "/metrics"))[1]
        other = Scheduler(
            SchedulerSettings(), store, {"default": exchange}, Metrics(), owner="o:2:b"
        )  # type: ignore[dict-item]
        assert (await other.refresh()).halted and not other.config.running
        status, _ = await api.call("POST", "/api/scheduler", {"action": "resume"})
        assert status == 200
        fake.venue.fill_market_orders = True
        status, reply = await api.call("POST", TRIGGER, {"portfolioId": pid})
        assert status == 200 and reply["success"], reply
    await exchange.inner.close()


# ----- caps, no-sell mode, price-jump guard ------------------------------------------------------


@pytest.mark.parametrize("cap", ["portfolio", "global"])
async def test_caps_scale_the_plan_down_and_the_run_says_so(
    store: Store, fake: FakeKraken, tmp_path: Path, cap: str
) -> None:
    exchange = kraken(fake)
    global_cap = Decimal(800) if cap == "global" else None
    async with safe_api(store, tmp_path, exchange, max_trade_value=global_cap) as api:
        fields = {"maxTradePercent": 5} if cap == "portfolio" else {}
        pid = await create(api, **fields)
        status, reply = await api.call("POST", TRIGGER, {"portfolioId": pid})
        assert status == 200 and reply["success"], reply
        _, runs = await api.call("GET", f"/api/runs?portfolioId={pid}")
        plan = runs["runs"][0]["plan"]
        value = Decimal(plan["value"])
        limit = value * 5 / 100 if cap == "portfolio" else Decimal(800)
        assert Decimal(plan["tradedValue"]) <= limit
        assert len(plan["notes"]) == 1 and "trade cap" in plan["notes"][0]
        traded = sum(Decimal(o["cost"]) for o in reply["history"]["orders"])
        assert 0 < traded <= limit * Decimal("1.001")  # fills at the quoted bid/ask
    await exchange.close()


async def test_never_sell_reduces_drift_only_by_buying(
    store: Store, fake: FakeKraken, tmp_path: Path
) -> None:
    exchange = kraken(fake)
    async with safe_api(store, tmp_path, exchange) as api:
        pid = await create(api, sellMode="never", targetWeights=SELL_SELL_BUY)
        status, reply = await api.call("POST", TRIGGER, {"portfolioId": pid})
        assert status == 200 and reply["success"], reply
        assert fake.placed and {o.side for o in fake.placed} == {"buy"}
        _, runs = await api.call("GET", f"/api/runs?portfolioId={pid}")
        skipped = runs["runs"][0]["plan"]["skipped"]
        assert {s["symbol"] for s in skipped if "sellMode" in s["reason"]} == {"BTC", "ETH"}
    await exchange.close()


async def test_price_jump_guard_blocks_a_20_percent_jump_and_force_passes_it(
    store: Store, fake: FakeKraken, tmp_path: Path
) -> None:
    exchange = kraken(fake)
    async with safe_api(store, tmp_path, exchange) as api:
        pid = await create(api)
        status, first = await api.call("POST", TRIGGER, {"portfolioId": pid, "dryRun": True})
        assert status == 200 and first["success"]  # its prices are the guard's marks
        move_price(fake, "XXBTZEUR", "1.20")
        status, blocked = await api.call("POST", TRIGGER, {"portfolioId": pid})
        assert status == 200 and not blocked["success"]
        [error] = blocked["history"]["errors"]
        assert "price-jump guard" in error and "BTC moved 20.0%" in error
        assert fake.placed == []
        # A retry does not take the jumped price as its reference.
        _, again = await api.call("POST", TRIGGER, {"portfolioId": pid})
        assert not again["success"] and fake.placed == []
        status, forced = await api.call("POST", TRIGGER, {"portfolioId": pid, "force": True})
        assert status == 200 and forced["success"], forced
        assert fake.placed
    await exchange.close()


# ----- notifications of the safety controls (outbox rows commit with the change) -------------


async def _events(store: Store) -> list[tuple[str, dict[str, Any]]]:
    rows = await store.pool.fetch("SELECT type, data FROM notify_events ORDER BY created_at")
    return [(r["type"], r["data"]) for r in rows]


async def test_awaiting_approval_and_halt_each_record_one_event(
    store: Store, fake: FakeKraken, tmp_path: Path
) -> None:
    exchange = kraken(fake)
    async with safe_api(store, tmp_path, exchange) as api:
        pid = await create(api, approval="manual")
        status, reply = await api.call("POST", TRIGGER, {"portfolioId": pid})
        assert status == 202, reply
        [(kind, data)] = await _events(store)
        assert kind == "run.awaiting_approval"
        assert data["portfolio"] == {"id": pid, "name": "safe"}
        assert data["run"]["id"] == reply["run"]["id"] and data["run"]["orders"]
        assert data["expiresAt"] is not None
        for _ in range(2):  # a repeated halt is one halt
            status, _ = await api.call("POST", "/api/scheduler", {"action": "halt"})
            assert status == 200
        status, _ = await api.call("POST", "/api/scheduler", {"action": "resume"})
        assert status == 200
        kinds = [k for k, _ in await _events(store)]
        assert kinds == ["run.awaiting_approval", "scheduler.halted"]
    await exchange.close()
