"""A run's end and the record it leaves: history rows written with the run's close, and read."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rebalancerd.store.database import QUERIES, Database
from rebalancerd.store.rows import HistoryRecord, Run, from_record


class HistoryQueries(Database):
    """The rebalance_history table, and finishing a run (which writes its row)."""

    async def finish_run(
        self, run: Run, owner: str, history: Mapping[str, Any], error: str | None
    ) -> HistoryRecord | None:
        """Write the history row and close the run in one transaction.

        None, and nothing written, when the lease was lost (another daemon owns the run now).
        """
        try:
            async with self.transaction() as conn:
                row = await conn.fetchrow(
                    QUERIES["insert_history"],
                    run.portfolio_id,
                    history["success"],
                    history["dry_run"],
                    history["portfolio_value"],
                    history["orders_planned"],
                    history["orders_executed"],
                    history["orders_failed"],
                    history["total_value_traded"],
                    history["orders"],
                    history["errors"],
                    history["triggered_by"],
                    history["duration"],
                )
                status = "succeeded" if history["success"] else "failed"
                fenced = await conn.fetchval(
                    QUERIES["finish_run"], run.id, owner, status, row["id"], error
                )
                if fenced is None:
                    raise _FencedOff  # rolls the history row back
                if history["success"]:
                    await conn.execute(QUERIES["mark_rebalanced"], run.portfolio_id)
                else:
                    await conn.execute(QUERIES["mark_failed"], run.portfolio_id)
        except _FencedOff:
            return None
        await self.notify("runs")
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
