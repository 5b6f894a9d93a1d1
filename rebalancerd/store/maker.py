"""Maker execution (issue 16): intents of resting orders, their child orders, a run's cost."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rebalancerd.store.database import QUERIES, Database
from rebalancerd.store.rows import OrderIntent, from_record
from rebalancerd.store.runs import outcome_args

# (seq, client id, symbol, pair, side, volume, expected price, arrival mid)
MakerRow = tuple[int, str, str, str, str, Decimal, Decimal, Decimal]


class MakerQueries(Database):
    """The maker columns of order_intents and rebalance_history."""

    async def insert_maker_intents(
        self, run_id: int, rows: Sequence[MakerRow]
    ) -> list[OrderIntent]:
        """Commit a side's maker intents in one transaction, before any of them is sent."""
        async with self.transaction() as conn:
            return [
                from_record(
                    OrderIntent, await conn.fetchrow(QUERIES["insert_maker_intent"], run_id, *r)
                )
                for r in rows
            ]

    async def add_child_order(self, client_order_id: str, child: int) -> OrderIntent:
        """Commit that child order `child` of an intent is about to be sent."""
        row = await self.pool.fetchrow(QUERIES["add_child_order"], client_order_id, child)
        return from_record(OrderIntent, row)

    async def save_maker_intents(self, intents: Sequence[OrderIntent]) -> None:
        """Store what became of many maker orders in one transaction."""
        if not intents:
            return
        async with self.transaction() as conn:
            await conn.executemany(QUERIES["save_maker_intent"], [_args(i) for i in intents])


def _args(i: OrderIntent) -> tuple[object, ...]:
    return (*outcome_args(i), i.placements, i.fallback)
