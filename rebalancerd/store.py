"""The only code that runs SQL: named queries from queries.sql, returning typed rows."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any

import asyncpg

from .models import HistoryRecord, OrderIntent, Portfolio, Run, SchedulerState, from_record

NOTIFY_CHANNEL = "rebalancerd"
_BLOCK = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load_queries() -> dict[str, str]:
    """Parse queries.sql once into {name: sql}."""
    text = resources.files("rebalancerd").joinpath("queries.sql").read_text()
    parts = _BLOCK.split(text)[1:]
    return {name: sql.strip() for name, sql in zip(parts[::2], parts[1::2], strict=True)}


QUERIES = load_queries()


class AccountInUseError(Exception):
    """Another enabled portfolio already trades this account."""


@dataclass(frozen=True)
class PortfolioFields:
    """Everything a client may set on a portfolio (the store fills ids and timestamps)."""

    name: str
    user_id: str | None
    account: str
    target_weights: dict[str, Any]
    rebalance_enabled: bool
    rebalance_interval: str
    rebalance_threshold: Decimal
    max_orders_per_rebalance: int | None
    schedule_tz: str | None
    drift_band_abs: Decimal | None
    drift_band_rel: Decimal | None
    schedule_anchor: datetime | None
    next_rebalance_at: datetime | None

    def args(self) -> tuple[Any, ...]:
        return (
            self.name,
            self.user_id,
            self.account,
            self.target_weights,
            self.rebalance_enabled,
            self.rebalance_interval,
            self.rebalance_threshold,
            self.max_orders_per_rebalance,
            self.schedule_tz,
            self.drift_band_abs,
            self.drift_band_rel,
            self.schedule_anchor,
            self.next_rebalance_at,
        )


class Store:
    """Runs the named queries on a pool; one instance per daemon."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def ping(self) -> bool:
        """True when the database answers."""
        try:
            return bool(await self.pool.fetchval("SELECT true", timeout=2))
        except (OSError, asyncpg.PostgresError, TimeoutError, asyncpg.InterfaceError):
            return False

    async def notify(self, what: str) -> None:
        await self.pool.execute(QUERIES["notify"], what)

    # -- portfolios

    async def list_portfolios(self) -> list[Portfolio]:
        rows = await self.pool.fetch(QUERIES["list_portfolios"])
        return [from_record(Portfolio, r) for r in rows]

    async def get_portfolio(
        self, portfolio_id: str, conn: asyncpg.Connection | None = None
    ) -> Portfolio | None:
        row = await (conn or self.pool).fetchrow(QUERIES["get_portfolio"], portfolio_id)
        return None if row is None else from_record(Portfolio, row)

    async def create_portfolio(self, values: PortfolioFields) -> Portfolio:
        try:
            row = await self.pool.fetchrow(QUERIES["insert_portfolio"], *values.args())
        except asyncpg.UniqueViolationError:
            raise AccountInUseError(values.account) from None
        await self.notify("portfolios")
        return from_record(Portfolio, row)

    async def update_portfolio(
        self, portfolio_id: str, values: PortfolioFields
    ) -> Portfolio | None:
        try:
            row = await self.pool.fetchrow(
                QUERIES["update_portfolio"], portfolio_id, *values.args()
            )
        except asyncpg.UniqueViolationError:
            raise AccountInUseError(values.account) from None
        await self.notify("portfolios")
        return None if row is None else from_record(Portfolio, row)

    async def delete_portfolio(self, portfolio_id: str) -> bool:
        """Delete unless a run is open; False when nothing was deleted."""
        deleted = await self.pool.fetchval(QUERIES["delete_portfolio"], portfolio_id)
        await self.notify("portfolios")
        return deleted is not None

    async def schedule(self) -> list[Mapping[str, Any]]:
        return [dict(r) for r in await self.pool.fetch(QUERIES["schedule"])]

    async def earliest_due(self) -> datetime | None:
        value: datetime | None = await self.pool.fetchval(QUERIES["earliest_due"])
        return value

    async def banded_portfolios(self, now: datetime) -> list[Portfolio]:
        rows = await self.pool.fetch(QUERIES["banded_portfolios"], now)
        return [from_record(Portfolio, r) for r in rows]

    # -- runs and claims

    async def lock_due(
        self, conn: asyncpg.Connection, now: datetime, limit: int, busy_accounts: Sequence[str]
    ) -> list[Portfolio]:
        rows = await conn.fetch(QUERIES["lock_due"], now, limit, list(busy_accounts))
        return [from_record(Portfolio, r) for r in rows]

    async def lock_portfolio(self, conn: asyncpg.Connection, portfolio_id: str) -> Portfolio | None:
        row = await conn.fetchrow(QUERIES["lock_portfolio"], portfolio_id)
        return None if row is None else from_record(Portfolio, row)

    async def try_lock_portfolio(
        self, conn: asyncpg.Connection, portfolio_id: str
    ) -> Portfolio | None:
        """The portfolio, locked; None when it is missing or another transaction holds it."""
        row = await conn.fetchrow(QUERIES["try_lock_portfolio"], portfolio_id)
        return None if row is None else from_record(Portfolio, row)

    async def account_holder(
        self, conn: asyncpg.Connection, account: str, other_than: str
    ) -> Portfolio | None:
        """The enabled portfolio trading `account`, unless it is `other_than`."""
        row = await conn.fetchrow(QUERIES["account_holder"], account, other_than)
        return None if row is None else from_record(Portfolio, row)

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

    async def set_next_rebalance(
        self, conn: asyncpg.Connection | None, portfolio_id: str, at: datetime | None
    ) -> None:
        await (conn or self.pool).execute(QUERIES["set_next_rebalance"], portfolio_id, at)

    async def extend_lease(self, run_id: int, owner: str, lease_seconds: float) -> bool:
        """False when the lease was lost (another daemon took the run over)."""
        value = await self.pool.fetchval(
            QUERIES["extend_lease"], run_id, owner, float(lease_seconds)
        )
        return value is not None

    async def release_run(self, run_id: int, owner: str) -> None:
        await self.pool.execute(QUERIES["release_run"], run_id, owner)

    async def take_over_run(
        self, run_id: int, owner: str, lease_seconds: float, dead_owner: str = ""
    ) -> Run | None:
        row = await self.pool.fetchrow(
            QUERIES["take_over_run"], run_id, owner, float(lease_seconds), dead_owner
        )
        return None if row is None else from_record(Run, row)

    async def open_runs(self) -> list[Run]:
        return [from_record(Run, r) for r in await self.pool.fetch(QUERIES["orphaned_runs"])]

    async def earliest_foreign_lease(self, owner: str) -> datetime | None:
        value: datetime | None = await self.pool.fetchval(QUERIES["earliest_lease_expiry"], owner)
        return value

    async def open_run_for(self, portfolio_id: str) -> Run | None:
        row = await self.pool.fetchrow(QUERIES["open_run_for"], portfolio_id)
        return None if row is None else from_record(Run, row)

    async def get_run(self, run_id: int) -> Run | None:
        row = await self.pool.fetchrow(QUERIES["get_run"], run_id)
        return None if row is None else from_record(Run, row)

    # -- order intents

    async def insert_intent(
        self,
        run_id: int,
        seq: int,
        client_order_id: str,
        symbol: str,
        pair: str,
        side: str,
        volume: Decimal,
        expected_price: Decimal,
    ) -> OrderIntent:
        row = await self.pool.fetchrow(
            QUERIES["insert_intent"],
            run_id,
            seq,
            client_order_id,
            symbol,
            pair,
            side,
            volume,
            expected_price,
        )
        return from_record(OrderIntent, row)

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
        self, run_id: int, rows: Sequence[tuple[int, str, str, str, str, Decimal, Decimal]]
    ) -> list[OrderIntent]:
        """Commit many intents at once: (seq, client id, symbol, pair, side, volume, price)."""
        async with self.transaction() as conn:
            return [
                from_record(OrderIntent, await conn.fetchrow(QUERIES["insert_intent"], run_id, *r))
                for r in rows
            ]

    async def save_intents(self, intents: Sequence[OrderIntent]) -> None:
        """Store what became of many orders in one transaction."""
        args = [
            (
                i.client_order_id,
                i.status,
                i.txid,
                i.volume_executed,
                i.cost,
                i.fee,
                i.avg_price,
                i.error,
            )
            for i in intents
        ]
        async with self.transaction() as conn:
            await conn.executemany(QUERIES["update_intent"], args)

    async def run_intents(self, run_id: int) -> list[OrderIntent]:
        rows = await self.pool.fetch(QUERIES["run_intents"], run_id)
        return [from_record(OrderIntent, r) for r in rows]

    async def unresolved_intents(self, portfolio_id: str) -> list[OrderIntent]:
        rows = await self.pool.fetch(QUERIES["unresolved_intents"], portfolio_id)
        return [from_record(OrderIntent, r) for r in rows]

    # -- finishing a run and history

    async def finish_run(
        self, run: Run, owner: str, history: Mapping[str, Any], error: str | None
    ) -> HistoryRecord | None:
        """Write the history row and close the run in one transaction; None if fenced off."""
        async with self.transaction() as conn:
            # The portfolio before the run, as a trigger and a claim lock them (see queries.sql).
            await conn.execute(QUERIES["lock_portfolio_to_finish"], run.portfolio_id)
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
                raise _FencedOff
            if history["success"]:
                await conn.execute(QUERIES["mark_rebalanced"], run.portfolio_id)
            else:
                await conn.execute(QUERIES["mark_failed"], run.portfolio_id)
        await self.notify("runs")
        return from_record(HistoryRecord, row)

    async def get_history(self, history_id: str) -> HistoryRecord | None:
        row = await self.pool.fetchrow(QUERIES["get_history"], history_id)
        return None if row is None else from_record(HistoryRecord, row)

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

    # -- scheduler state

    async def scheduler_state(self) -> SchedulerState:
        row = await self.pool.fetchrow(QUERIES["get_scheduler_state"])
        return from_record(SchedulerState, row)

    async def set_scheduler_state(
        self,
        running: bool | None,
        enabled: bool | None,
        check_interval: str | None,
        dry_run: bool | None,
    ) -> SchedulerState:
        row = await self.pool.fetchrow(
            QUERIES["set_scheduler_state"], running, enabled, check_interval, dry_run
        )
        await self.notify("state")
        return from_record(SchedulerState, row)


class _FencedOff(Exception):
    """Raised inside finish_run to roll the history back when the lease was lost."""


async def finish_run_or_none(
    store: Store, run: Run, owner: str, history: Mapping[str, Any], error: str | None
) -> HistoryRecord | None:
    """finish_run, but None (and nothing written) when another daemon owns the run now."""
    try:
        return await store.finish_run(run, owner, history, error)
    except _FencedOff:
        return None
