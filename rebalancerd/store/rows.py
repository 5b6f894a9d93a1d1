"""Typed rows the store returns (the API's JSON shapes of them are api/replies.py)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def from_record(cls: type[T], record: Any) -> T:
    """Build a dataclass from an asyncpg record, taking only the fields it declares."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in dict(record).items() if k in names})


@dataclass(frozen=True)
class Portfolio:
    id: str
    name: str
    user_id: str | None
    account: str
    target_weights: dict[str, Any]
    rebalance_enabled: bool
    rebalance_interval: str
    rebalance_threshold: Decimal
    max_orders_per_rebalance: int | None
    last_rebalanced_at: datetime | None
    next_rebalance_at: datetime | None
    created_at: datetime
    updated_at: datetime
    schedule_anchor: datetime | None = None
    schedule_tz: str | None = None
    drift_band_abs: Decimal | None = None
    drift_band_rel: Decimal | None = None
    failure_count: int = 0
    # ===== maker execution (issue 16) =====
    execution_mode: str = "market"  # market | maker
    maker_timeout_seconds: int = 120
    max_slippage_bps: Decimal = Decimal(50)
    # ----- safety controls (sql/0004_safety.sql) -----
    approval: str = "auto"  # auto | manual
    approval_ttl_seconds: int = 3600
    approval_tolerance_pct: Decimal = Decimal(1)
    max_trade_percent: Decimal | None = None
    sell_mode: str = "allow"  # allow | never
    price_jump_guard_pct: Decimal | None = Decimal(15)
    # ----- end safety controls -----

    def weights(self) -> dict[str, Decimal]:
        """Target weights as Decimals (JSON numbers arrive as int or float)."""
        return {k: Decimal(str(v)) for k, v in self.target_weights.items()}


@dataclass(frozen=True)
class Run:
    id: int
    portfolio_id: str
    account: str
    slot: datetime | None
    triggered_by: str
    dry_run: bool
    status: str
    owner: str
    lease_expires_at: datetime
    started_at: datetime
    finished_at: datetime | None
    history_id: str | None
    error: str | None
    plan: dict[str, Any] | None = None  # the plan made (the one to approve); JSON
    expires_at: datetime | None = None  # when an awaiting approval lapses


@dataclass(frozen=True)
class OrderIntent:
    id: int
    run_id: int
    seq: int
    client_order_id: str
    symbol: str
    pair: str
    side: str
    volume: Decimal
    expected_price: Decimal
    status: str
    txid: str | None
    volume_executed: Decimal
    cost: Decimal
    fee: Decimal
    avg_price: Decimal
    error: str | None
    # ===== maker execution (issue 16) =====
    execution_mode: str = "market"
    arrival_mid: Decimal | None = None
    child_orders: int = 0  # exchange orders committed for this intent (runs/maker_ids.py)
    placements: int = 0
    fallback: bool = False


@dataclass(frozen=True)
class HistoryRecord:
    id: str
    portfolio_id: str
    executed_at: datetime
    success: bool
    dry_run: bool
    portfolio_value: Decimal
    orders_planned: int
    orders_executed: int
    orders_failed: int
    total_value_traded: Decimal
    orders: list[dict[str, Any]]  # JSON, as runs/outcome.py's OrderJson wrote it
    errors: list[str] | None
    triggered_by: str
    duration: int | None
    execution_cost_bps: Decimal | None = None  # maker execution (issue 16)


@dataclass(frozen=True)
class SchedulerState:
    """Overrides every daemon obeys; None means "as configured"."""

    running: bool | None
    enabled: bool | None
    check_interval: str | None
    dry_run: bool | None
    updated_at: datetime
    halted: bool = False  # the kill switch: nothing is claimed or placed while set
