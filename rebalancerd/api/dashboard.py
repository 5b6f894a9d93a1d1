"""The dashboard's data: its overview in one request, a portfolio's snapshots, the accounts,
and a stream of change events (server-sent events) so open pages refresh without polling."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web

from rebalancerd.api.control import scheduler_state
from rebalancerd.api.dashboard_replies import (
    Account,
    AccountList,
    Holding,
    Overview,
    PortfolioCard,
    RunCounts,
    SnapshotJson,
    SnapshotList,
    SnapshotQuery,
)
from rebalancerd.api.guard import ACCESS
from rebalancerd.api.http import SCHEDULER, STORE, ApiError, dumps, query, raw_reply
from rebalancerd.api.replies import HistoryRecord
from rebalancerd.api.replies import Portfolio as PortfolioJson
from rebalancerd.api.runs import run_json
from rebalancerd.config import Settings
from rebalancerd.planning.checks import out_of_band
from rebalancerd.runs.lifecycle import owner_is_dead
from rebalancerd.runs.loop import Scheduler
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import HistoryRecord as StoredHistory
from rebalancerd.store.rows import Portfolio, Run
from rebalancerd.store.snapshots import Snapshot

CURRENT: web.AppKey[Any] = web.AppKey("current_settings")  # () -> Settings in force
DAY = timedelta(hours=24)


def snapshot_json(row: Snapshot) -> SnapshotJson:
    """A stored snapshot as the API shows it."""
    return SnapshotJson(
        taken_at=row.taken_at,
        kind=row.kind,  # type: ignore[arg-type]  # the table's CHECK keeps it to the three
        value=Decimal(row.value),
        weights={k: float(v) for k, v in row.weights.items()},
        holdings={
            k: Holding(amount=v["amount"], value=Decimal(v["value"]))
            for k, v in row.holdings.items()
        },
        run_id=row.run_id,
    )


async def snapshots(request: web.Request) -> web.Response:
    pid = request.match_info["id"]
    q = query(request, SnapshotQuery)
    store = request.app[STORE]
    if await store.get_portfolio(pid) is None:
        raise ApiError(404, f"portfolio {pid} not found")
    rows = await store.list_snapshots(pid, q.from_, q.to, q.limit)
    body = SnapshotList(
        portfolio_id=pid, snapshots=[snapshot_json(r) for r in rows], count=len(rows)
    )
    return conditional(request, dumps(body.body()))


def accounts_of(settings: Settings) -> list[Account]:
    """The configured accounts, by name: no credential ever leaves this function."""
    return [Account(name=n, mode=a.mode) for n, a in sorted(settings.accounts.items())]


async def accounts(request: web.Request) -> web.Response:
    body = AccountList(accounts=accounts_of(request.app[CURRENT]()))
    return conditional(request, dumps(body.body()))


def drift(portfolio: Portfolio, snapshot: Snapshot | None) -> tuple[float | None, str | None, bool]:
    """(largest drift in pp, its symbol, outside a configured band) from the latest snapshot."""
    if snapshot is None:
        return None, None, False
    current = {k: Decimal(str(v)) for k, v in snapshot.weights.items()}
    targets = portfolio.weights()
    symbols = sorted(set(targets) | {s for s, w in current.items() if w})
    gaps = {s: current.get(s, Decimal(0)) - targets.get(s, Decimal(0)) for s in symbols}
    symbol = max(gaps, key=lambda s: abs(gaps[s]), default=None)
    banded = portfolio.drift_band_abs is not None or portfolio.drift_band_rel is not None
    outside = banded and out_of_band(
        current, targets, portfolio.drift_band_abs, portfolio.drift_band_rel
    )
    return (float(round(gaps[symbol], 2)) if symbol else None), symbol, outside


def card(
    portfolio: Portfolio,
    snapshot: Snapshot | None,
    last: StoredHistory | None,
    awaiting: Run | None = None,
    rejected: frozenset[str] = frozenset(),
) -> PortfolioCard:
    """One overview card; `attention` orders them: failed, awaiting approval, outside its
    band, the rest."""
    largest, symbol, outside = drift(portfolio, snapshot)
    declined = last is not None and last.id in rejected  # a person's choice, not a failure
    failed = last is not None and not last.success and not declined
    return PortfolioCard(
        portfolio=PortfolioJson.model_validate(portfolio, from_attributes=True),
        snapshot=None if snapshot is None else snapshot_json(snapshot),
        last_run=None if last is None else HistoryRecord.model_validate(last, from_attributes=True),
        largest_drift=largest,
        largest_drift_symbol=symbol,
        outside_band=outside,
        awaiting_run=None if awaiting is None else run_json(awaiting),
        last_run_rejected=declined,
        attention=0 if failed else 1 if awaiting else 2 if outside else 3,
    )


def sorted_cards(cards: list[PortfolioCard]) -> list[PortfolioCard]:
    """Attention first, then the largest drift, then by name."""
    return sorted(cards, key=lambda c: (c.attention, -abs(c.largest_drift or 0), c.portfolio.name))


async def overview(request: web.Request) -> web.Response:
    store, scheduler = request.app[STORE], request.app[SCHEDULER]
    since = datetime.now(UTC) - DAY
    latest: Mapping[str, Snapshot] = await store.latest_snapshots()
    last = await store.last_runs()
    ok, failed = await store.runs_since(since)
    awaiting = await _awaiting(store, scheduler)
    declined = await store.list_runs("rejected", None, 500)
    rejected = frozenset(r.history_id for r in declined if r.history_id)
    recent = sum(1 for r in declined if r.finished_at and r.finished_at >= since)
    cards = [
        card(p, latest.get(p.id), last.get(p.id), awaiting.get(p.id), rejected)
        for p in await store.list_portfolios()
    ]
    total = sum((Decimal(latest[c.portfolio.id].value) for c in cards if c.snapshot), Decimal(0))
    body = Overview(
        access=request.get(ACCESS, "full"),
        status=scheduler_state(scheduler),
        daemons_seen=1 + await _others(store, since, scheduler.owner),
        runs24h=RunCounts(succeeded=ok, failed=max(0, failed - recent), rejected=recent),
        total_value=total,
        accounts=accounts_of(request.app[CURRENT]()),
        portfolios=sorted_cards(cards),
    )
    return conditional(request, dumps(body.body()))


async def _awaiting(store: Store, scheduler: Scheduler) -> dict[str, Run]:
    """portfolio id -> its run awaiting approval (at most one each: a portfolio runs one at a
    time). Lapsed approvals are expired first, so an expired plan is never offered."""
    await scheduler.expire_approvals()
    runs = await store.list_runs("awaiting_approval", None, 500)
    return {r.portfolio_id: r for r in reversed(runs)}  # the newest wins if ever two


async def _others(store: Store, since: datetime, me: str) -> int:
    """Other daemons that ran something since `since`, less those of this host now gone (a
    restart is a new owner id, not a second daemon)."""
    return sum(not owner_is_dead(o) for o in await store.daemons_since(since, me))


def conditional(request: web.Request, body: bytes) -> web.Response:
    """The reply with a strong ETag; 304 with no body when the client has it already."""
    tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    if tag in request.headers.get("If-None-Match", ""):
        response = web.Response(status=304)
    else:
        response = raw_reply(body)
    response.headers["ETag"] = tag
    response.headers["Cache-Control"] = "no-cache"  # store, but ask before each use
    return response
