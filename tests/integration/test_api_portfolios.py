"""/api/portfolios/manage over a real database: the original's curl sequence, success and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from rebalancerd.store.portfolios import PortfolioFields
from rebalancerd.store.repository import Store
from tests.api_support import ORIGINAL_BODY, Api, open_run, running_api

MANAGE = "/api/portfolios/manage"


@pytest.fixture
async def api(store: Store, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(store, tmp_path) as running:
        yield running


async def test_the_original_curl_sequence(api: Api) -> None:
    """create -> list -> update -> trigger -> delete, with the spec's bodies as written."""
    status, created = await api.call("POST", MANAGE, ORIGINAL_BODY)
    assert status == 201
    assert created["success"] is True and created["message"]
    portfolio = created["portfolio"]
    pid = portfolio["id"]
    assert portfolio["targetWeights"] == {"BTC": 40, "ETH": 30, "SOL": 20, "ADA": 10}
    assert portfolio["rebalanceThreshold"] == 10
    assert portfolio["nextRebalanceAt"] is not None  # enabled: scheduled at once

    status, listed = await api.call("GET", MANAGE)
    assert (status, listed["success"], listed["count"]) == (200, True, 1)
    assert [p["id"] for p in listed["portfolios"]] == [pid]

    update = {"id": pid, "rebalanceEnabled": True, "rebalanceInterval": "daily"}
    status, updated = await api.call("PUT", MANAGE, update)
    assert status == 200 and updated["success"] is True
    assert updated["portfolio"]["rebalanceInterval"] == "daily"
    assert updated["portfolio"]["name"] == "My Portfolio"  # partial: the rest is kept

    status, triggered = await api.call("POST", "/api/scheduler/trigger", {"portfolioId": pid})
    assert status == 200, triggered
    assert triggered["success"] is True, triggered
    assert triggered["history"]["portfolioId"] == pid
    assert triggered["history"]["ordersExecuted"] > 0

    status, deleted = await api.call("DELETE", f"{MANAGE}?id={pid}")
    assert (status, deleted["success"]) == (200, True)
    assert (await api.call("GET", MANAGE))[1]["count"] == 0


async def test_create_returns_every_field_in_camel_case(api: Api) -> None:
    body = {
        **ORIGINAL_BODY,
        "userId": "u1",
        "account": "sandbox",
        "maxOrdersPerRebalance": 3,
        "driftBandAbs": 2.5,
        "driftBandRel": 25,
        "rebalanceInterval": "0 9 * * 1",
        "scheduleTimezone": "Europe/Berlin",
        "rebalanceThreshold": 12.345,
    }
    portfolio = await api.create(**body)
    expected = {
        "userId": "u1",
        "account": "sandbox",
        "maxOrdersPerRebalance": 3,
        "driftBandAbs": 2.5,
        "driftBandRel": 25,
        "rebalanceInterval": "0 9 * * 1",
        "scheduleTimezone": "Europe/Berlin",
        "rebalanceThreshold": 12.345,
        "failureCount": 0,
        "lastRebalancedAt": None,
    }
    assert {k: portfolio[k] for k in expected} == expected
    stored = await api.store.get_portfolio(portfolio["id"])
    assert stored is not None and stored.rebalance_threshold == Decimal("12.345")
    # A Monday 09:00 Berlin cron: the first slot is its next fire time, in UTC.
    first = datetime.fromisoformat(portfolio["nextRebalanceAt"])
    assert first.weekday() == 0 and first.minute == 0 and first.hour in (7, 8)


async def test_money_is_parsed_exactly_not_through_float(api: Api) -> None:
    raw = b'{"name": "p", "targetWeights": {"BTC": 100}, "rebalanceThreshold": 0.10000001}'
    status, body = await api.call("POST", MANAGE, raw=raw)
    assert status == 201, body
    stored = await api.store.get_portfolio(body["portfolio"]["id"])
    assert stored is not None and stored.rebalance_threshold == Decimal("0.10000001")


async def test_a_disabled_portfolio_keeps_the_time_asked_for(api: Api) -> None:
    at = "2030-01-02T03:04:05Z"
    portfolio = await api.create(rebalanceEnabled=False, nextRebalanceAt=at)
    assert portfolio["nextRebalanceAt"] == at
    _, schedule = await api.call("GET", "/api/scheduler")
    assert schedule["schedule"] == []  # only enabled portfolios are scheduled


async def test_update_keeps_the_schedule_unless_it_is_retimed(api: Api) -> None:
    portfolio = await api.create(nextRebalanceAt="2031-05-01T00:00:00Z")
    pid = portfolio["id"]
    _, renamed = await api.call("PUT", MANAGE, {"id": pid, "name": "renamed"})
    assert renamed["portfolio"]["nextRebalanceAt"] == "2031-05-01T00:00:00Z"
    _, retimed = await api.call(
        "PUT", MANAGE, {"id": pid, "nextRebalanceAt": "2032-01-01T00:00:00+01:00"}
    )
    assert retimed["portfolio"]["nextRebalanceAt"] == "2031-12-31T23:00:00Z"
    _, recron = await api.call("PUT", MANAGE, {"id": pid, "rebalanceInterval": "30 6 * * *"})
    first = datetime.fromisoformat(recron["portfolio"]["nextRebalanceAt"])
    assert (first.hour, first.minute) == (6, 30)
    assert first - datetime.now(UTC) < timedelta(days=1)


async def test_enabling_schedules_and_disabling_leaves_the_schedule(api: Api) -> None:
    portfolio = await api.create(rebalanceEnabled=False)
    assert portfolio["nextRebalanceAt"] is None
    _, enabled = await api.call("PUT", MANAGE, {"id": portfolio["id"], "rebalanceEnabled": True})
    assert enabled["portfolio"]["nextRebalanceAt"] is not None
    _, disabled = await api.call("PUT", MANAGE, {"id": portfolio["id"], "rebalanceEnabled": False})
    assert disabled["portfolio"]["rebalanceEnabled"] is False


async def test_nullable_fields_can_be_cleared(api: Api) -> None:
    portfolio = await api.create(maxOrdersPerRebalance=2, userId="u", driftBandAbs=1)
    clear = {
        "id": portfolio["id"],
        "maxOrdersPerRebalance": None,
        "userId": None,
        "driftBandAbs": None,
    }
    status, body = await api.call("PUT", MANAGE, clear)
    assert status == 200
    assert [body["portfolio"][k] for k in clear if k != "id"] == [None, None, None]


async def test_one_enabled_portfolio_per_account(api: Api) -> None:
    first = await api.create(name="first")
    status, body = await api.call("POST", MANAGE, {**ORIGINAL_BODY, "name": "second"})
    assert status == 409
    assert body["success"] is False
    assert "account" in body["error"] and first["id"] in body["error"]
    second = await api.create(name="second", rebalanceEnabled=False)  # disabled: allowed
    status, body = await api.call("PUT", MANAGE, {"id": second["id"], "rebalanceEnabled": True})
    assert status == 409, body
    moved = {"id": second["id"], "rebalanceEnabled": True, "account": "sandbox"}
    assert (await api.call("PUT", MANAGE, moved))[0] == 200


async def test_an_unconfigured_account_is_refused(api: Api) -> None:
    status, body = await api.call("POST", MANAGE, {**ORIGINAL_BODY, "account": "nope"})
    assert status == 422
    assert "account" in body["error"] and "default" in body["error"]


async def test_unknown_ids(api: Api) -> None:
    status, body = await api.call("PUT", MANAGE, {"id": "missing", "name": "x"})
    assert (status, body["success"]) == (404, False)
    assert "missing" in body["error"]
    assert (await api.call("DELETE", f"{MANAGE}?id=missing"))[0] == 404


async def test_delete_needs_an_id(api: Api) -> None:
    status, body = await api.call("DELETE", MANAGE)
    assert status == 400 and "id" in body["error"]


async def test_a_running_portfolio_is_not_deleted(api: Api) -> None:
    portfolio = await api.create()
    await open_run(api.store, portfolio["id"])
    status, body = await api.call("DELETE", f"{MANAGE}?id={portfolio['id']}")
    assert status == 409 and "rebalanced" in body["error"]
    assert await api.store.get_portfolio(portfolio["id"]) is not None


async def test_a_portfolio_from_before_validation_still_lists(api: Api) -> None:
    # Rows written by other tools (or older versions) are shown, not rejected.
    await api.store.create_portfolio(
        PortfolioFields(
            name="legacy", user_id=None, account="default", target_weights={"BTC": 50},
            rebalance_enabled=False, rebalance_interval="weekly",
            rebalance_threshold=Decimal(10), max_orders_per_rebalance=None, schedule_tz=None,
            drift_band_abs=None, drift_band_rel=None, schedule_anchor=None,
            next_rebalance_at=None,
        )
    )  # fmt: skip
    status, body = await api.call("GET", MANAGE)
    assert status == 200 and body["portfolios"][0]["targetWeights"] == {"BTC": 50}
