"""Bearer-token auth on /api/*, the open /healthz and /metrics, and what /metrics says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from rebalancerd.store.repository import Store
from tests.api_support import Api, own_database, running_api

pytestmark = pytest.mark.asyncio(loop_scope="module")
TOKEN = "s3cret-token-0123456789"
API_ROUTES = [
    ("GET", "/api/scheduler"),
    ("POST", "/api/scheduler"),
    ("POST", "/api/scheduler/trigger"),
    ("GET", "/api/portfolios/manage"),
    ("POST", "/api/portfolios/manage"),
    ("PUT", "/api/portfolios/manage"),
    ("DELETE", "/api/portfolios/manage?id=x"),
    ("GET", "/api/portfolios/plan?id=x"),
    ("GET", "/api/history"),
    ("GET", "/api/history/stats"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/no-such-route"),  # unknown routes do not leak past auth either
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def store(pg_base_url: str, pg_template: str) -> AsyncIterator[Store]:
    async with own_database(pg_base_url, pg_template) as shared:
        yield shared


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def locked(store: Store, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with running_api(store, tmp_path_factory.mktemp("locked"), token=TOKEN) as api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def open_api(store: Store, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with running_api(store, tmp_path_factory.mktemp("open")) as api:
        yield api


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x",
     f"Bearer {TOKEN[:-1]}", TOKEN, f"Bearer {TOKEN[:-1]}é"],
)  # fmt: skip
@pytest.mark.parametrize(("method", "path"), API_ROUTES)
async def test_api_routes_need_the_token(
    locked: Api, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    status, body = await locked.call(method, path, {}, headers=headers, auth=False)
    assert status == 401
    assert body == {"success": False, "error": "missing or wrong bearer token"}


async def test_401_says_how_to_authenticate(locked: Api) -> None:
    async with locked.client.get("/api/scheduler") as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_right_token_opens_every_route(locked: Api, scheme: str) -> None:
    headers = {"Authorization": f"{scheme} {TOKEN}"}
    for method, path in API_ROUTES:
        status, _ = await locked.call(method, path, {}, headers=headers)
        assert status not in (401, 403), (method, path)
    assert (await locked.call("GET", "/api/scheduler", headers=headers))[0] == 200


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
async def test_health_and_metrics_stay_open(locked: Api, path: str) -> None:
    status, _ = await locked.call("GET", path, auth=False)
    assert status == 200


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
async def test_without_a_token_nothing_asks_for_one(open_api: Api, method: str, path: str) -> None:
    status, body = await open_api.call(method, path, {})
    assert status != 401, body
    assert status < 500, body


async def test_healthz(open_api: Api) -> None:
    status, body = await open_api.call("GET", "/healthz")
    assert (status, body) == (200, {"status": "ok", "database": True})


async def test_metrics_parse_and_count_runs(open_api: Api) -> None:
    portfolio = await open_api.create()
    status, run = await open_api.call(
        "POST", "/api/scheduler/trigger", {"portfolioId": portfolio["id"]}
    )
    assert status == 200 and run["success"] is True
    status, text = await open_api.call("GET", "/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {
        "rebalancerd_runs", "rebalancerd_orders", "rebalancerd_exchange_errors",
        "rebalancerd_last_success_timestamp_seconds", "rebalancerd_next_due_timestamp_seconds",
        "rebalancerd_loop_lag_seconds", "rebalancerd_run_duration_seconds",
        "rebalancerd_scheduler_running",
    } <= set(families)  # fmt: skip
    runs = {
        (s.labels["outcome"], s.labels["trigger"]): s.value
        for s in families["rebalancerd_runs"].samples
        if s.name == "rebalancerd_runs_total"
    }
    assert runs == {("success", "api"): 1.0}
    filled = [
        s.value
        for s in families["rebalancerd_orders"].samples
        if s.name == "rebalancerd_orders_total" and s.labels["outcome"] == "filled"
    ]
    assert sum(filled) == run["history"]["ordersExecuted"]
    last = families["rebalancerd_last_success_timestamp_seconds"].samples
    assert [s.labels["portfolio"] for s in last] == [portfolio["id"]]


async def test_metrics_content_type(open_api: Api) -> None:
    async with open_api.client.get("/metrics") as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=")


async def test_refusing_a_token_less_public_listener_is_the_config_s_job(tmp_path: Path) -> None:
    from rebalancerd.config import ConfigError, load_settings

    env = {"REBALANCERD_LISTEN": "0.0.0.0:8080", "HOME": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"without http\.api_token"):
        load_settings(None, env)
    env["REBALANCERD_API_TOKEN"] = TOKEN
    assert load_settings(None, env).http.api_token is not None
