"""The OpenAPI 3.1 document of the HTTP API: every schema comes from the pydantic models of the
requests (api/bodies.py) and responses (api/replies.py) the routes use."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from rebalancerd.api.bodies import (
    HistoryFilter,
    HistoryQuery,
    IdQuery,
    PortfolioCreate,
    PortfolioUpdate,
    RunsQuery,
    SchedulerControl,
    TriggerRequest,
)
from rebalancerd.api.dashboard_replies import (
    DASHBOARD_REPLIES,
    AccountList,
    Overview,
    SnapshotList,
    SnapshotQuery,
)
from rebalancerd.api.notifications import NotificationList, NotificationsQuery
from rebalancerd.api.replies import (
    REPLIES,
    ApprovalReply,
    ControlReply,
    Health,
    HistoryList,
    Message,
    PlanPreview,
    PortfolioList,
    PortfolioReply,
    RunList,
    StatsReply,
    StatusReply,
    TriggerReply,
)

REF = "#/components/schemas/{model}"
PATH_PARAM = re.compile(r"\{(\w+)\}")
BODIES = (PortfolioCreate, PortfolioUpdate, SchedulerControl, TriggerRequest)
ERRORS = {
    400: "Invalid input (the error names the field)",
    401: "Missing or wrong bearer token (only when the daemon has a token)",
    403: "Cross-origin request (the Origin is not this daemon), "
    "or a write with the read-only token",
    404: "No portfolio has that id",
    406: "The event stream was asked for without Accept: text/event-stream",
    408: "The request body did not arrive in time",
    409: "Conflict: the portfolio is running, the account is taken, the scheduler is halted, "
    "or the run is not awaiting approval (a stale approval answers StaleApproval)",
    413: "Request body over the size limit",
    415: "The request body was not sent as Content-Type: application/json",
    421: "Host name not served here: not loopback and not in http.allowed_hosts",
    422: "Text with control characters, or input the daemon cannot act on "
    "(e.g. an unconfigured account, or a symbol its account has no EUR market for)",
    502: "The exchange failed (plan preview only)",
    503: "Database unavailable",
}


def ref(name: str) -> dict[str, str]:
    """A reference to a schema under components."""
    return {"$ref": REF.format(model=name)}


@dataclass(frozen=True)
class Route:
    """One documented operation."""

    method: str
    path: str
    summary: str
    reply: type[BaseModel] | dict[str, Any]  # a model's schema goes under components
    errors: tuple[int, ...] = (400,)
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    open: bool = False  # served without the token
    media: str = "application/json"
    path_id: bool = False  # the path carries {id}, a run id
    accepted: bool = False  # may also answer 202 (a plan that awaits approval)


ROUTES = (
    Route("get", "/healthz", "Liveness and database reachability (open without a token)",
          Health, (503,), open=True),
    Route("get", "/metrics", "Prometheus metrics (open without a token: no balances or secrets)",
          {"type": "string"}, (), open=True, media="text/plain"),
    Route("get", "/api/openapi.json", "This document", {"type": "object"}, ()),
    Route("get", "/api/scheduler", "Scheduler status and the schedule of enabled portfolios",
          StatusReply, (503,)),
    Route("post", "/api/scheduler",
          "start | stop | restart | update-config | halt | resume (every daemon obeys; halt is "
          "the kill switch: runs in flight stop before their next order)",
          ControlReply, body=SchedulerControl),
    Route("post", "/api/scheduler/trigger",
          "Rebalance one portfolio now; `success` says whether the run succeeded (202 with `run`: "
          "the plan awaits approval); `force` passes the price-jump guard; 409 while halted",
          TriggerReply, (400, 404, 409), body=TriggerRequest, accepted=True),
    Route("get", "/api/portfolios/manage", "List portfolios", PortfolioList, ()),
    Route("post", "/api/portfolios/manage",
          "Create a portfolio; `warnings` names what could not be checked", PortfolioReply,
          (400, 409, 422), body=PortfolioCreate, status=201),
    Route("put", "/api/portfolios/manage", "Update some fields of a portfolio (`id` required)",
          PortfolioReply, (400, 404, 409, 422), body=PortfolioUpdate),
    Route("delete", "/api/portfolios/manage", "Delete a portfolio (its history stays)",
          Message, (404, 409), query=IdQuery),
    Route("get", "/api/portfolios/plan",
          "What a run would trade now and why each skip (asks the exchange, places nothing)",
          PlanPreview, (404, 422, 502), query=IdQuery),
    Route("get", "/api/history", "Rebalance history, newest first", HistoryList,
          query=HistoryQuery),
    Route("get", "/api/history/stats",
          "Count, value traded, average portfolio value, last success per portfolio",
          StatsReply, query=HistoryFilter),
    Route("get", "/api/notifications",
          "Recent webhook deliveries, newest event first (receivers named host#digest, no URL)",
          NotificationList, (503,), query=NotificationsQuery),
    # safety controls
    Route("get", "/api/runs", "Runs, newest first (`status=awaiting_approval`: plans to approve)",
          RunList, query=RunsQuery),
    Route("post", "/api/runs/{id}/approve",
          "Re-plan with fresh prices and execute if every order is within approvalTolerancePct "
          "of the approved plan; else 409 (StaleApproval) with the new plan, which awaits "
          "approval again", ApprovalReply, (400, 404, 409, 502), path_id=True),
    Route("post", "/api/runs/{id}/reject", "Reject a run awaiting approval: nothing is placed",
          ApprovalReply, (400, 404, 409), path_id=True),
)  # fmt: skip

# ===== dashboard =====
DASHBOARD_ROUTES = (
    Route("get", "/api/dashboard",
          "The dashboard's overview in one request: status, cards in attention order, totals",
          Overview, (503,)),
    Route("get", "/api/accounts", "Configured accounts: name and mode, never a credential",
          AccountList, ()),
    Route("get", "/api/portfolios/{id}/snapshots",
          "Value and weights over time (before/after each run, each check tick), oldest first",
          SnapshotList, (404,), query=SnapshotQuery),
    Route("get", "/api/events",
          "Server-sent events: `change` whenever a run, portfolio or the scheduler changed",
          {"type": "string"}, (406,), media="text/event-stream"),
    Route("get", "/", "The dashboard (HTML; it asks for the token itself)", {"type": "string"},
          (421,), open=True, media="text/html"),
    Route("get", "/assets/{name}",
          "The dashboard's scripts, styles and icon, by content-hashed name (cached a year)",
          {"type": "string"}, (404, 421), open=True, media="*/*"),
)  # fmt: skip


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One `in: query` parameter per field of a query model (null is not a query value)."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema["properties"].items():
        options = [s for s in prop.get("anyOf", [prop]) if s.get("type") != "null"]
        clean = {k: v for k, v in options[0].items() if k != "title"}
        if prop.get("default") is not None:
            clean["default"] = prop["default"]
        params.append({"name": name, "in": "query", "required": name in required, "schema": clean})
    return params


def _responses(route: Route) -> dict[str, Any]:
    codes: set[int] = set(route.errors)
    codes |= {408, 413, 415} if route.body else set()
    codes |= {400} if route.query else set()
    codes |= {422} if route.body or route.query else set()  # text with control characters
    codes |= set() if route.open else {401, 421}
    codes |= set() if route.method == "get" else {403}
    schema = route.reply if isinstance(route.reply, dict) else ref(route.reply.__name__)
    content = {route.media: {"schema": schema}}
    responses: dict[str, Any] = {str(route.status): {"description": "OK", "content": content}}
    if route.accepted:
        responses["202"] = {"description": "The plan awaits approval (`run`)", "content": content}
    for code in sorted(codes):
        responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    return responses


def operation(route: Route) -> dict[str, Any]:
    """The OpenAPI operation object of one route."""
    op: dict[str, Any] = {"summary": route.summary, "responses": _responses(route)}
    if route.body is not None:
        schema = {"application/json": {"schema": ref(route.body.__name__)}}
        op["requestBody"] = {"required": True, "content": schema}
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in PATH_PARAM.findall(route.path)
    ]
    if route.query is not None:
        params += query_parameters(route.query)
    if route.path_id:  # a run's id: an integer, not the string PATH_PARAM assumes
        run_id = {"type": "integer", "minimum": 1}
        params = [p for p in params if p["name"] != "id"]
        params.insert(0, {"name": "id", "in": "path", "required": True, "schema": run_id})
    if params:
        op["parameters"] = params
    if route.open:
        op["security"] = []
    return op


def _strip_titles(node: Any) -> Any:
    """Drop pydantic's generated titles ("Rebalancethreshold"): the property names say it."""
    if isinstance(node, dict):
        kept = {k: v for k, v in node.items() if not (k == "title" and isinstance(v, str))}
        return {k: _strip_titles(v) for k, v in kept.items()}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def _paths(routes: Iterable[Route]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method] = operation(route)
    return paths


def openapi_document() -> dict[str, Any]:
    """The whole document (the app builds it once at start)."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "validation") for m in BODIES]
    models += [(m, "serialization") for m in (*REPLIES, *DASHBOARD_REPLIES)]
    models.append((NotificationList, "serialization"))
    _, generated = models_json_schema(models, by_alias=True, ref_template=REF)
    error = {"application/json": {"schema": ref("Error")}}
    errors = {f"E{c}": {"description": text, "content": error} for c, text in ERRORS.items()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rebalancerd",
            "version": "1",
            "description": "Control API of rebalancerd. With a configured token every /api/* "
            "route needs `Authorization: Bearer <token>`. Errors are "
            '{"success": false, "error": "..."}.',
        },
        "security": [{"bearerAuth": []}, {}],  # {}: no token configured, no header needed
        "paths": _paths((*ROUTES, *DASHBOARD_ROUTES)),
        "components": {
            "schemas": _strip_titles(generated["$defs"]),
            "responses": errors,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
