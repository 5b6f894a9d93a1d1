"""GET /api/notifications: recent webhook deliveries, newest event first (for the dashboard).

A delivery names its receiver by `hook` (host#digest), never by URL: Slack and Discord webhook
URLs are credentials. No secret, payload or balance is listed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import Field

from rebalancerd.api.bodies import Body
from rebalancerd.api.http import STORE, query, reply
from rebalancerd.api.replies import Reply


class NotificationsQuery(Body):
    """GET /api/notifications."""

    limit: int = Field(default=50, ge=1, le=500)


class Delivery(Reply):
    """One event's delivery to one webhook."""

    event_id: str
    type: str
    hook: str
    status: Literal["pending", "delivered", "given_up"]
    attempts: int
    last_status: int | None  # the receiver's last HTTP status; null: no answer yet
    last_error: str | None
    created_at: datetime  # when the event happened
    updated_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None  # pending only
    portfolio_id: str | None
    run_id: int | None


class NotificationList(Reply):
    success: Literal[True] = True
    deliveries: list[Delivery]
    count: int


async def notification_list(request: web.Request) -> web.Response:
    q = query(request, NotificationsQuery)
    rows = await request.app[STORE].recent_deliveries(q.limit)
    deliveries = [
        Delivery(
            event_id=str(r.event_id),
            type=r.type,
            hook=r.hook,
            status=r.status,  # type: ignore[arg-type]  # the table's CHECK holds it to these
            attempts=r.attempts,
            last_status=r.last_status,
            last_error=r.last_error,
            created_at=r.created_at,
            updated_at=r.updated_at,
            delivered_at=r.delivered_at,
            next_attempt_at=r.next_attempt_at if r.status == "pending" else None,
            portfolio_id=r.portfolio_id,
            run_id=r.run_id,
        )
        for r in rows
    ]
    return reply(NotificationList(deliveries=deliveries, count=len(deliveries)))
