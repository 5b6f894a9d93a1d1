"""The notification outbox: events written inside the caller's transaction, fanned out to the
configured webhooks, claimed for delivery with SKIP LOCKED, and their fate recorded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from rebalancerd.store.database import QUERIES, Database
from rebalancerd.store.rows import from_record


@dataclass(frozen=True)
class NewEvent:
    """An event to record: its id is the webhook-id of every delivery, retries included."""

    id: UUID
    type: str
    created_at: datetime
    data: Mapping[str, Any]  # the body's "data": JSON, never a secret


@dataclass(frozen=True)
class Claimed:
    """One delivery taken for one attempt (`attempts` is this attempt's number)."""

    event_id: UUID
    hook: str
    attempts: int
    type: str
    created_at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class DeliveryRow:
    """A delivery as the API lists it."""

    event_id: UUID
    hook: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    updated_at: datetime
    delivered_at: datetime | None
    type: str
    created_at: datetime
    portfolio_id: str | None
    run_id: int | None


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    oldest_pending_seconds: float  # 0 when nothing is pending


async def insert_events(conn: asyncpg.Connection, events: Sequence[NewEvent]) -> None:
    """Record events inside the caller's transaction (the change they report commits them)."""
    if events:
        await conn.execute(
            QUERIES["outbox_insert"],
            [e.id for e in events],
            [e.type for e in events],
            [e.created_at for e in events],
            [dict(e.data) for e in events],
        )


class OutboxQueries(Database):
    """The notify_events and notify_deliveries tables."""

    async def add_events(self, conn: asyncpg.Connection, events: Sequence[NewEvent]) -> None:
        """Record events inside the caller's transaction (the change they report commits them)."""
        await insert_events(conn, events)

    async def emit(self, events: Sequence[NewEvent]) -> None:
        """Record events that report no stored change of their own (daemon start and stop)."""
        async with self.transaction() as conn:
            await self.add_events(conn, events)
        await self.notify("outbox")

    async def dispatch_events(self, subscriptions: Mapping[str, Sequence[str]]) -> int:
        """Fan undispatched events out to hooks ({hook: event types}); how many events."""
        rows = await self.pool.fetch(
            QUERIES["outbox_dispatch"], {k: list(v) for k, v in subscriptions.items()}
        )
        return len(rows)

    async def claim_deliveries(self, hook: str, limit: int, lease_seconds: float) -> list[Claimed]:
        rows = await self.pool.fetch(QUERIES["outbox_claim"], hook, limit, float(lease_seconds))
        return [from_record(Claimed, r) for r in rows]

    async def delivery_succeeded(self, claim: Claimed, status: int) -> None:
        await self.pool.execute(QUERIES["outbox_delivered"], claim.event_id, claim.hook, status)

    async def delivery_failed(
        self,
        claim: Claimed,
        status: int | None,
        error: str,
        *,
        retry_in: float,
        give_up: bool,
    ) -> None:
        await self.pool.execute(
            QUERIES["outbox_failed"],
            claim.event_id,
            claim.hook,
            claim.attempts,
            status,
            float(retry_in),
            give_up,
            error[:500],
        )

    async def release_delivery(self, claim: Claimed) -> None:
        await self.pool.execute(
            QUERIES["outbox_release"], claim.event_id, claim.hook, claim.attempts
        )

    async def next_delivery_due(self, hooks: Sequence[str]) -> datetime | None:
        value: datetime | None = await self.pool.fetchval(QUERIES["outbox_next_due"], list(hooks))
        return value

    async def outbox_stats(self) -> OutboxStats:
        row = await self.pool.fetchrow(QUERIES["outbox_stats"])
        return OutboxStats(row["pending"], row["oldest_pending_seconds"] or 0.0)

    async def prune_outbox(self, older_than_seconds: float) -> int:
        """Delete finished events older than the retention; how many."""
        status = await self.pool.execute(QUERIES["outbox_prune"], float(older_than_seconds))
        return int(status.split()[-1])

    async def recent_deliveries(self, limit: int) -> list[DeliveryRow]:
        rows = await self.pool.fetch(QUERIES["outbox_recent"], limit)
        return [from_record(DeliveryRow, r) for r in rows]
