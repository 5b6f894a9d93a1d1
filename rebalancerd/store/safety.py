"""Safety controls in the database: the kill switch, runs awaiting approval, the plan a run made,
and the price marks the price-jump guard compares against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from rebalancerd.store.database import QUERIES, Database
from rebalancerd.store.history import HistoryFields
from rebalancerd.store.outbox import NewEvent, insert_events
from rebalancerd.store.rows import HistoryRecord, Run, SchedulerState, from_record


@dataclass(frozen=True)
class SafetyFields:
    """A portfolio's safety settings, as a client sets them (sql/0004_safety.sql)."""

    approval: str = "auto"
    approval_ttl_seconds: int = 3600
    approval_tolerance_pct: Decimal = Decimal(1)
    max_trade_percent: Decimal | None = None
    sell_mode: str = "allow"
    price_jump_guard_pct: Decimal | None = Decimal(15)

    def args(self) -> tuple[object, ...]:
        return (
            self.approval,
            self.approval_ttl_seconds,
            self.approval_tolerance_pct,
            self.max_trade_percent,
            self.sell_mode,
            self.price_jump_guard_pct,
        )


class _Unchanged(Exception):
    """Raised inside a transaction to roll it back when the row was no longer as expected."""


class SafetyQueries(Database):
    """The kill switch, runs awaiting approval, run plans and price marks."""

    async def set_halted(self, halted: bool, events: Sequence[NewEvent] = ()) -> SchedulerState:
        """Set or clear the kill switch; `events` (notifications) commit with it."""
        async with self.transaction() as conn:
            row = await conn.fetchrow(QUERIES["set_halted"], halted)
            await insert_events(conn, events)
        await self.notify("state")  # every daemon hears of it at once
        return from_record(SchedulerState, row)

    async def is_halted(self, conn: asyncpg.Connection | None = None) -> bool:
        return bool(await (conn or self.pool).fetchval(QUERIES["is_halted"]))

    async def set_run_plan(self, run_id: int, plan: Mapping[str, Any]) -> None:
        await self.pool.execute(QUERIES["set_run_plan"], run_id, dict(plan))

    async def park_run(
        self,
        run_id: int,
        owner: str,
        plan: Mapping[str, Any],
        expires_at: datetime,
        events: Sequence[NewEvent] = (),
    ) -> Run | None:
        """The run now waits for approval; None when this daemon no longer holds it. `events`
        (notifications) commit with it, and only if it was parked."""
        async with self.transaction() as conn:
            row = await conn.fetchrow(QUERIES["park_run"], run_id, owner, dict(plan), expires_at)
            if row is not None:
                await insert_events(conn, events)
        if row is None:
            return None
        await self.notify("runs")
        return from_record(Run, row)

    async def get_run(self, run_id: int, conn: asyncpg.Connection | None = None) -> Run | None:
        row = await (conn or self.pool).fetchrow(QUERIES["get_run"], run_id)
        return None if row is None else from_record(Run, row)

    async def list_runs(
        self, status: str | None, portfolio_id: str | None, limit: int
    ) -> list[Run]:
        rows = await self.pool.fetch(QUERIES["list_runs"], status, portfolio_id, limit)
        return [from_record(Run, r) for r in rows]

    async def resume_approved_run(
        self, conn: asyncpg.Connection, run_id: int, owner: str, lease_seconds: float
    ) -> Run | None:
        """Hand an awaiting run to this daemon to execute; None if it is not awaiting."""
        row = await conn.fetchrow(
            QUERIES["resume_approved_run"], run_id, owner, float(lease_seconds)
        )
        return None if row is None else from_record(Run, row)

    async def close_awaiting(
        self, run: Run, status: str, history: HistoryFields
    ) -> HistoryRecord | None:
        """End an awaiting run as rejected or expired, with its history row; None if it was
        not awaiting any more (approved, rejected or expired by someone else)."""
        try:
            async with self.transaction() as conn:
                await conn.execute(QUERIES["lock_portfolio_to_finish"], run.portfolio_id)
                row = await conn.fetchrow(
                    QUERIES["insert_history"], run.portfolio_id, *history.args()
                )
                closed = await conn.fetchval(
                    QUERIES["close_awaiting_run"], run.id, status, row["id"], history.first_error
                )
                if closed is None:
                    raise _Unchanged
        except _Unchanged:
            return None
        await self.notify("runs")
        return from_record(HistoryRecord, row)

    async def lapsed_runs(self, now: datetime) -> list[int]:
        """Ids of runs whose approval has expired by `now`."""
        return [r["id"] for r in await self.pool.fetch(QUERIES["lapsed_runs"], now)]

    async def price_marks(self, portfolio_id: str) -> dict[str, tuple[Decimal, datetime]]:
        """symbol -> (mid price, when read) of the portfolio's last price marks."""
        rows = await self.pool.fetch(QUERIES["price_marks"], portfolio_id)
        return {r["symbol"]: (r["price"], r["observed_at"]) for r in rows}

    async def save_price_marks(
        self, portfolio_id: str, prices: Mapping[str, Decimal], at: datetime
    ) -> None:
        if prices:
            symbols = sorted(prices)
            await self.pool.execute(
                QUERIES["save_price_marks"],
                portfolio_id,
                symbols,
                [prices[s] for s in symbols],
                at,
            )
