"""Table-driven bad input on every route: a 4xx naming the problem, never a 5xx, nothing changed.

One app and database serve the whole module: no case here may change state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio

from tests.api_support import ORIGINAL_BODY, Api, own_database, running_api

pytestmark = pytest.mark.asyncio(loop_scope="module")
MANAGE = "/api/portfolios/manage"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    pg_base_url: str, pg_template: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    async with (
        own_database(pg_base_url, pg_template) as store,
        running_api(store, tmp_path_factory.mktemp("api")) as running,
    ):
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def existing(api: Api) -> dict[str, Any]:
    """One portfolio the update cases try (and fail) to change."""
    return await api.create(name="existing")


async def _unchanged(api: Api, existing: dict[str, Any]) -> None:
    status, body = await api.call("GET", MANAGE)
    assert status == 200 and body["portfolios"] == [existing]


def _bad(**fields: Any) -> dict[str, Any]:
    return {**ORIGINAL_BODY, **fields}


BAD_CREATES: list[tuple[str, Any, str]] = [
    ("name missing", {k: v for k, v in ORIGINAL_BODY.items() if k != "name"}, "name"),
    ("name empty", _bad(name=""), "name"),
    ("name not text", _bad(name=5), "name"),
    ("weights missing", {"name": "x"}, "targetWeights"),
    ("weights not an object", _bad(targetWeights=[40, 60]), "targetWeights"),
    ("weights empty", _bad(targetWeights={}), "targetWeights"),
    ("weights sum to 90", _bad(targetWeights={"BTC": 40, "ETH": 50}), "sum to 100"),
    ("weights sum to 110", _bad(targetWeights={"BTC": 60, "ETH": 50}), "sum to 100"),
    ("negative weight", _bad(targetWeights={"BTC": 110, "ETH": -10}), "ETH must be >= 0"),
    ("weight as string", _bad(targetWeights={"BTC": "40", "ETH": 60}), "number"),
    ("weight as bool", _bad(targetWeights={"BTC": True, "ETH": 99}), "number"),
    ("weight null", _bad(targetWeights={"BTC": None, "ETH": 100}), "number"),
    ("lower-case symbol", _bad(targetWeights={"btc": 100}), "plain ticker"),
    ("symbol with a slash", _bad(targetWeights={"BTC/EUR": 100}), "plain ticker"),
    ("symbol too long", _bad(targetWeights={"ABCDEFGHIJK": 100}), "plain ticker"),
    ("Kraken's XXBT", _bad(targetWeights={"XXBT": 100}), "BTC"),
    ("Kraken's XBT", _bad(targetWeights={"XBT": 50, "ETH": 50}), "BTC"),
    ("Kraken's ZEUR", _bad(targetWeights={"BTC": 50, "ZEUR": 50}), "EUR"),
    ("only cash", _bad(targetWeights={"EUR": 100}), "other than EUR"),
    ("bad interval", _bad(rebalanceInterval="fortnightly"), "rebalanceInterval"),
    ("bad cron", _bad(rebalanceInterval="61 * * * *"), "rebalanceInterval"),
    ("cron that never fires", _bad(rebalanceInterval="0 0 30 2 *"), "rebalanceInterval"),
    ("six-field cron", _bad(rebalanceInterval="0 0 * * * *"), "rebalanceInterval"),
    ("unknown zone", _bad(scheduleTimezone="Mars/Olympus"), "scheduleTimezone"),
    ("negative threshold", _bad(rebalanceThreshold=-1), "rebalanceThreshold"),
    ("threshold as string", _bad(rebalanceThreshold="10"), "rebalanceThreshold"),
    ("threshold as bool", _bad(rebalanceThreshold=True), "rebalanceThreshold"),
    ("threshold too precise", _bad(rebalanceThreshold=1e-20), "rebalanceThreshold"),
    ("zero max orders", _bad(maxOrdersPerRebalance=0), "maxOrdersPerRebalance"),
    ("fractional max orders", _bad(maxOrdersPerRebalance=1.5), "maxOrdersPerRebalance"),
    ("huge max orders", _bad(maxOrdersPerRebalance=2**40), "maxOrdersPerRebalance"),
    ("negative drift band", _bad(driftBandAbs=-0.5), "driftBandAbs"),
    ("drift band over 100", _bad(driftBandRel=101), "driftBandRel"),
    ("enabled as string", _bad(rebalanceEnabled="true"), "rebalanceEnabled"),
    ("enabled as number", _bad(rebalanceEnabled=1), "rebalanceEnabled"),
    ("naive time", _bad(nextRebalanceAt="2030-01-01T00:00:00"), "nextRebalanceAt"),
    ("not a time", _bad(nextRebalanceAt="soon"), "nextRebalanceAt"),
    ("time as number", _bad(nextRebalanceAt=1700000000), "nextRebalanceAt"),
    ("year 1 with offset", _bad(nextRebalanceAt="0001-01-01T00:00:00+01:00"), "nextRebalanceAt"),
    ("unknown field", _bad(color="red"), "color: unknown field"),
    ("snake_case field", _bad(rebalance_enabled=True), "rebalance_enabled: unknown field"),
    ("read-only field", _bad(createdAt="2025-01-01T00:00:00Z"), "createdAt: unknown field"),
    ("id on create", _bad(id="mine"), "id: unknown field"),
    ("name too long", _bad(name="x" * 201), "name"),
    ("empty account", _bad(account=""), "account"),
]


@pytest.mark.parametrize(("case", "body", "says"), BAD_CREATES, ids=[c[0] for c in BAD_CREATES])
async def test_bad_creates_are_400_naming_the_problem(
    api: Api, existing: dict[str, Any], case: str, body: Any, says: str
) -> None:
    status, answer = await api.call("POST", MANAGE, body)
    assert status == 400, (case, answer)
    assert answer["success"] is False
    assert says in answer["error"], answer["error"]
    await _unchanged(api, existing)


BAD_UPDATES: list[tuple[str, dict[str, Any], str]] = [
    ("no id", {"name": "x"}, "id"),
    ("null name", {"name": None}, "name must not be null"),
    ("null weights", {"targetWeights": None}, "targetWeights must not be null"),
    ("null interval", {"rebalanceInterval": None}, "rebalanceInterval"),
    ("bad weights", {"targetWeights": {"BTC": 99}}, "sum to 100"),
    ("unknown field", {"lastRebalancedAt": None}, "lastRebalancedAt: unknown field"),
    ("bad cron", {"rebalanceInterval": "* * *"}, "rebalanceInterval"),
    ("id not text", {"id": 7}, "id"),
]


@pytest.mark.parametrize(("case", "patch", "says"), BAD_UPDATES, ids=[c[0] for c in BAD_UPDATES])
async def test_bad_updates_are_400_and_change_nothing(
    api: Api, existing: dict[str, Any], case: str, patch: dict[str, Any], says: str
) -> None:
    body = {"id": existing["id"], **patch} if case != "no id" else patch
    status, answer = await api.call("PUT", MANAGE, body)
    assert status == 400, (case, answer)
    assert says in answer["error"], answer["error"]
    await _unchanged(api, existing)


RAW_BODIES: list[tuple[str, bytes, int, str]] = [
    ("not JSON", b"{name: 'x'}", 400, "not valid JSON"),
    ("truncated", b'{"name": "x", ', 400, "not valid JSON"),
    ("NaN", b'{"name": "x", "targetWeights": {"BTC": NaN}}', 400, "not valid JSON"),
    ("Infinity", b'{"name": "x", "targetWeights": {"BTC": Infinity}}', 400, "not valid JSON"),
    ("overflowing number", b'{"name": "x", "targetWeights": {"BTC": 1e400}}', 400, "JSON"),
    ("lone surrogate", b'{"name": "\\ud800", "targetWeights": {"BTC": 100}}', 400, "JSON"),
    ("invalid UTF-8", b'{"name": "\xff", "targetWeights": {"BTC": 100}}', 400, "JSON"),
    ("deep nesting", b"[" * 5000 + b"]" * 5000, 400, "JSON"),
    ("a list", b"[1, 2]", 400, "JSON object"),
    ("a string", b'"hello"', 400, "JSON object"),
    ("empty body", b"", 400, "is required"),
]


@pytest.mark.parametrize(
    ("case", "raw", "code", "says"), RAW_BODIES, ids=[c[0] for c in RAW_BODIES]
)
async def test_malformed_bodies(api: Api, case: str, raw: bytes, code: int, says: str) -> None:
    for method, path in (("POST", MANAGE), ("PUT", MANAGE), ("POST", "/api/scheduler"),
                         ("POST", "/api/scheduler/trigger")):  # fmt: skip
        status, answer = await api.call(method, path, raw=raw)
        assert status == code, (case, method, path, answer)
        assert answer["success"] is False, answer
        assert says in answer["error"] or path != MANAGE, answer


@pytest.mark.parametrize("path", [MANAGE, "/api/scheduler", "/api/scheduler/trigger"])
async def test_a_huge_body_is_413(api: Api, path: str) -> None:
    huge = b'{"name": "' + b"x" * 100_000 + b'", "targetWeights": {"BTC": 100}}'
    status, answer = await api.call("POST", path, raw=huge)
    assert status == 413
    assert answer == {"success": False, "error": "request body too large (limit 65536 bytes)"}


@pytest.mark.parametrize(
    "ctype",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/json; charset=latin-1", "application/jsonx", "application/octet-stream", None],
)  # fmt: skip
async def test_a_body_must_be_sent_as_json(api: Api, ctype: str | None) -> None:
    # Browsers send text/plain and form bodies to other sites without asking first (CSRF).
    headers = {} if ctype is None else {"Content-Type": ctype}
    body = orjson.dumps(_update(dryRunMode=True))
    async with api.client.post(
        "/api/scheduler", data=body, headers=headers, skip_auto_headers=["Content-Type"]
    ) as resp:
        answer = await resp.json()
    assert resp.status == 415, answer
    assert answer == {
        "success": False,
        "error": "request body must be JSON sent as Content-Type: application/json",
    }
    _, status = await api.call("GET", "/api/scheduler")
    assert status["status"]["config"]["dryRunMode"] is False


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=UTF-8"])
async def test_json_bodies_are_read(api: Api, ctype: str) -> None:
    body = orjson.dumps(_update(dryRunMode=False))
    headers = {"Content-Type": ctype}
    status, answer = await api.call("POST", "/api/scheduler", raw=body, headers=headers)
    assert status == 200, answer


CONTROL_NAMES = ["a\x00b", "x\r\n[Scheduler] forged line", "tab\t", "\x1b[2J", "c1\x9b"]


@pytest.mark.parametrize("name", CONTROL_NAMES)
async def test_control_characters_are_422(api: Api, existing: dict[str, Any], name: str) -> None:
    for method, body in (("POST", {**ORIGINAL_BODY, "name": name}),
                         ("PUT", {"id": existing["id"], "name": name})):  # fmt: skip
        status, answer = await api.call(method, MANAGE, body)
        assert status == 422, answer
        assert answer["error"].startswith("name: must not contain control characters"), answer
    await _unchanged(api, existing)


async def test_wrong_methods_and_paths_answer_json(api: Api) -> None:
    status, answer = await api.call("PATCH", MANAGE, {})
    assert status == 405 and answer["success"] is False
    status, answer = await api.call("GET", "/api/nothing-here")
    assert status == 404 and answer["success"] is False


def _update(**config: Any) -> dict[str, Any]:
    return {"action": "update-config", "config": config}


BAD_CONTROLS: list[tuple[str, Any, str]] = [
    ("no action", {}, "action: is required"),
    ("unknown action", {"action": "pause"}, "action"),
    ("action not text", {"action": 1}, "action"),
    ("config with start", {"action": "start", "config": {"dryRunMode": True}}, "update-config"),
    ("update without config", {"action": "update-config"}, "config"),
    ("update with empty config", _update(), "config"),
    ("bad cron", _update(checkInterval="every hour"), "checkInterval"),
    ("named interval", _update(checkInterval="hourly"), "checkInterval"),
    ("61st minute", _update(checkInterval="61 * * * *"), "checkInterval"),
    ("dry run as string", _update(dryRunMode="yes"), "dryRunMode"),
    ("enabled as number", _update(enabled=1), "enabled"),
    ("unknown config key", _update(threads=4), "threads: unknown field"),
    ("unknown field", {"action": "stop", "force": True}, "force: unknown field"),
    ("config not an object", {"action": "update-config", "config": "0 * * * *"}, "config"),
]


@pytest.mark.parametrize(("case", "body", "says"), BAD_CONTROLS, ids=[c[0] for c in BAD_CONTROLS])
async def test_bad_scheduler_control(api: Api, case: str, body: Any, says: str) -> None:
    _, before = await api.call("GET", "/api/scheduler")
    status, answer = await api.call("POST", "/api/scheduler", body)
    assert status == 400, (case, answer)
    assert says in answer["error"], answer["error"]
    _, after = await api.call("GET", "/api/scheduler")
    assert after["status"]["config"] == before["status"]["config"]


BAD_TRIGGERS: list[tuple[str, Any, int, str]] = [
    ("no id", {}, 400, "portfolioId: is required"),
    ("empty id", {"portfolioId": ""}, 400, "portfolioId"),
    ("id as number", {"portfolioId": 5}, 400, "portfolioId"),
    ("dry run as string", {"portfolioId": "x", "dryRun": "true"}, 400, "dryRun"),
    ("snake_case id", {"portfolio_id": "x"}, 400, "portfolio_id: unknown field"),
    ("NUL in id", {"portfolioId": "a\x00"}, 422, "portfolioId: must not contain control"),
    ("line break in id", {"portfolioId": "a\r\nb"}, 422, "portfolioId: must not contain"),
    ("unknown id", {"portfolioId": "no-such-portfolio"}, 404, "no-such-portfolio"),
]


@pytest.mark.parametrize(
    ("case", "body", "code", "says"), BAD_TRIGGERS, ids=[c[0] for c in BAD_TRIGGERS]
)
async def test_bad_triggers(api: Api, case: str, body: Any, code: int, says: str) -> None:
    status, answer = await api.call("POST", "/api/scheduler/trigger", body)
    assert status == code, (case, answer)
    assert answer["success"] is False and says in answer["error"], answer


BAD_QUERIES: list[tuple[str, str, int, str]] = [
    ("history limit 501", "/api/history?limit=501", 400, "limit"),
    ("history limit 0", "/api/history?limit=0", 400, "limit"),
    ("history limit text", "/api/history?limit=ten", 400, "limit"),
    ("history negative offset", "/api/history?offset=-1", 400, "offset"),
    ("history huge offset", "/api/history?offset=99999999999999999999", 400, "offset"),
    ("history success maybe", "/api/history?success=maybe", 400, "success"),
    ("history bad from", "/api/history?from=yesterday", 400, "from"),
    ("history naive to", "/api/history?to=2025-01-01T00:00:00", 400, "to"),
    ("history unknown filter", "/api/history?portfolio_id=x", 400, "portfolio_id: unknown field"),
    ("history repeated limit", "/api/history?limit=1&limit=2", 400, "limit: given more than once"),
    ("history NUL id", "/api/history?portfolioId=%00", 422, "portfolioId"),
    ("history line break", "/api/history?portfolioId=a%0Ab", 422, "control characters"),
    ("delete tab in id", f"DELETE {MANAGE}?id=a%09b", 422, "control characters"),
    ("stats bad from", "/api/history/stats?from=2025-13-01", 400, "from"),
    ("stats paging", "/api/history/stats?limit=5", 400, "limit: unknown field"),
    ("plan without id", "/api/portfolios/plan", 400, "id: is required"),
    ("plan empty id", "/api/portfolios/plan?id=", 400, "id"),
    ("plan unknown id", "/api/portfolios/plan?id=ghost", 404, "ghost"),
    ("delete without id", f"DELETE {MANAGE}", 400, "id: is required"),
    ("delete unknown id", f"DELETE {MANAGE}?id=ghost", 404, "ghost"),
]


@pytest.mark.parametrize(
    ("case", "target", "code", "says"), BAD_QUERIES, ids=[c[0] for c in BAD_QUERIES]
)
async def test_bad_queries(
    api: Api, existing: dict[str, Any], case: str, target: str, code: int, says: str
) -> None:
    method, _, path = target.rpartition(" ")
    status, answer = await api.call(method or "GET", path)
    assert status == code, (case, answer)
    assert answer["success"] is False and says in answer["error"], answer
    await _unchanged(api, existing)
