"""The maker execution fields of a portfolio over the API (issue 16): defaults, validation,
partial updates, and the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rebalancerd.store.repository import Store
from tests.api_support import ORIGINAL_BODY, Api, running_api

MANAGE = "/api/portfolios/manage"


@pytest.fixture
async def api(store: Store, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(store, tmp_path) as running:
        yield running


async def test_defaults_create_and_partial_update(api: Api) -> None:
    created = await api.create()
    assert (created["executionMode"], created["makerTimeoutSeconds"]) == ("market", 120)
    assert created["maxSlippageBps"] == 50
    status, body = await api.call(
        "PUT", MANAGE, {"id": created["id"], "executionMode": "maker", "maxSlippageBps": 12.5}
    )
    assert status == 200, body
    updated = body["portfolio"]
    assert (updated["executionMode"], updated["maxSlippageBps"]) == ("maker", 12.5)
    assert updated["makerTimeoutSeconds"] == 120  # untouched
    stored = await api.store.get_portfolio(created["id"])
    assert stored is not None and stored.execution_mode == "maker"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"executionMode": "taker"}, "executionMode"),
        ({"executionMode": None}, "executionMode"),
        ({"makerTimeoutSeconds": 9}, "makerTimeoutSeconds"),
        ({"makerTimeoutSeconds": 3601}, "makerTimeoutSeconds"),
        ({"makerTimeoutSeconds": 30.5}, "makerTimeoutSeconds"),
        ({"makerTimeoutSeconds": "60"}, "makerTimeoutSeconds"),
        ({"maxSlippageBps": -1}, "maxSlippageBps"),
        ({"maxSlippageBps": 1001}, "maxSlippageBps"),
        ({"maxSlippageBps": "5"}, "maxSlippageBps"),
    ],
)
async def test_bad_values_are_a_4xx_naming_the_field(
    api: Api, fields: dict[str, Any], named: str
) -> None:
    status, body = await api.call("POST", MANAGE, {**ORIGINAL_BODY, **fields})
    assert 400 <= status < 500 and named in body["error"], body
    created = await api.create()
    status, body = await api.call("PUT", MANAGE, {"id": created["id"], **fields})
    assert 400 <= status < 500 and named in body["error"], body


async def test_openapi_documents_the_fields(api: Api) -> None:
    status, doc = await api.call("GET", "/api/openapi.json")
    assert status == 200
    text = str(doc)
    for name in ("executionMode", "makerTimeoutSeconds", "maxSlippageBps", "executionCostBps"):
        assert name in text
