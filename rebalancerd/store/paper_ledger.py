"""Paper accounts' balances and orders in PostgreSQL, so they survive restarts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from rebalancerd.exchange.protocol import OrderState, RejectedError
from rebalancerd.store.database import QUERIES, Database


class PgPaperLedger:
    """The PaperLedger of paper.py, in the database: fills apply atomically and once."""

    def __init__(self, store: Database) -> None:
        self.store = store

    async def seed(self, account: str, balances: Mapping[str, Decimal]) -> None:
        """Set starting balances, only if the account has none yet."""
        assets = list(balances)
        await self.store.pool.execute(
            QUERIES["paper_seed"], account, assets, [balances[a] for a in assets]
        )

    async def balances(self, account: str) -> dict[str, Decimal]:
        rows = await self.store.pool.fetch(QUERIES["paper_balances"], account)
        return {r["asset"]: r["amount"] for r in rows}

    async def record_order(
        self, account: str, order: OrderState, deltas: Mapping[str, Decimal]
    ) -> OrderState:
        """Store the order and apply its balance changes, unless its id was recorded before."""
        async with self.store.transaction() as conn:
            row = await conn.fetchrow(
                QUERIES["paper_insert_order"],
                account,
                order.client_order_id,
                order.txid,
                order.pair,
                order.side,
                order.status,
                order.volume,
                order.volume_executed,
                order.cost,
                order.fee,
                order.avg_price,
            )
            if row is None:  # the same client order id again: the first one stands
                existing = await conn.fetchrow(
                    QUERIES["paper_find"], account, order.client_order_id
                )
                return _order(existing)
            try:
                for asset, delta in deltas.items():
                    await conn.execute(QUERIES["paper_apply"], account, asset, delta)
            except asyncpg.CheckViolationError:
                raise RejectedError(
                    "insufficient funds", code="EOrder:Insufficient funds"
                ) from None
        return order

    async def find(self, account: str, client_order_id: str) -> OrderState | None:
        row = await self.store.pool.fetchrow(QUERIES["paper_find"], account, client_order_id)
        return None if row is None else _order(row)

    async def by_txid(self, account: str, txids: Sequence[str]) -> dict[str, OrderState]:
        rows = await self.store.pool.fetch(QUERIES["paper_by_txid"], account, list(txids))
        return {r["txid"]: _order(r) for r in rows}


def _order(row: Any) -> OrderState:
    return OrderState(
        client_order_id=row["client_order_id"],
        txid=row["txid"],
        pair=row["pair"],
        side=row["side"],
        status=row["status"],
        volume=row["volume"],
        volume_executed=row["volume_executed"],
        cost=row["cost"],
        fee=row["fee"],
        avg_price=row["avg_price"],
    )
