"""The HTTP API (aiohttp): scheduler control, portfolios, history, health, metrics, OpenAPI.

Auth: with a token configured every /api/* route needs `Authorization: Bearer <token>`.
/healthz stays open for probes. /metrics stays open too, as Prometheus scrapers usually are:
it carries counters, timestamps and portfolio ids, never balances, orders or secrets; where
even that must stay private, keep the listener on loopback or filter /metrics in front.
Host names, origins and body types are checked first (api_guard).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from rebalancerd.api import (
    control,
    dashboard,
    events,
    history,
    notifications,
    portfolios,
    runs,
    web_site,
)
from rebalancerd.api.guard import RateLimitedLog, guards, held_back, server_logger, where
from rebalancerd.api.http import (
    CACHE,
    METRICS,
    SCHEDULER,
    SETTINGS,
    STORE,
    ApiError,
    ClientGone,
    ScheduleCache,
    describe,
    dumps,
    fail,
    raw_reply,
    reply,
    validation_status,
)
from rebalancerd.api.markets import MARKETS, MarketCheck
from rebalancerd.api.openapi import openapi_document
from rebalancerd.api.replies import Health
from rebalancerd.config import Settings
from rebalancerd.metrics import CONTENT_TYPE_LATEST, Metrics
from rebalancerd.runs.loop import Scheduler
from rebalancerd.store.database import DB_ERRORS as DB_DOWN
from rebalancerd.store.repository import Store

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    settings: Settings,
    store: Store,
    scheduler: Scheduler,
    metrics: Metrics,
    current: Callable[[], Settings] | None = None,
) -> web.Application:
    """The application, with error, host, origin, auth and content-type middlewares.

    `current`: the settings in force after a reload (the token); accounts come from `scheduler`.
    """
    live = current or (lambda: settings)
    app = web.Application(
        middlewares=[_errors(), *guards(settings.http, lambda: live().http)],
        client_max_size=settings.http.max_body_bytes,
    )
    app[STORE] = store
    app[SCHEDULER] = scheduler
    app[METRICS] = metrics
    app[SETTINGS] = settings
    app[CACHE] = ScheduleCache(store)
    app[MARKETS] = MarketCheck(scheduler.exchange)
    # Any change the scheduler hears of (other daemons' writes, finished runs) refreshes it.
    scheduler.wake_hooks.append(app[CACHE].invalidate)
    openapi = dumps(openapi_document())
    app.on_cleanup.append(lambda app: app[MARKETS].close())
    add = app.router.add_route
    add("GET", "/healthz", _health(store))
    add("GET", "/metrics", metrics_route)
    add("GET", "/api/openapi.json", _fixed(openapi))
    add("GET", "/api/scheduler", control.scheduler_status)
    add("POST", "/api/scheduler", control.scheduler_control)
    add("POST", "/api/scheduler/trigger", control.scheduler_trigger)
    add("GET", "/api/portfolios/manage", portfolios.list_portfolios)
    add("POST", "/api/portfolios/manage", portfolios.create_portfolio)
    add("PUT", "/api/portfolios/manage", portfolios.update_portfolio)
    add("DELETE", "/api/portfolios/manage", portfolios.delete_portfolio)
    add("GET", "/api/portfolios/plan", portfolios.plan_preview)
    add("GET", "/api/history", history.history_list)
    add("GET", "/api/history/stats", history.history_stats)
    add("GET", "/api/notifications", notifications.notification_list)
    # safety controls
    add("GET", "/api/runs", runs.list_runs)
    add("POST", "/api/runs/{id}/approve", runs.approve_run)
    add("POST", "/api/runs/{id}/reject", runs.reject_run)
    _add_dashboard(app, live, scheduler)
    return app


def _add_dashboard(
    app: web.Application, live: Callable[[], Settings], scheduler: Scheduler
) -> None:
    """The dashboard: its page and assets, its data routes and its change events."""
    app[dashboard.CURRENT] = live
    app[events.CHANGES] = events.Changes()
    scheduler.wake_hooks.append(app[events.CHANGES].bump)
    app.on_shutdown.append(events.close_streams)
    add = app.router.add_route
    add("GET", "/api/dashboard", dashboard.overview)
    add("GET", "/api/accounts", dashboard.accounts)
    add("GET", "/api/events", events.events)
    add("GET", "/api/portfolios/{id}/snapshots", dashboard.snapshots)
    web_site.add_routes(app, lambda: live().http.api_token is not None)


def _fixed(body: bytes) -> Handler:
    """A route that always answers the same JSON bytes."""

    async def handler(_request: web.Request) -> web.Response:
        return raw_reply(body)

    return handler


def make_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """The server around `app`: idle connections closed, malformed requests logged in a line."""
    return web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        # Also the deadline for a new connection's first request: aiohttp arms this timer when
        # the connection opens, so a socket that never sends anything is closed too.
        keepalive_timeout=settings.http.keepalive_timeout,
        logger=server_logger(),
    )


def _errors() -> Any:
    """Every failure as {"success": false, "error": ...} with its status; a 5xx only for ours."""
    hang_ups = RateLimitedLog()  # a client can hang up at will: its lines are rate-limited

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            response = fail(exc.status, exc.message)
            if exc.status == 408:
                response.force_close()  # a client this slow gets no second request here
            return response
        except ClientGone:
            # Nobody is left to answer; this is the client's doing, not the database's.
            held = hang_ups.admit()
            if held is not None:
                log.info(
                    "[API] %s: the client closed the connection mid-request%s",
                    where(request),
                    held_back(held),
                )
            return fail(400, "request body cut short")
        except ValidationError as exc:
            return fail(validation_status(exc), describe(exc))
        except web.HTTPRequestEntityTooLarge:
            limit = request.app[SETTINGS].http.max_body_bytes
            return fail(413, f"request body too large (limit {limit} bytes)")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return fail(exc.status, exc.reason, allow)
        except DB_DOWN as exc:
            log.error("[API] %s: database unavailable (%s)", where(request), exc)
            return fail(503, "database unavailable; try again shortly")
        except Exception:
            log.exception("[API] %s failed", where(request))
            return fail(500, "internal error")

    return errors


def _health(store: Store, ttl: float = 1.0) -> Handler:
    """/healthz; the database ping is shared for `ttl` seconds so probes stay cheap."""
    last = {"at": -ttl, "ok": False}

    async def healthz(_request: web.Request) -> web.Response:
        if time.monotonic() - last["at"] >= ttl:
            last["ok"] = await store.ping()
            last["at"] = time.monotonic()
        ok = bool(last["ok"])
        return reply(Health(status="ok" if ok else "degraded", database=ok), 200 if ok else 503)

    return healthz


async def metrics_route(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
