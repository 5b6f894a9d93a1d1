"""Events are committed with the change they report: a run's end (with its history row), a
scheduler start or stop; a lost lease writes neither. The API lists deliveries without secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancerd.notify import events
from rebalancerd.store.history import HistoryFields
from rebalancerd.store.repository import Store
from tests.api_support import Api, running_api
from tests.factories import make_portfolio

TRIGGER = "/api/scheduler/trigger"


@pytest.fixture
async def api(store: Store, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(store, tmp_path) as running:
        yield running


async def stored(store: Store) -> list[dict[str, Any]]:
    rows = await store.pool.fetch("SELECT id, type, data FROM notify_events ORDER BY created_at")
    return [dict(r) for r in rows]


async def test_a_finished_run_commits_its_event_with_its_history_row(api: Api) -> None:
    portfolio = await api.create(name="Core", rebalanceEnabled=False)
    status, body = await api.call("POST", TRIGGER, {"portfolioId": portfolio["id"]})
    assert status == 200 and body["success"] is True
    (event,) = [e for e in await stored(api.store) if e["type"].startswith("run.")]
    assert event["type"] == "run.succeeded"
    data = event["data"]
    assert data["portfolio"] == {"id": portfolio["id"], "name": "Core"}
    run = data["run"]
    history = body["history"]
    assert run["historyId"] == history["id"] and run["success"] is True
    row = await api.store.pool.fetchrow(
        "SELECT * FROM rebalance_history WHERE id = $1", history["id"]
    )
    # Exact: the API rounds EUR to JSON numbers, the event carries the stored decimals.
    assert Decimal(run["value"]) == row["portfolio_value"]
    assert Decimal(run["traded"]) == row["total_value_traded"] > 0
    assert (run["ordersExecuted"], run["ordersFailed"]) == (4, 0)
    assert run["errors"] == [] and "executionCostBps" in run
    rows = await api.store.pool.fetchval(
        "SELECT count(*) FROM rebalance_runs WHERE id = $1 AND history_id = $2",
        run["id"],
        history["id"],
    )
    assert rows == 1


def _fields(orders: list[dict[str, Any]], errors: tuple[str, ...]) -> HistoryFields:
    return HistoryFields(
        success=not errors,
        dry_run=False,
        portfolio_value=Decimal("1000"),
        orders_planned=len(orders),
        orders_executed=0,
        orders_failed=len(orders),
        total_value_traded=Decimal(0),
        orders=orders,
        errors=errors,
        triggered_by="scheduler",
        duration=5,
    )


async def _open_run(store: Store, owner: str) -> Any:
    portfolio = await make_portfolio(store, name="Odd")
    async with store.transaction() as conn:
        run = await store.insert_run(conn, portfolio, None, "api", False, owner, 60)
    assert run is not None
    return run, portfolio


async def test_an_unknown_order_is_an_order_unknown_event(store: Store) -> None:
    run, portfolio = await _open_run(store, "me")
    unknown = {"symbol": "BTC", "side": "sell", "volume": "0.1", "status": "unknown",
               "clientOrderId": "c-1", "txid": None, "error": "timeout"}  # fmt: skip
    rejected = {**unknown, "status": "rejected", "clientOrderId": "c-2", "error": "EOrder"}
    now = datetime.now(UTC)
    record = await store.finish_run(
        run,
        "me",
        _fields([unknown, rejected], ("outcome unknown",)),
        lambda rec: events.run_finished(run.id, portfolio.name, rec, now),
    )
    assert record is not None
    found = await stored(store)
    assert [e["type"] for e in found] == ["run.failed", "order.unknown"]
    order = found[1]["data"]["order"]
    assert order["clientOrderId"] == "c-1" and order["status"] == "unknown"
    assert found[1]["data"]["run"] == {"id": run.id}


async def test_a_run_whose_lease_was_lost_writes_no_event(store: Store) -> None:
    run, portfolio = await _open_run(store, "someone-else")
    now = datetime.now(UTC)
    record = await store.finish_run(
        run,
        "me",  # not the owner: fenced off, the history row and the event roll back
        _fields([], ()),
        lambda rec: events.run_finished(run.id, portfolio.name, rec, now),
    )
    assert record is None
    assert await stored(store) == []
    assert await store.list_history(portfolio.id) == []  # and nothing else of it stays
    fresh = await store.get_portfolio(portfolio.id)
    assert fresh is not None and fresh.failure_count == portfolio.failure_count
    assert fresh.last_rebalanced_at == portfolio.last_rebalanced_at
    assert [r.id for r in await store.open_runs()] == [run.id]


async def test_scheduler_stop_and_start_commit_their_events(api: Api) -> None:
    for action in ("stop", "stop", "start", "restart"):
        status, _ = await api.call("POST", "/api/scheduler", {"action": action})
        assert status == 200
    found = await stored(api.store)
    # A second stop changes nothing and says nothing; a restart always says started.
    assert [e["type"] for e in found] == [
        "scheduler.stopped",
        "scheduler.started",
        "scheduler.started",
    ]
    assert [e["data"]["scheduler"]["action"] for e in found] == ["stop", "start", "restart"]
    assert found[0]["data"]["scheduler"]["by"] == api.scheduler.owner


async def test_notifications_route_lists_deliveries_without_urls(api: Api) -> None:
    portfolio = await api.create(rebalanceEnabled=False)
    await api.call("POST", TRIGGER, {"portfolioId": portfolio["id"], "dryRun": True})
    secret_url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    await api.store.dispatch_events({"hooks.slack.com#abc": list(events.EVENT_TYPES)})
    status, body = await api.call("GET", "/api/notifications?limit=5")
    assert status == 200 and body["success"] is True and body["count"] == 1
    (delivery,) = body["deliveries"]
    assert delivery["type"] == "run.succeeded" and delivery["status"] == "pending"
    assert delivery["hook"] == "hooks.slack.com#abc" and delivery["portfolioId"] == portfolio["id"]
    assert isinstance(delivery["runId"], int) and delivery["attempts"] == 0
    assert "SECRET" not in str(body) and secret_url not in str(body)
    for bad in ("limit=0", "limit=501", "limit=x", "other=1"):
        status, body = await api.call("GET", f"/api/notifications?{bad}")
        assert status == 400 and body["success"] is False
