"""What the dashboard's routes answer (the OpenAPI document is generated from these too)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from rebalancerd.api.bodies import Body
from rebalancerd.api.fields import Bound
from rebalancerd.api.replies import Euro, HistoryRecord, Portfolio, Reply, RunJson, SchedulerState


class SnapshotQuery(Body):
    """GET /api/portfolios/{id}/snapshots: a time range and how many of its newest points."""

    from_: Bound | None = Field(default=None, alias="from")
    to: Bound | None = None
    limit: int = Field(default=500, ge=1, le=5000)


class Holding(Reply):
    """One asset of a snapshot: the amount held and its value in EUR at mid."""

    amount: str  # exact text: volumes keep their decimals
    value: Euro


class SnapshotJson(Reply):
    """A portfolio's value and weights at one moment: before or after a run, or a check tick."""

    taken_at: datetime
    kind: Literal["before", "after", "tick"]
    value: Euro
    weights: dict[str, float]  # percent of value
    holdings: dict[str, Holding]
    run_id: int | None


class SnapshotList(Reply):
    """GET /api/portfolios/{id}/snapshots: oldest first."""

    success: Literal[True] = True
    portfolio_id: str
    snapshots: list[SnapshotJson]
    count: int


class Account(Reply):
    """A configured exchange account: its name and mode, never a credential."""

    name: str
    mode: Literal["live", "paper"]


class AccountList(Reply):
    """GET /api/accounts."""

    success: Literal[True] = True
    accounts: list[Account]


class PortfolioCard(Reply):
    """A portfolio as the overview shows it: its latest snapshot, last run and drift."""

    portfolio: Portfolio
    snapshot: SnapshotJson | None
    last_run: HistoryRecord | None
    largest_drift: float | None  # percentage points, the largest |current - target|
    largest_drift_symbol: str | None
    outside_band: bool  # only with a drift band set
    awaiting_run: RunJson | None = None  # safety controls: the run whose plan awaits approval
    last_run_rejected: bool = False  # its plan was rejected by a person: not a failure
    attention: int  # 0 failed last run, 1 awaiting approval, 2 outside its band, 3 the rest


class RunCounts(Reply):
    """Runs recorded in the last 24 hours."""

    succeeded: int
    failed: int  # not counting rejected plans (safety controls): a person's choice
    rejected: int = 0


class Overview(Reply):
    """GET /api/dashboard: everything the overview shows, in one request."""

    success: Literal[True] = True
    access: Literal["full", "read"]
    status: SchedulerState
    daemons_seen: int  # this one and the live ones that ran something in the last 24 hours
    runs24h: RunCounts = Field(alias="runs24h")
    total_value: Euro
    accounts: list[Account]
    portfolios: list[PortfolioCard]


DASHBOARD_REPLIES: tuple[type[Reply], ...] = (SnapshotList, AccountList, Overview)
