"""Store: the one object that runs SQL, made of the parts in this package, plus the scheduler
state every daemon obeys."""

from __future__ import annotations

from collections.abc import Sequence

from rebalancerd.store.database import QUERIES
from rebalancerd.store.history import HistoryQueries
from rebalancerd.store.maker import MakerQueries
from rebalancerd.store.outbox import NewEvent, OutboxQueries
from rebalancerd.store.portfolios import PortfolioQueries
from rebalancerd.store.rows import SchedulerState, from_record
from rebalancerd.store.runs import RunQueries
from rebalancerd.store.safety import SafetyQueries
from rebalancerd.store.snapshots import SnapshotQueries


class Store(
    PortfolioQueries,
    RunQueries,
    HistoryQueries,
    MakerQueries,
    OutboxQueries,
    SnapshotQueries,
    SafetyQueries,
):
    """Runs the named queries on a pool; one instance per daemon."""

    async def scheduler_state(self) -> SchedulerState:
        row = await self.pool.fetchrow(QUERIES["get_scheduler_state"])
        return from_record(SchedulerState, row)

    async def set_scheduler_state(
        self,
        running: bool | None,
        enabled: bool | None,
        check_interval: str | None,
        dry_run: bool | None,
        events: Sequence[NewEvent] = (),
    ) -> SchedulerState:
        """Store the shared overrides; `events` (notifications) commit with them."""
        async with self.transaction() as conn:
            row = await conn.fetchrow(
                QUERIES["set_scheduler_state"], running, enabled, check_interval, dry_run
            )
            await self.add_events(conn, events)
        await self.notify("state")
        return from_record(SchedulerState, row)
