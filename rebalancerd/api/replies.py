"""What the HTTP API answers: pydantic models of the response bodies, camelCase by alias.

The OpenAPI document's response schemas are generated from these same models (api/openapi.py).
Bodies are dumped in Python mode and written by orjson (api/http.py), so times read as they
always did (UTC with a Z); EUR figures are JSON numbers, as the original sent them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

from rebalancerd.api.plans import PlanJson


def to_number(value: Decimal) -> int | float:
    """JSON number for the API's EUR figures (the original sent numbers, not strings)."""
    integral = value == value.to_integral_value()
    return int(value) if integral else float(value)


Euro = Annotated[Decimal, PlainSerializer(to_number), WithJsonSchema({"type": "number"})]


class Reply(BaseModel):
    """A JSON object the API sends: snake_case in Python, camelCase on the wire."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
        json_schema_serialization_defaults_required=True,  # every field is always sent
    )

    def body(self) -> dict[str, Any]:
        """The JSON-ready dict (datetimes left for orjson, which writes them with a Z)."""
        return self.model_dump(by_alias=True)


class Error(Reply):
    """Every 4xx/5xx: what is wrong."""

    success: Literal[False] = False
    error: str


class Health(Reply):
    """GET /healthz."""

    status: Literal["ok", "degraded"]
    database: bool


class Portfolio(Reply):
    """A portfolio as the original spelled it, plus this daemon's schedule and band fields."""

    id: str
    name: str
    user_id: str | None
    account: str
    target_weights: dict[str, int | float]
    rebalance_enabled: bool
    rebalance_interval: str
    rebalance_threshold: Euro
    max_orders_per_rebalance: int | None
    last_rebalanced_at: datetime | None
    next_rebalance_at: datetime | None
    created_at: datetime
    updated_at: datetime
    schedule_timezone: str | None = Field(validation_alias="schedule_tz")
    drift_band_abs: Euro | None
    drift_band_rel: Euro | None
    failure_count: int
    # maker execution (issue 16)
    execution_mode: Literal["market", "maker"]
    maker_timeout_seconds: int
    max_slippage_bps: Euro
    # ----- safety controls (issue 19) -----
    approval: Literal["auto", "manual"]
    approval_ttl_seconds: int
    approval_tolerance_pct: Euro
    max_trade_percent: Euro | None
    sell_mode: Literal["allow", "never"]
    price_jump_guard_pct: Euro | None
    # ----- end safety controls -----


class HistoryRecord(Reply):
    """One run: the rebalance_history row in camelCase."""

    id: str
    portfolio_id: str
    executed_at: datetime
    success: bool
    dry_run: bool
    portfolio_value: Euro
    orders_planned: int
    orders_executed: int
    orders_failed: int
    total_value_traded: Euro
    orders: list[dict[str, Any]]
    errors: list[str] | None
    triggered_by: str
    duration: int | None
    execution_cost_bps: Euro | None = None  # maker execution (issue 16)


class SchedulerConfigState(Reply):
    """The scheduler configuration in force (file and environment, then shared overrides)."""

    enabled: bool
    check_interval: str
    dry_run_mode: bool = Field(validation_alias="dry_run")


class SchedulerState(Reply):
    """The scheduler as this daemon sees it."""

    is_running: bool
    config: SchedulerConfigState
    active_tasks: int
    next_wake_at: datetime | None
    instance: str
    halted: bool = False  # the kill switch (safety controls): nothing is placed while true


class ScheduleItem(Reply):
    """An enabled portfolio's schedule."""

    id: str
    name: str
    rebalance_interval: str
    last_rebalanced_at: datetime | None
    next_rebalance_at: datetime | None


class StatusReply(Reply):
    """GET /api/scheduler (assembled from cached bytes; this model documents it)."""

    success: Literal[True] = True
    status: SchedulerState
    schedule: list[ScheduleItem]


class ControlReply(Reply):
    """POST /api/scheduler."""

    success: Literal[True] = True
    message: str
    config: SchedulerConfigState
    status: SchedulerState


class RunJson(Reply):
    """A run (safety controls): its status, the plan it made, and when an approval lapses."""

    id: int
    portfolio_id: str
    account: str
    status: str
    triggered_by: str
    dry_run: bool
    plan: PlanJson | None
    created_at: datetime = Field(validation_alias="started_at")
    expires_at: datetime | None
    finished_at: datetime | None
    history_id: str | None
    error: str | None


class TriggerReply(Reply):
    """POST /api/scheduler/trigger: `success` is whether the run succeeded. A manual-approval
    portfolio's run answers 202 with no history yet: `run` awaits approval."""

    success: bool
    message: str
    history: HistoryRecord | None
    run: RunJson | None = None


class PortfolioList(Reply):
    """GET /api/portfolios/manage."""

    success: Literal[True] = True
    portfolios: list[Portfolio]
    count: int


class PortfolioReply(Reply):
    """A created or updated portfolio; `warnings` says what could not be checked."""

    success: Literal[True] = True
    portfolio: Portfolio
    message: str
    warnings: list[str] = Field(default_factory=list)


class Message(Reply):
    """A success that carries only a sentence (a deleted portfolio)."""

    success: Literal[True] = True
    message: str


class PlanPreview(Reply):
    """GET /api/portfolios/plan: what a run would trade now."""

    success: Literal[True] = True
    portfolio_id: str
    portfolio_value: Euro
    plan: PlanJson | None
    errors: list[str]


class HistoryList(Reply):
    """GET /api/history."""

    success: Literal[True] = True
    history: list[HistoryRecord]
    count: int
    limit: int
    offset: int


class HistoryStats(Reply):
    """Aggregates over the filtered history."""

    count: int
    total_value_traded: Euro
    average_portfolio_value: Euro | None
    successful: int
    failed: int
    last_success_by_portfolio: dict[str, datetime]


class StatsReply(Reply):
    """GET /api/history/stats."""

    success: Literal[True] = True
    stats: HistoryStats


class RunList(Reply):
    """GET /api/runs, newest first."""

    success: Literal[True] = True
    runs: list[RunJson]
    count: int


class ApprovalReply(Reply):
    """POST /api/runs/{id}/approve (executed; `success` is the run's) or /reject."""

    success: bool
    message: str
    history: HistoryRecord
    run: RunJson


class StaleApproval(Reply):
    """409 of POST /api/runs/{id}/approve: prices moved; `run` waits again with the new plan."""

    success: Literal[False] = False
    error: str
    changes: list[str]
    run: RunJson


def schedule_item(row: Mapping[str, Any]) -> ScheduleItem:
    """A schedule row of the store as the status route lists it."""
    return ScheduleItem.model_validate(row)


REPLIES: tuple[type[Reply], ...] = (
    Error,
    Health,
    StatusReply,
    ControlReply,
    TriggerReply,
    PortfolioList,
    PortfolioReply,
    Message,
    PlanPreview,
    HistoryList,
    StatsReply,
    RunList,
    ApprovalReply,
    StaleApproval,
)
