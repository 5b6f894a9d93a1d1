"""Runs and their order intents: the claim's row, its lease, take-over, and each order's fate."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import asyncpg

from rebalancerd.store.database import QUERIES, Database, columns
from rebalancerd.store.rows import OrderIntent, Portfolio, Run, from_record


class WakeTimes(NamedTuple):
    """What the loop wakes for (None: nothing of the kind)."""

    due: datetime | None  # the earliest slot of an enabled portfolio that is not running
    lease: datetime | None  # the earliest lease expiry of an open run another daemon holds
    lapse: datetime | None  # the earliest expiry of an approval awaited


class RunQueries(Database):
    """The rebalance_runs and order_intents tables."""

    async def insert_run(
        self,
        conn: asyncpg.Connection,
        portfolio: Portfolio,
        slot: datetime | None,
        triggered_by: str,
        dry_run: bool,
        owner: str,
        lease_seconds: float,
    ) -> Run | None:
        """A new open run, or None when the slot ran already or the portfolio is running."""
        row = await conn.fetchrow(
            QUERIES["insert_run"],
            portfolio.id,
            portfolio.account,
            slot,
            triggered_by,
            dry_run,
            owner,
            float(lease_seconds),
        )
        return None if row is None else from_record(Run, row)

    async def extend_lease(self, run_id: int, owner: str, lease_seconds: float) -> bool:
        """False when the lease was lost (another daemon took the run over)."""
        value = await self.pool.fetchval(
            QUERIES["extend_lease"], run_id, owner, float(lease_seconds)
        )
        return value is not None

    async def take_over_run(
        self, run_id: int, owner: str, lease_seconds: float, dead_owner: str = ""
    ) -> Run | None:
        row = await self.pool.fetchrow(
            QUERIES["take_over_run"], run_id, owner, float(lease_seconds), dead_owner
        )
        return None if row is None else from_record(Run, row)

    async def open_runs(self, other_than: str = "") -> list[Run]:
        """Open runs (not awaiting approval), but those `other_than` holds."""
        rows = await self.pool.fetch(QUERIES["open_runs"], other_than)
        return [from_record(Run, r) for r in rows]

    async def wake_times(self, owner: str) -> WakeTimes:
        row = await self.pool.fetchrow(QUERIES["wake_times"], owner)
        return WakeTimes(row["due"], row["lease"], row["lapse"])

    async def update_intent(
        self,
        client_order_id: str,
        status: str,
        *,
        txid: str | None = None,
        volume_executed: Decimal = Decimal(0),
        cost: Decimal = Decimal(0),
        fee: Decimal = Decimal(0),
        avg_price: Decimal = Decimal(0),
        error: str | None = None,
    ) -> OrderIntent:
        row = await self.pool.fetchrow(
            QUERIES["update_intent"],
            client_order_id,
            status,
            txid,
            volume_executed,
            cost,
            fee,
            avg_price,
            error,
        )
        return from_record(OrderIntent, row)

    async def insert_intents(
        self,
        run_id: int | None,
        rows: Sequence[tuple[int, str, str, str, str, Decimal, Decimal]],
        *,
        saving: Sequence[OrderIntent] = (),
    ) -> list[OrderIntent]:
        """Commit many intents at once: (seq, client id, symbol, pair, side, volume, price).

        `saving`: earlier intents whose state is stored in the same commit (a run's sells, as
        their replies left them, with its buys' intents: one commit, not two). One statement.
        """
        new = columns(rows, 7)
        saved = columns(_update_args(saving), 8)
        records = await self.pool.fetch(QUERIES["insert_intents"], run_id, *new, *saved)
        return sorted((from_record(OrderIntent, r) for r in records), key=lambda i: i.seq)

    async def save_intents(self, intents: Sequence[OrderIntent]) -> None:
        """Store what became of many orders in one statement."""
        if intents:
            await self.insert_intents(None, (), saving=intents)

    async def run_intents(self, run_id: int) -> list[OrderIntent]:
        rows = await self.pool.fetch(QUERIES["run_intents"], run_id)
        return [from_record(OrderIntent, r) for r in rows]

    async def unresolved_intents(self, portfolio_id: str) -> list[OrderIntent]:
        rows = await self.pool.fetch(QUERIES["unresolved_intents"], portfolio_id)
        return [from_record(OrderIntent, r) for r in rows]


def _update_args(intents: Sequence[OrderIntent]) -> list[tuple[object, ...]]:
    """update_intent's arguments for each intent."""
    return [outcome_args(i) for i in intents]


def outcome_args(i: OrderIntent) -> tuple[object, ...]:
    """What became of an order: update_intent's arguments (save_maker_intent adds its own)."""
    return (i.client_order_id, i.status, i.txid, i.volume_executed, i.cost, i.fee, i.avg_price,
            i.error)  # fmt: skip
