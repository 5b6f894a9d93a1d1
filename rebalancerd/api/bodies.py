"""What the HTTP API accepts: pydantic models of bodies and queries; unknown fields refused."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from rebalancerd.api.fields import (
    Account,
    Bound,
    CheckInterval,
    GuardPercent,
    Instant,
    Interval,
    MaxOrders,
    Money,
    Number,
    Percent,
    Text,
    TradePercent,
    TtlSeconds,
    Weights,
    Zone,
)

# ===== maker execution (issue 16) =====
ExecutionMode = Literal["market", "maker"]
MakerTimeout = Annotated[StrictInt, Field(ge=10, le=3600)]
SlippageBps = Annotated[
    Number,
    Field(ge=0, le=1000, decimal_places=4),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1000}),
]
# ===== end maker execution =====

# The original's curl body: the OpenAPI example, so fuzzing also walks the success path.
ORIGINAL_CREATE: JsonDict = {
    "name": "My Portfolio",
    "targetWeights": {"BTC": 40, "ETH": 30, "SOL": 20, "ADA": 10},
    "rebalanceEnabled": True,
    "rebalanceInterval": "weekly",
    "rebalanceThreshold": 10,
}


class Body(BaseModel):
    """A JSON object in camelCase; any other key is refused (the original wrote any column)."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel)


class PortfolioCreate(Body):
    """POST /api/portfolios/manage."""

    model_config = ConfigDict(json_schema_extra={"examples": [ORIGINAL_CREATE]})

    name: Text
    user_id: Text | None = None
    account: Account = "default"
    target_weights: Weights
    rebalance_enabled: StrictBool = False
    rebalance_interval: Interval = "weekly"
    schedule_timezone: Zone | None = None
    rebalance_threshold: Money = Field(default=10, validate_default=True)
    max_orders_per_rebalance: MaxOrders | None = None
    drift_band_abs: Percent | None = None
    drift_band_rel: Percent | None = None
    next_rebalance_at: Instant | None = None
    # maker execution (issue 16)
    execution_mode: ExecutionMode = "market"
    maker_timeout_seconds: MakerTimeout = 120
    max_slippage_bps: SlippageBps = Field(default=50, validate_default=True)
    # ----- safety controls (issue 19) -----
    approval: Literal["auto", "manual"] = "auto"
    approval_ttl_seconds: TtlSeconds = 3600
    approval_tolerance_pct: Percent = Field(default=1, validate_default=True)
    max_trade_percent: TradePercent | None = None
    sell_mode: Literal["allow", "never"] = "allow"
    price_jump_guard_pct: GuardPercent | None = Field(default=15, validate_default=True)
    # ----- end safety controls -----


SAFETY_FIELDS = (
    "approval",
    "approval_ttl_seconds",
    "approval_tolerance_pct",
    "max_trade_percent",
    "sell_mode",
    "price_jump_guard_pct",
)  # what PortfolioFields.safety holds

NOT_NULL = frozenset(
    {
        "execution_mode",  # maker execution (issue 16)
        "maker_timeout_seconds",
        "max_slippage_bps",
        "name",
        "account",
        "target_weights",
        "rebalance_enabled",
        "rebalance_interval",
        "rebalance_threshold",
        # safety controls (max_trade_percent and price_jump_guard_pct: null turns them off)
        "approval",
        "approval_ttl_seconds",
        "approval_tolerance_pct",
        "sell_mode",
    }
)


class PortfolioUpdate(Body):
    """PUT /api/portfolios/manage: `id` plus only the fields to change."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": "portfolio_id", "rebalanceInterval": "daily"}]}
    )

    id: Text
    name: Text | None = None
    user_id: Text | None = None
    account: Account | None = None
    target_weights: Weights | None = None
    rebalance_enabled: StrictBool | None = None
    rebalance_interval: Interval | None = None
    schedule_timezone: Zone | None = None
    rebalance_threshold: Money | None = None
    max_orders_per_rebalance: MaxOrders | None = None
    drift_band_abs: Percent | None = None
    drift_band_rel: Percent | None = None
    next_rebalance_at: Instant | None = None
    # maker execution (issue 16)
    execution_mode: ExecutionMode | None = None
    maker_timeout_seconds: MakerTimeout | None = None
    max_slippage_bps: SlippageBps | None = None
    # ----- safety controls (issue 19) -----
    approval: Literal["auto", "manual"] | None = None
    approval_ttl_seconds: TtlSeconds | None = None
    approval_tolerance_pct: Percent | None = None
    max_trade_percent: TradePercent | None = None
    sell_mode: Literal["allow", "never"] | None = None
    price_jump_guard_pct: GuardPercent | None = None
    # ----- end safety controls -----

    @model_validator(mode="after")
    def _no_null_where_required(self) -> PortfolioUpdate:
        for name in sorted(NOT_NULL & self.model_fields_set):
            if getattr(self, name) is None:
                raise ValueError(f"{to_camel(name)} must not be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the client sent (snake_case), without the id."""
        return {k: getattr(self, k) for k in self.model_fields_set if k != "id"}


class SchedulerConfig(Body):
    """The `config` of update-config; null resets a setting to the configured default."""

    enabled: StrictBool | None = None
    check_interval: CheckInterval | None = None
    dry_run_mode: StrictBool | None = None


class SchedulerControl(Body):
    """POST /api/scheduler."""

    action: Literal["start", "stop", "restart", "update-config", "halt", "resume"]
    config: SchedulerConfig | None = None

    @model_validator(mode="after")
    def _config_only_for_update(self) -> SchedulerControl:
        if self.action == "update-config" and not (self.config and self.config.model_fields_set):
            raise ValueError(
                "update-config needs a config with enabled, checkInterval or dryRunMode"
            )
        if self.action != "update-config" and self.config is not None:
            raise ValueError(
                f"config is only accepted with action update-config, not {self.action}"
            )
        return self


class TriggerRequest(Body):
    """POST /api/scheduler/trigger."""

    portfolio_id: Text
    dry_run: StrictBool | None = None
    force: StrictBool = False  # pass the price-jump guard (safety controls)


class IdQuery(Body):
    """?id= of DELETE /api/portfolios/manage and GET /api/portfolios/plan."""

    id: Text


class HistoryFilter(Body):
    """Filters shared by the history list and its stats."""

    portfolio_id: Text | None = None
    success: bool | None = None  # lax on purpose: a query string says "true"/"false"
    from_: Bound | None = Field(default=None, alias="from")
    to: Bound | None = None


class HistoryQuery(HistoryFilter):
    """GET /api/history."""

    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=10**9)


# ----- safety controls (issue 19) -----

# done: succeeded or failed
RunStatus = Literal[
    "running", "awaiting_approval", "succeeded", "failed", "done", "rejected", "expired"
]


class RunsQuery(Body):
    """GET /api/runs, newest first."""

    status: RunStatus | None = None
    portfolio_id: Text | None = None
    limit: int = Field(default=100, ge=1, le=500)
