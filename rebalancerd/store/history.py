"""A run's end and the record it leaves: history rows written with the run's close, and read."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from rebalancerd.store.database import QUERIES
from rebalancerd.store.outbox import NewEvent, OutboxQueries
from rebalancerd.store.rows import HistoryRecord, Run, from_record

# The notifications a finished run reports, built from its history row (committed with it).
RunEvents = Callable[[HistoryRecord], Sequence[NewEvent]]


@dataclass(frozen=True)
class HistoryFields:
    """A finished run's history row as the runs code hands it over (the store adds the id,
    portfolio and time)."""

    success: bool
    dry_run: bool
    portfolio_value: Decimal
    orders_planned: int
    orders_executed: int
    orders_failed: int
    total_value_traded: Decimal
    orders: Sequence[Mapping[str, object]]  # stored as JSON
    errors: Sequence[str]
    triggered_by: str
    duration: int  # milliseconds
    execution_cost_bps: Decimal | None = None  # maker execution (issue 16)

    @property
    def first_error(self) -> str | None:
        """What the run row keeps as its error."""
        return self.errors[0] if self.errors else None

    def args(self) -> tuple[object, ...]:
        """The insert_history parameters after the portfolio id."""
        return (
            self.success,
            self.dry_run,
            self.portfolio_value,
            self.orders_planned,
            self.orders_executed,
            self.orders_failed,
            self.total_value_traded,
            [dict(order) for order in self.orders],
            list(self.errors) or None,
            self.triggered_by,
            self.duration,
            self.execution_cost_bps,
        )


class HistoryQueries(OutboxQueries):
    """The rebalance_history table, and finishing a run (which writes its row)."""

    async def finish_run(
        self, run: Run, owner: str, history: HistoryFields, events: RunEvents | None = None
    ) -> HistoryRecord | None:
        """Write the history row, close the run and record `events(row)` in one transaction.

        None, and nothing written, when the lease was lost (another daemon owns the run now).
        """
        try:
            async with self.transaction() as conn:
                # Marking the portfolio locks it before the run, as a trigger and a claim do.
                mark = "mark_rebalanced" if history.success else "mark_failed"
                await conn.execute(QUERIES[mark], run.portfolio_id)
                status = "succeeded" if history.success else "failed"
                row = await conn.fetchrow(
                    QUERIES["finish_run"],
                    run.portfolio_id,
                    *history.args(),
                    run.id,
                    owner,
                    status,
                    history.first_error,
                )
                if row["closed_run"] is None:
                    raise _FencedOff  # rolls the history row and the mark back
                if events is not None:  # a crash after this commit cannot lose them
                    await self.add_events(conn, events(from_record(HistoryRecord, row)))
        except _FencedOff:
            return None
        return from_record(HistoryRecord, row)

    async def list_history(
        self,
        portfolio_id: str | None = None,
        success: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[HistoryRecord]:
        rows = await self.pool.fetch(
            QUERIES["list_history"], portfolio_id, success, since, until, limit, offset
        )
        return [from_record(HistoryRecord, r) for r in rows]

    async def history_stats(
        self,
        portfolio_id: str | None = None,
        success: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            QUERIES["history_stats"], portfolio_id, success, since, until
        )
        return dict(row)

    async def last_successes(self) -> dict[str, datetime]:
        rows = await self.pool.fetch(QUERIES["last_success_per_portfolio"])
        return {r["portfolio_id"]: r["last_success"] for r in rows}


class _FencedOff(Exception):
    """Raised inside finish_run to roll the history back when the lease was lost."""
