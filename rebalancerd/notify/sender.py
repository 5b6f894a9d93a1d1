"""The sender task: fan new outbox events out to the hooks, claim due deliveries (SKIP LOCKED,
so several daemons share one outbox), deliver each at least once with the event's id, retry with
backoff and jitter, give up after the window, prune old rows, keep the metrics.

A run never waits for any of this: it only commits its event. Each hook has its own bound on
attempts in flight, inside a bound for all, so a slow or dead receiver delays no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from rebalancerd.aio import wait_first
from rebalancerd.config import NotifySettings
from rebalancerd.notify import policy
from rebalancerd.notify.deliver import Answer, Hook, attempt
from rebalancerd.notify.formats import Message
from rebalancerd.notify.metrics import NotifyMetrics
from rebalancerd.store.database import DB_ERRORS
from rebalancerd.store.outbox import Claimed, OutboxQueries

log = logging.getLogger(__name__)
MAX_IDLE = 30.0  # look at the outbox at least this often, NOTIFY or not
STATS_EVERY = 5.0
PRUNE_EVERY = 600.0
LEASE_MARGIN = 5.0  # an attempt's lease outlives its timeout by this much


class Sender:
    """Delivers the outbox; one per daemon, run as a supervised task."""

    def __init__(
        self,
        store: OutboxQueries,
        settings: NotifySettings,
        metrics: NotifyMetrics,
        dashboard_url: str,
        *,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.dashboard_url = dashboard_url.rstrip("/") + "/"
        self.hooks = [Hook.from_settings(w) for w in settings.webhook]
        self.rand = rand
        self.clock = clock
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._flying: dict[asyncio.Task[None], tuple[Hook, Claimed]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._stats_at = self._pruned_at = 0.0
        self._grace = 0.0

    def wake(self) -> None:
        """Something may be due (a NOTIFY, an attempt ended): look again now. Without a
        receiver nothing is: the regular pass (MAX_IDLE) marks the events for pruning, and a
        daemon's every run does not cost the outbox a statement."""
        if self.hooks:
            self._wake.set()

    def reconfigure(self, settings: NotifySettings, dashboard_url: str) -> None:
        """A reload: new hooks and limits from the next pass (attempts in flight finish)."""
        self.settings = settings
        self.dashboard_url = dashboard_url.rstrip("/") + "/"
        self.hooks = [Hook.from_settings(w) for w in settings.webhook]
        self._wake.set()

    async def run(self) -> None:
        """Deliver until close(): not at shutdown, so the last runs' and daemon.stopping's
        events still go out (the daemon calls close() once they are recorded)."""
        connector = aiohttp.TCPConnector(limit=self.settings.max_in_flight)
        async with aiohttp.ClientSession(connector=connector) as session:
            self._session = session
            try:
                await self._loop()
            finally:
                await self._abandon()

    def close(self, grace: float) -> None:
        """Stop: one last pass, up to `grace` seconds for attempts in flight, then run() ends."""
        self._grace = grace
        self._closing.set()

    async def _loop(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            closing = self._closing.is_set()
            try:
                delay = await self.pass_once()
                failures = 0
            except DB_ERRORS as exc:
                failures += 1
                delay = min(2.0 * failures, MAX_IDLE)
                log.warning("[Notify] Outbox unavailable (%s); retrying", type(exc).__name__)
            if closing:
                if self._flying:  # all of them, within the grace
                    await asyncio.wait(list(self._flying), timeout=self._grace)
                return
            await wait_first(self._wake, self._closing, timeout=delay)

    async def pass_once(self) -> float:
        """Fan out, claim and start what is due; seconds until something else is due."""
        if self.hooks:
            await self.store.dispatch_events({h.key: h.events for h in self.hooks})
        else:
            await self.store.dispatch_events({})  # nothing to send; let the rows be pruned
        free_hooks = []
        for hook in self.hooks:
            if await self._claim(hook):
                free_hooks.append(hook.key)
        await self._housekeeping()
        due = await self.store.next_delivery_due(free_hooks) if free_hooks else None
        if due is None:
            return MAX_IDLE
        return min(max((due - self.clock()).total_seconds(), 0.01), MAX_IDLE)

    async def _claim(self, hook: Hook) -> bool:
        """Start attempts for `hook` up to its bounds; False when it has no room left."""
        mine = sum(1 for h, _ in self._flying.values() if h.key == hook.key)
        room = min(
            self.settings.max_in_flight_per_hook - mine,
            self.settings.max_in_flight - len(self._flying),
        )
        if room <= 0:
            return False
        lease = self.settings.timeout_seconds + LEASE_MARGIN
        claims = await self.store.claim_deliveries(hook.key, room, lease)
        for claim in claims:
            task = asyncio.create_task(self._deliver(hook, claim), name=f"webhook-{hook.key}")
            self._flying[task] = (hook, claim)
            task.add_done_callback(self._landed)
        return len(claims) < room

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._flying.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("[Notify] Delivery task failed: %r", task.exception())
        self.wake()

    async def _deliver(self, hook: Hook, claim: Claimed) -> None:
        assert self._session is not None
        message = Message(str(claim.event_id), claim.type, claim.created_at, self._data(claim))
        answer = await attempt(self._session, hook, message, self.settings.timeout_seconds)
        try:
            await self._record(hook, claim, answer)
        except DB_ERRORS as exc:  # the lease runs out and the attempt is made again (same id)
            log.warning("[Notify] Could not record a delivery to %s: %s", hook.key, exc)

    def _data(self, claim: Claimed) -> dict[str, Any]:
        """The event's data with the dashboard link (added at sending: the URL is config)."""
        link = self.dashboard_url
        portfolio = claim.data.get("portfolio")
        if isinstance(portfolio, dict) and portfolio.get("id"):
            link += "?portfolio=" + quote(str(portfolio["id"]), safe="")
        return {**claim.data, "link": link}

    async def _record(self, hook: Hook, claim: Claimed, answer: Answer) -> None:
        verdict = policy.verdict(answer.status)
        if verdict == "delivered":
            assert answer.status is not None
            await self.store.delivery_succeeded(claim, answer.status)
            self.metrics.delivered.labels(hook.key).inc()
            return
        s = self.settings
        delay = policy.retry_delay(
            claim.attempts,
            s.retry_initial_seconds,
            s.retry_max_seconds,
            self.rand(),
            answer.retry_after,
        )
        give_up = verdict == "give_up" or policy.gives_up(
            claim.created_at, self.clock(), delay, s.give_up_after_hours
        )
        error = answer.error or "failed"
        await self.store.delivery_failed(
            claim, answer.status, error, retry_in=delay, give_up=give_up
        )
        self.metrics.failed.labels(hook.key, _reason(answer)).inc()
        if give_up:
            self.metrics.given_up.labels(hook.key).inc()
            log.error(
                "[Notify] Gave up %s %s to %s: %s", claim.type, claim.event_id, hook.key, error
            )
        else:
            log.warning(
                "[Notify] %s %s to %s failed (attempt %d: %s); retrying in %.1fs",
                claim.type,
                claim.event_id,
                hook.key,
                claim.attempts,
                error,
                delay,
            )

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._stats_at >= STATS_EVERY:
            self._stats_at = now
            stats = await self.store.outbox_stats()
            self.metrics.pending.set(stats.pending)
            self.metrics.oldest_pending.set(stats.oldest_pending_seconds)
        if now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            pruned = await self.store.prune_outbox(self.settings.retention_days * 86400)
            if pruned:
                log.info("[Notify] Pruned %d finished notification(s)", pruned)

    async def _abandon(self) -> None:
        """Cancel attempts still in flight and hand their claims back (due again at once)."""
        flying = dict(self._flying)
        for task in flying:
            task.cancel()
        await asyncio.gather(*flying, return_exceptions=True)
        for task, (_hook, claim) in flying.items():
            if task.cancelled():
                with contextlib.suppress(*DB_ERRORS):  # else the lease runs out instead
                    await self.store.release_delivery(claim)


def _reason(answer: Answer) -> str:
    if answer.status is None:
        return "timeout" if answer.error and answer.error.startswith("no answer") else "connection"
    return f"http_{answer.status // 100}xx"
