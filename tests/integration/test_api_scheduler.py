"""/api/scheduler and /api/scheduler/trigger: status, control actions, manual runs, the cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancerd.api.http import CACHE
from rebalancerd.store.portfolios import PortfolioFields
from rebalancerd.store.repository import Store
from tests.api_support import Api, open_run, running_api

STATUS = "/api/scheduler"
TRIGGER = "/api/scheduler/trigger"


@pytest.fixture
async def api(store: Store, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(store, tmp_path) as running:
        yield running


async def test_status_has_the_original_shape(api: Api) -> None:
    enabled = await api.create(name="on")
    await api.create(name="off", rebalanceEnabled=False)
    status, body = await api.call("GET", STATUS)
    assert status == 200 and body["success"] is True
    assert body["status"]["isRunning"] is True
    assert body["status"]["config"] == {
        "enabled": True,
        "checkInterval": "0 * * * *",
        "dryRunMode": False,
    }
    assert body["status"]["activeTasks"] == 0
    assert body["schedule"] == [
        {
            "id": enabled["id"],
            "name": "on",
            "rebalanceInterval": "weekly",
            "lastRebalancedAt": None,
            "nextRebalanceAt": enabled["nextRebalanceAt"],
        }
    ]
    assert body["schedule"][0]["nextRebalanceAt"].endswith("Z")


@pytest.mark.parametrize(
    ("actions", "running"),
    [
        (["stop"], False),
        (["stop", "start"], True),
        (["stop", "restart"], True),  # the predecessor's restart left it stopped
        (["restart"], True),
    ],
)
async def test_control_actions_do_what_they_say(
    api: Api, actions: list[str], running: bool
) -> None:
    for action in actions:
        status, body = await api.call("POST", STATUS, {"action": action})
        assert status == 200 and body["success"] is True, body
        assert body["status"]["isRunning"] is running or action != actions[-1]
    _, now = await api.call("GET", STATUS)
    assert now["status"]["isRunning"] is running
    state = await api.store.scheduler_state()
    assert state.running is running  # shared with every daemon on the database


async def test_update_config_as_the_original_curl_sends_it(api: Api) -> None:
    body = {
        "action": "update-config",
        "config": {"checkInterval": "0 */6 * * *", "dryRunMode": True},
    }
    status, answer = await api.call("POST", STATUS, body)
    assert status == 200, answer
    assert answer["config"] == {"enabled": True, "checkInterval": "0 */6 * * *", "dryRunMode": True}
    _, now = await api.call("GET", STATUS)
    assert now["status"]["config"]["checkInterval"] == "0 */6 * * *"
    assert now["status"]["config"]["dryRunMode"] is True


async def test_update_config_null_goes_back_to_the_configured_value(api: Api) -> None:
    await api.call("POST", STATUS, {"action": "update-config", "config": {"dryRunMode": True}})
    reset = {"action": "update-config", "config": {"dryRunMode": None}}
    status, answer = await api.call("POST", STATUS, reset)
    assert status == 200 and answer["config"]["dryRunMode"] is False


async def test_disabling_stops_the_loop(api: Api) -> None:
    off = {"action": "update-config", "config": {"enabled": False}}
    _, answer = await api.call("POST", STATUS, off)
    assert answer["config"]["enabled"] is False and answer["status"]["isRunning"] is False


async def test_trigger_runs_and_records(api: Api) -> None:
    portfolio = await api.create(rebalanceEnabled=False)  # a trigger ignores the schedule
    status, body = await api.call("POST", TRIGGER, {"portfolioId": portfolio["id"]})
    assert status == 200, body
    assert body["success"] is True and body["message"] == "Rebalance completed"
    history = body["history"]
    assert history["triggeredBy"] == "api" and history["dryRun"] is False
    assert history["ordersExecuted"] == 4 and history["ordersFailed"] == 0
    assert isinstance(history["portfolioValue"], int | float) and history["portfolioValue"] > 0
    _, listed = await api.call("GET", "/api/portfolios/manage")
    assert listed["portfolios"][0]["lastRebalancedAt"] is not None


async def test_a_dry_run_trigger_places_nothing(api: Api) -> None:
    portfolio = await api.create()
    body = {"portfolioId": portfolio["id"], "dryRun": True}
    status, answer = await api.call("POST", TRIGGER, body)
    assert status == 200 and answer["success"] is True, answer
    assert answer["history"]["dryRun"] is True
    assert answer["history"]["ordersExecuted"] == 0 and answer["history"]["ordersPlanned"] == 4
    assert {o["status"] for o in answer["history"]["orders"]} == {"planned"}


async def test_a_failed_run_is_reported_as_failed(api: Api) -> None:
    # Weights this daemon cannot use (written around the API): the run must fail.
    portfolio = await api.store.create_portfolio(
        replace(_fields(account="default"), target_weights={"BTC": 50})
    )
    status, body = await api.call("POST", TRIGGER, {"portfolioId": portfolio.id})
    assert status == 200
    assert body["success"] is False and body["message"] == "Rebalance failed"
    assert "weights sum to 50" in body["history"]["errors"][0]


async def test_a_trigger_on_an_unconfigured_account_is_409(api: Api) -> None:
    portfolio = await api.store.create_portfolio(_fields(account="ghost"))
    status, body = await api.call("POST", TRIGGER, {"portfolioId": portfolio.id})
    assert status == 409 and "'ghost'" in body["error"]
    assert await api.store.list_history(portfolio.id) == []


async def test_trigger_while_running_is_409(api: Api) -> None:
    portfolio = await api.create()
    await open_run(api.store, portfolio["id"])
    status, body = await api.call("POST", TRIGGER, {"portfolioId": portfolio["id"]})
    assert status == 409 and body["success"] is False
    assert portfolio["id"] in body["error"]


async def test_concurrent_triggers_run_once(api: Api) -> None:
    portfolio = await api.create()
    call = api.call("POST", TRIGGER, {"portfolioId": portfolio["id"]})
    results = await asyncio.gather(
        call, api.call("POST", TRIGGER, {"portfolioId": portfolio["id"]})
    )
    assert sorted(status for status, _ in results) == [200, 409]


async def test_the_schedule_is_read_once_for_many_requests(api: Api) -> None:
    await api.create()
    calls = 0
    real = api.store.schedule

    async def counted() -> Any:
        nonlocal calls
        calls += 1
        return await real()

    api.store.schedule = counted  # type: ignore[method-assign]
    answers = await asyncio.gather(*(api.call("GET", STATUS) for _ in range(50)))
    assert all(status == 200 for status, _ in answers)
    assert calls == 1
    assert len({str(body["schedule"]) for _, body in answers}) == 1


async def test_our_writes_show_at_once_and_others_within_a_second(api: Api) -> None:
    cache = api.client.app[CACHE]
    now = [1000.0]
    cache.clock = lambda: now[0]  # stepped by hand: no sleeping past the TTL
    await api.call("GET", STATUS)  # warm the cache
    created = await api.create()
    _, body = await api.call("GET", STATUS)
    assert [s["id"] for s in body["schedule"]] == [created["id"]]
    other = await api.store.create_portfolio(_fields(account="sandbox", enabled=True))
    now[0] += 0.99  # within the TTL: a write elsewhere is not seen yet
    _, body = await api.call("GET", STATUS)
    assert other.id not in [s["id"] for s in body["schedule"]]
    now[0] += 0.02  # past it: seen
    _, body = await api.call("GET", STATUS)
    assert other.id in [s["id"] for s in body["schedule"]]


def _fields(account: str, enabled: bool = False) -> PortfolioFields:
    return PortfolioFields(
        name="around the API", user_id=None, account=account, target_weights={"BTC": 100},
        rebalance_enabled=enabled, rebalance_interval="weekly",
        rebalance_threshold=Decimal(10), max_orders_per_rebalance=None, schedule_tz=None,
        drift_band_abs=None, drift_band_rel=None, schedule_anchor=None, next_rebalance_at=None,
    )  # fmt: skip
