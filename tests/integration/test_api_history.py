"""/api/history, /api/history/stats and the plan preview /api/portfolios/plan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancerd.store.portfolios import PortfolioFields
from rebalancerd.store.repository import Store
from tests.api_support import Api, running_api


@pytest.fixture
async def api(store: Store, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(store, tmp_path) as running:
        yield running


async def _trigger(api: Api, pid: str, dry: bool = False) -> dict[str, Any]:
    status, body = await api.call(
        "POST", "/api/scheduler/trigger", {"portfolioId": pid, "dryRun": dry}
    )
    assert status == 200, body
    history: dict[str, Any] = body["history"]
    return history


@pytest.fixture
async def runs(api: Api) -> dict[str, Any]:
    """Three runs: two of `good` (one dry), one failed run of `bad`."""
    good = await api.create()
    bad = await api.store.create_portfolio(_broken())
    first = await _trigger(api, good["id"], dry=True)
    second = await _trigger(api, good["id"])
    failed = await _trigger(api, bad.id)
    return {"good": good["id"], "bad": bad.id, "records": [first, second, failed]}


async def test_history_lists_newest_first(api: Api, runs: dict[str, Any]) -> None:
    status, body = await api.call("GET", "/api/history")
    assert status == 200 and body["success"] is True
    assert body["count"] == 3 and (body["limit"], body["offset"]) == (50, 0)
    assert [h["id"] for h in body["history"]] == [r["id"] for r in reversed(runs["records"])]
    assert set(body["history"][0]) >= {
        "id", "portfolioId", "executedAt", "success", "dryRun", "portfolioValue",
        "ordersPlanned", "ordersExecuted", "ordersFailed", "totalValueTraded", "orders",
        "errors", "triggeredBy", "duration",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("portfolioId={good}", [1, 0]),
        ("portfolioId={bad}", [2]),
        ("portfolioId=nobody", []),
        ("success=true", [1, 0]),
        ("success=false", [2]),
        ("success=true&portfolioId={bad}", []),
        ("limit=1", [2]),
        ("limit=2&offset=1", [1, 0]),
        ("offset=3", []),
        ("from={past}", [2, 1, 0]),
        ("from={future}", []),
        ("to={past}", []),
        ("from={past}&to={future}&success=false", [2]),
        ("from=2000-01-01", [2, 1, 0]),
    ],
)
async def test_history_filters(
    api: Api, runs: dict[str, Any], query: str, expected: list[int]
) -> None:
    now = datetime.now(UTC)
    past = (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    future = (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    path = "/api/history?" + query.format(
        good=runs["good"], bad=runs["bad"], past=past, future=future
    )
    status, body = await api.call("GET", path)
    assert status == 200, body
    assert [h["id"] for h in body["history"]] == [runs["records"][i]["id"] for i in expected]
    assert body["count"] == len(expected)


async def test_stats_add_up(api: Api, runs: dict[str, Any]) -> None:
    records = runs["records"]
    status, body = await api.call("GET", "/api/history/stats")
    assert status == 200 and body["success"] is True
    stats = body["stats"]
    assert (stats["count"], stats["successful"], stats["failed"]) == (3, 2, 1)
    traded = sum((Decimal(str(r["totalValueTraded"])) for r in records), Decimal(0))
    assert Decimal(str(stats["totalValueTraded"])) == traded
    average = sum((Decimal(str(r["portfolioValue"])) for r in records), Decimal(0)) / 3
    assert abs(Decimal(str(stats["averagePortfolioValue"])) - average) <= Decimal("0.005")
    assert set(stats["lastSuccessByPortfolio"]) == {runs["good"]}
    assert stats["lastSuccessByPortfolio"][runs["good"]] == records[1]["executedAt"]


async def test_stats_filter_like_the_list(api: Api, runs: dict[str, Any]) -> None:
    _, body = await api.call("GET", f"/api/history/stats?portfolioId={runs['bad']}")
    stats = body["stats"]
    assert (stats["count"], stats["successful"], stats["failed"]) == (1, 0, 1)
    assert stats["lastSuccessByPortfolio"] == {}


async def test_stats_of_nothing(api: Api) -> None:
    status, body = await api.call("GET", "/api/history/stats")
    assert status == 200
    assert body["stats"] == {
        "count": 0,
        "totalValueTraded": 0,
        "averagePortfolioValue": None,
        "successful": 0,
        "failed": 0,
        "lastSuccessByPortfolio": {},
    }


async def test_the_plan_preview_says_what_a_run_would_do(api: Api) -> None:
    portfolio = await api.create(maxOrdersPerRebalance=3)
    status, body = await api.call("GET", f"/api/portfolios/plan?id={portfolio['id']}")
    assert status == 200, body
    assert body["success"] is True and body["portfolioId"] == portfolio["id"]
    assert body["portfolioValue"] > 0 and body["errors"] == []
    plan = body["plan"]
    assert len(plan["orders"]) == 3 and {o["side"] for o in plan["orders"]} == {"buy"}
    assert [s["reason"] for s in plan["skipped"]]  # the fourth buy, and why
    _, history = await api.call("GET", "/api/history")
    assert history["count"] == 0  # a preview is not a run


async def test_a_preview_of_an_unconfigured_account_says_so(api: Api) -> None:
    ghost = await api.store.create_portfolio(_ghost())
    status, body = await api.call("GET", f"/api/portfolios/plan?id={ghost.id}")
    assert status == 200 and body["plan"] is None
    assert "ghost" in body["errors"][0]


def _broken() -> PortfolioFields:
    """A portfolio whose weights (written around the API) cannot run: its runs fail."""
    return replace(_ghost(), name="broken", account="sandbox", target_weights={"BTC": 50})


def _ghost() -> PortfolioFields:
    """A portfolio on an account this daemon does not have (written around the API)."""
    return PortfolioFields(
        name="ghost", user_id=None, account="ghost", target_weights={"BTC": 100},
        rebalance_enabled=False, rebalance_interval="weekly",
        rebalance_threshold=Decimal(10), max_orders_per_rebalance=None, schedule_tz=None,
        drift_band_abs=None, drift_band_rel=None, schedule_anchor=None, next_rebalance_at=None,
    )  # fmt: skip
