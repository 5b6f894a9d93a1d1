"""The OpenAPI document: valid and complete; schemathesis against the live app finds no 5xx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rebalancerd.api.openapi import openapi_document
from rebalancerd.store.repository import Store
from tests.api_support import Api, on_port, running_api, serving

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
async def api(store: Store, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(store, tmp_path) as running:
        yield running


def test_the_document_is_valid_openapi() -> None:
    document = openapi_document()
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document["openapi"].startswith("3.1")


async def test_every_route_is_documented_and_served(api: Api) -> None:
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in api.client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {
        (method, path) for path, item in openapi_document()["paths"].items() for method in item
    }
    assert served == documented


async def test_the_document_is_served(api: Api) -> None:
    status, body = await api.call("GET", "/api/openapi.json")
    assert status == 200
    assert body["paths"].keys() == openapi_document()["paths"].keys()


def _fuzz(base_url: str, mode: GenerationMode, examples: int) -> list[str]:
    """Run schemathesis over every operation; the failures, as text."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/openapi.json", timeout=10)
    failures: list[str] = []
    session = requests.Session()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=schema.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, session=session, timeout=30)
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:  # collect, so one run reports every kind of failure
            failures.append(f"{case.method} {case.path}: {str(exc)[:400]}")

    try:
        run()
    finally:
        session.close()
    return failures


@pytest.mark.timeout(120)
async def test_schemathesis_finds_no_server_errors(store: Store, tmp_path: Path) -> None:
    async with serving(store, tmp_path) as (app, _scheduler, _metrics), on_port(app) as url:
        # The documented examples (the original's bodies) walk the success paths too.
        positive = await asyncio.to_thread(_fuzz, url, GenerationMode.POSITIVE, 150)
        negative = await asyncio.to_thread(_fuzz, url, GenerationMode.NEGATIVE, 150)
    failures = sorted(set(positive + negative))
    assert not failures, "\n".join(failures[:20])
