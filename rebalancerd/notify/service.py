"""How the daemon wires notifications in: the sender, and daemon.started / daemon.stopping."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

from rebalancerd.config import Settings
from rebalancerd.metrics import Metrics
from rebalancerd.notify import events
from rebalancerd.notify.metrics import NotifyMetrics
from rebalancerd.notify.sender import Sender
from rebalancerd.store.database import DB_ERRORS
from rebalancerd.store.outbox import OutboxQueries

log = logging.getLogger(__name__)
ANNOUNCE_TIMEOUT = 3.0
STOP_GRACE = 3.0  # seconds a stopping daemon gives its last deliveries (daemon.stopping)


def dashboard_url(settings: Settings) -> str:
    """[notify] dashboard_url, else the HTTP listener's address."""
    if settings.notify.dashboard_url:
        return settings.notify.dashboard_url
    host = settings.http.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.http.port}/"


def build_sender(settings: Settings, store: OutboxQueries, metrics: Metrics) -> Sender:
    return Sender(store, settings.notify, NotifyMetrics(metrics.registry), dashboard_url(settings))


def package_version() -> str:
    try:
        return version("rebalancerd")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


async def announce(
    store: OutboxQueries, type_: Literal["daemon.started", "daemon.stopping"], owner: str
) -> None:
    """Record a daemon event; a database that is down only costs the event (logged)."""
    event = events.daemon_event(type_, owner, package_version(), datetime.now(UTC))
    try:
        async with asyncio.timeout(ANNOUNCE_TIMEOUT):  # a stop is not held up by a dead database
            await store.emit([event])
    except (*DB_ERRORS, TimeoutError) as exc:
        log.warning("[Notify] Could not record %s: %s", type_, type(exc).__name__)
