"""Portfolio snapshots (value and weights over time) and the dashboard overview's aggregates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from rebalancerd.store.database import QUERIES, Database, columns
from rebalancerd.store.rows import HistoryRecord, from_record


@dataclass(frozen=True)
class SnapshotFields:
    """What a snapshot records: the value, each asset's weight, amount and value."""

    value: Decimal
    weights: Mapping[str, Decimal]  # percent of `value`
    holdings: Mapping[str, Mapping[str, Decimal]]  # {"BTC": {"amount": ..., "value": ...}}


@dataclass(frozen=True)
class Snapshot:
    id: int
    portfolio_id: str
    taken_at: datetime
    kind: str  # before | after | tick
    value: Decimal
    weights: dict[str, Any]
    holdings: dict[str, Any]
    run_id: int | None


def _text(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Decimals as exact strings: jsonb keeps them as written."""
    return {k: _text(v) if isinstance(v, Mapping) else format(v, "f") for k, v in mapping.items()}


def _json(mapping: Mapping[str, Any]) -> str:
    return orjson.dumps(_text(mapping)).decode()


class SnapshotQueries(Database):
    """The portfolio_snapshots table, and the counts the dashboard's overview shows."""

    async def insert_snapshots(
        self, rows: Sequence[tuple[str, str, SnapshotFields, int | None, datetime | None]]
    ) -> None:
        """Write several snapshots, (portfolio, kind, fields, run id, time or None for now), in
        one statement (a run's two are on its path; 1 round trip, not 4)."""
        values = [
            (pid, kind, f.value, _json(f.weights), _json(f.holdings), run_id, at)
            for pid, kind, f, run_id, at in rows
        ]
        await self.pool.execute(QUERIES["insert_snapshots"], *columns(values, 7))

    async def list_snapshots(
        self, portfolio_id: str, since: datetime | None, until: datetime | None, limit: int
    ) -> list[Snapshot]:
        """The newest `limit` snapshots in the range, oldest first."""
        rows = await self.pool.fetch(QUERIES["list_snapshots"], portfolio_id, since, until, limit)
        return [from_record(Snapshot, r) for r in rows]

    async def latest_snapshots(self) -> dict[str, Snapshot]:
        """Each portfolio's newest snapshot, by portfolio id."""
        rows = await self.pool.fetch(QUERIES["latest_snapshots"])
        return {r["portfolio_id"]: from_record(Snapshot, r) for r in rows}

    async def prune_snapshots(self, keep_days: int) -> int:
        """Delete snapshots older than `keep_days`; how many went."""
        status: str = await self.pool.execute(QUERIES["prune_snapshots"], keep_days)
        return int(status.rpartition(" ")[2] or 0)

    async def last_runs(self) -> dict[str, HistoryRecord]:
        """Each portfolio's newest history record, by portfolio id."""
        rows = await self.pool.fetch(QUERIES["last_runs"])
        return {r["portfolio_id"]: from_record(HistoryRecord, r) for r in rows}

    async def runs_since(self, since: datetime) -> tuple[int, int]:
        """(succeeded, failed) runs recorded since `since`."""
        row = await self.pool.fetchrow(QUERIES["runs_since"], since)
        return int(row["ok"]), int(row["failed"])

    async def daemons_since(self, since: datetime, me: str) -> list[str]:
        """The owner ids of other daemons that ran something since `since`."""
        return [r["owner"] for r in await self.pool.fetch(QUERIES["daemons_since"], since, me)]
