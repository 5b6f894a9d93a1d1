"""History routes: the list of runs (GET /api/history) and its aggregates (/api/history/stats)."""

from __future__ import annotations

from decimal import Decimal

from aiohttp import web

from rebalancerd.api.bodies import HistoryFilter, HistoryQuery
from rebalancerd.api.http import STORE, query, reply
from rebalancerd.api.replies import HistoryList, HistoryRecord, HistoryStats, StatsReply

CENT = Decimal("0.01")


async def history_list(request: web.Request) -> web.Response:
    q = query(request, HistoryQuery)
    records = await request.app[STORE].list_history(
        q.portfolio_id, q.success, q.from_, q.to, q.limit, q.offset
    )
    history = [HistoryRecord.model_validate(r, from_attributes=True) for r in records]
    return reply(HistoryList(history=history, count=len(history), limit=q.limit, offset=q.offset))


async def history_stats(request: web.Request) -> web.Response:
    q = query(request, HistoryFilter)
    store = request.app[STORE]
    row = await store.history_stats(q.portfolio_id, q.success, q.from_, q.to)
    last = await store.last_successes()
    if q.portfolio_id is not None:
        last = {k: v for k, v in last.items() if k == q.portfolio_id}
    average = row["average_portfolio_value"]
    stats = HistoryStats(
        count=row["count"],
        total_value_traded=row["total_value_traded"],
        average_portfolio_value=None if average is None else average.quantize(CENT),
        successful=row["successful"],
        failed=row["failed"],
        last_success_by_portfolio=last,
    )
    return reply(StatsReply(stats=stats))
