"""Portfolios: what a client may set on one, reading and writing them, and the claim's locks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from rebalancerd.store.database import QUERIES, Database, columns
from rebalancerd.store.rows import Portfolio, Run, from_record
from rebalancerd.store.safety import SafetyFields


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
    # ===== maker execution (issue 16): stored by set_portfolio_execution =====
    execution_mode: str = "market"
    maker_timeout_seconds: int = 120
    max_slippage_bps: Decimal = Decimal(50)
    # ----- safety controls: written by set_portfolio_safety in the same transaction -----
    safety: SafetyFields = field(default_factory=SafetyFields)

    def execution_args(self) -> tuple[object, ...]:
        return (self.execution_mode, self.maker_timeout_seconds, self.max_slippage_bps)

    def args(self) -> tuple[object, ...]:
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


class PortfolioQueries(Database):
    """The portfolios table: CRUD for the API, due and banded portfolios for the loop."""

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
            async with self.transaction() as conn:
                row = await conn.fetchrow(QUERIES["insert_portfolio"], *values.args())
                row = await _set_execution(conn, row, values)
                row = await _with_safety(conn, row, values)
        except asyncpg.UniqueViolationError:
            raise AccountInUseError(values.account) from None
        await self.notify("portfolios")
        return from_record(Portfolio, row)

    async def update_portfolio(
        self, portfolio_id: str, values: PortfolioFields
    ) -> Portfolio | None:
        try:
            async with self.transaction() as conn:
                row = await conn.fetchrow(QUERIES["update_portfolio"], portfolio_id, *values.args())
                row = await _set_execution(conn, row, values)
                row = await _with_safety(conn, row, values)
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

    async def due_accounts(self, until: datetime) -> list[tuple[str, datetime]]:
        """(account, earliest slot) of the accounts with a portfolio due by `until`, not running."""
        rows = await self.pool.fetch(QUERIES["due_accounts"], until)
        return [(r["account"], r["slot"]) for r in rows]

    async def banded_portfolios(self, now: datetime) -> list[Portfolio]:
        rows = await self.pool.fetch(QUERIES["banded_portfolios"], now)
        return [from_record(Portfolio, r) for r in rows]

    async def claim_due(
        self,
        now: datetime,
        limit: int,
        busy_accounts: Sequence[str],
        *,
        dry_run: bool,
        owner: str,
        lease_seconds: float,
    ) -> list[tuple[Portfolio, Run | None]]:
        """Up to `limit` due portfolios, locked for the statement, each with the run opened for
        its slot (None: the slot ran already or another daemon opened a run meanwhile)."""
        rows = await self.pool.fetch(
            claim_due_sql(limit), now, list(busy_accounts), dry_run, owner, float(lease_seconds)
        )
        return [(from_record(Portfolio, r), _claimed_run(r)) for r in rows]

    async def advance_slots(self, moves: Sequence[tuple[str, datetime, datetime]]) -> None:
        """(portfolio id, slot claimed, next slot) for each claimed portfolio, in one statement."""
        if moves:
            await self.pool.execute(QUERIES["advance_slots"], *columns(moves, 3))

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

    async def set_next_rebalance(
        self, conn: asyncpg.Connection | None, portfolio_id: str, at: datetime | None
    ) -> None:
        await (conn or self.pool).execute(QUERIES["set_next_rebalance"], portfolio_id, at)


async def _set_execution(
    conn: asyncpg.Connection, row: asyncpg.Record | None, values: PortfolioFields
) -> asyncpg.Record | None:
    """Maker execution (issue 16): the portfolio's execution settings, in the same transaction."""
    if row is None:
        return None
    return await conn.fetchrow(
        QUERIES["set_portfolio_execution"], row["id"], *values.execution_args()
    )


async def _with_safety(
    conn: asyncpg.Connection, row: asyncpg.Record | None, values: PortfolioFields
) -> asyncpg.Record | None:
    """The row with its safety columns written (safety controls, sql/0004_safety.sql)."""
    if row is None:
        return None
    saved: asyncpg.Record | None = await conn.fetchrow(
        QUERIES["set_portfolio_safety"], row["id"], *values.safety.args()
    )
    return saved


def claim_due_sql(limit: int) -> str:
    """The due claim with its LIMIT written in as a literal (queries.sql says why)."""
    return QUERIES["claim_due"].replace("{limit}", str(max(int(limit), 0)))


def _claimed_run(row: asyncpg.Record) -> Run | None:
    """The run claim_due opened, from its run_-prefixed columns; None when it opened none."""
    if row["run_id"] is None:
        return None
    return from_record(Run, {k[4:]: v for k, v in row.items() if k.startswith("run_")})
