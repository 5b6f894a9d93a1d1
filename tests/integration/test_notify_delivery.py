"""The sender against a real receiver over HTTP and a real outbox in PostgreSQL: signatures,
retries with the same id, give-ups, redirects, slow receivers, two senders sharing one outbox."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from rebalancerd.config import NotifySettings, WebhookSettings
from rebalancerd.notify import events
from rebalancerd.notify.metrics import NotifyMetrics
from rebalancerd.notify.sender import Sender
from rebalancerd.store.embedded import connect_pool
from rebalancerd.store.outbox import NewEvent
from rebalancerd.store.repository import Store
from tests.notify_receiver import SECRET, Receiver, until

FAST = {"retry_initial_seconds": 0.02, "retry_max_seconds": 0.1, "timeout_seconds": 2.0}


def hook(url: str, **kw: Any) -> WebhookSettings:
    return WebhookSettings(url=url, secret=SecretStr(SECRET), **kw)


def every_event() -> list[NewEvent]:
    """One event of each type, built by the functions the daemon (and the integrator) call."""
    now = datetime.now(UTC)
    return [
        events.new_event("run.succeeded", now, {"portfolio": {"id": "p1", "name": "One"}}),
        events.new_event("run.failed", now, {"portfolio": {"id": "p1", "name": "One"}}),
        events.new_event("order.unknown", now, {"portfolio": {"id": "p1", "name": "One"}}),
        events.awaiting_approval(7, "p1", "One", [{"side": "buy", "symbol": "BTC"}], None, now),
        events.scheduler_changed("scheduler.started", "start", "host:1:a", now),
        events.scheduler_changed("scheduler.stopped", "stop", "host:1:a", now),
        events.scheduler_changed("scheduler.halted", "halt", "host:1:a", now, reason="jump"),
        events.daemon_event("daemon.started", "host:1:a", "0.1.0", now),
        events.daemon_event("daemon.stopping", "host:1:a", "0.1.0", now),
    ]


@asynccontextmanager
async def sending(
    store: Store, hooks: Sequence[WebhookSettings], **settings: Any
) -> AsyncIterator[Sender]:
    """A sender task on `store`, woken by NOTIFY as in the daemon; closed at the end."""
    config = NotifySettings(webhook=tuple(hooks), **{**FAST, **settings})
    sender = Sender(store, config, NotifyMetrics(CollectorRegistry()), "http://dash.example/")
    stop = asyncio.Event()
    listening = asyncio.create_task(store.listen(sender.wake, stop))
    task = asyncio.create_task(sender.run())
    try:
        yield sender
    finally:
        stop.set()
        sender.close(grace=0.5)
        await asyncio.wait_for(asyncio.gather(task, listening), 5)


async def statuses(store: Store) -> Counter[str]:
    rows = await store.pool.fetch("SELECT status FROM notify_deliveries")
    return Counter(r["status"] for r in rows)


async def test_every_event_type_is_delivered_signed_and_verifiable(store: Store) -> None:
    emitted = every_event()
    async with Receiver() as receiver, sending(store, [hook(receiver.url())]):
        await store.emit(emitted)
        await until(lambda: len(receiver.received) == len(emitted), 10, "every event")
    bodies = {r.id: r.verified() for r in receiver.received}  # raises on a bad signature
    assert set(bodies) == {str(e.id) for e in emitted}
    for event in emitted:
        body = bodies[str(event.id)]
        assert set(body) == {"type", "timestamp", "id", "data"}
        assert body["type"] == event.type and body["id"] == str(event.id)
        assert body["data"]["link"].startswith("http://dash.example/")
    assert {b["type"] for b in bodies.values()} == set(events.EVENT_TYPES)
    assert (await statuses(store)) == {"delivered": len(emitted)}


async def test_a_forged_or_altered_delivery_fails_verification(store: Store) -> None:
    async with Receiver() as receiver, sending(store, [hook(receiver.url())]):
        await store.emit(every_event()[:1])
        await until(lambda: len(receiver.received) == 1, 10, "the event")
    got = receiver.received[0]
    import pytest
    from standardwebhooks.webhooks import WebhookVerificationError

    tampered = got.body.replace(b'"p1"', b'"p2"')
    with pytest.raises(WebhookVerificationError):
        type(got)(got.path, got.headers, tampered).verified()
    with pytest.raises(WebhookVerificationError):
        got.verified("whsec_" + "A" * 32)  # another secret


async def test_500_three_times_then_200_delivers_once_with_the_same_id(store: Store) -> None:
    event = every_event()[1]
    receiver = Receiver(script={"/hook": [500, 500, 500]})
    async with receiver, sending(store, [hook(receiver.url())]):
        await store.emit([event])
        await until(lambda: len(receiver.received) == 4, 10, "four attempts")
        await until(lambda: _delivered(store), 5, "the delivery to be recorded")
    assert receiver.ids() == [str(event.id)] * 4
    for got in receiver.received:
        assert got.verified()["id"] == str(event.id)
    row = await store.pool.fetchrow("SELECT * FROM notify_deliveries")
    assert row["attempts"] == 4 and row["last_status"] == 200


async def _delivered(store: Store) -> bool:
    return (await statuses(store)).get("delivered", 0) == 1


async def test_4xx_is_not_retried_but_408_and_429_are(store: Store) -> None:
    script = {"/gone": [404], "/slow": [408], "/busy": [429, 429]}
    async with Receiver(script=script) as receiver:
        hooks = [hook(receiver.url(p)) for p in ("/gone", "/slow", "/busy")]
        async with sending(store, hooks):
            await store.emit(every_event()[:1])
            await until(lambda: len(receiver.received) == 1 + 2 + 3, 10, "the attempts")
            await until(lambda: _counted(store, {"given_up": 1, "delivered": 2}), 5, "their fates")
        await asyncio.sleep(0.3)  # a wrongly retried 404 would show up within this (0.02s retries)
    assert len(receiver.at("/gone")) == 1
    row = await store.pool.fetchrow("SELECT * FROM notify_deliveries WHERE status = 'given_up'")
    assert row["last_status"] == 404 and row["attempts"] == 1


async def _counted(store: Store, wanted: dict[str, int]) -> bool:
    return dict(await statuses(store)) == wanted


async def test_a_redirect_is_not_followed(store: Store) -> None:
    receiver = Receiver(script={"/moved": [302]})
    async with receiver, sending(store, [hook(receiver.url("/moved"))]):
        await store.emit(every_event()[:1])
        await until(lambda: _counted(store, {"given_up": 1}), 10, "the give-up")
    assert receiver.at("/redirected") == []
    error = await store.pool.fetchval("SELECT last_error FROM notify_deliveries")
    assert "redirect not followed" in error


async def test_gives_up_after_the_retry_window(store: Store) -> None:
    receiver = Receiver(script={"/hook": [503] * 1000})
    window = {"give_up_after_hours": 0.0003}  # ≈ 1 s of retries every ≤ 0.1 s
    async with receiver, sending(store, [hook(receiver.url())], **window) as sender:
        await store.emit(every_event()[:1])
        await until(lambda: _counted(store, {"given_up": 1}), 10, "the give-up")
        assert sender.metrics.given_up.labels(sender.hooks[0].key)._value.get() == 1
    assert len(receiver.received) >= 3
    assert len(set(receiver.ids())) == 1


async def test_a_hanging_receiver_does_not_hold_up_another(store: Store) -> None:
    emitted = every_event()
    async with Receiver(hang={"/stuck"}) as receiver:
        hooks = [hook(receiver.url("/stuck")), hook(receiver.url("/fine"))]
        async with sending(store, hooks, max_in_flight_per_hook=2, timeout_seconds=30):
            await store.emit(emitted)
            await until(lambda: len(receiver.at("/fine")) == len(emitted), 10, "/fine's events")
            assert receiver.hanging == 2  # the stuck one holds its bound in flight, no more
            receiver.release.set()
            await until(lambda: len(receiver.at("/stuck")) == len(emitted), 10, "/stuck's")


async def test_two_senders_share_the_outbox_and_deliver_each_event_once(
    store: Store, database_url: str
) -> None:
    other = Store(await connect_pool(database_url, timeout=10))
    emitted = [events.new_event("run.succeeded", datetime.now(UTC), {"n": i}) for i in range(40)]
    try:
        async with Receiver() as receiver:
            hooks = [hook(receiver.url())]
            async with sending(store, hooks), sending(other, hooks):
                for chunk in range(0, 40, 10):
                    await store.emit(emitted[chunk : chunk + 10])
                await until(lambda: len(receiver.received) >= 40, 10, "forty deliveries")
                await until(lambda: _counted(store, {"delivered": 40}), 5, "all recorded")
    finally:
        await other.close()
    assert Counter(receiver.ids()) == Counter(str(e.id) for e in emitted)  # each exactly once


async def test_an_attempt_whose_daemon_died_is_retried_after_its_lease(store: Store) -> None:
    """A claim that never came back (the daemon was killed) is due again once its lease ends,
    and goes out with the same id."""
    event = every_event()[0]
    await store.emit([event])
    receiver_hook = hook("http://127.0.0.1:9/hook")
    await store.dispatch_events({receiver_hook.hook: list(events.EVENT_TYPES)})
    (claim,) = await store.claim_deliveries(receiver_hook.hook, 5, lease_seconds=0.5)
    assert await store.claim_deliveries(receiver_hook.hook, 5, 0.5) == []  # leased
    await asyncio.sleep(0.6)  # the lease's length is what is under test
    (again,) = await store.claim_deliveries(receiver_hook.hook, 5, 0.5)
    assert again.event_id == claim.event_id == event.id and again.attempts == 2


async def test_delivered_and_given_up_rows_are_pruned_after_the_retention(store: Store) -> None:
    async with Receiver(script={"/bad": [400, 400]}) as receiver:
        hooks = [hook(receiver.url()), hook(receiver.url("/bad"))]
        async with sending(store, hooks):
            await store.emit(every_event()[:2])
            await until(lambda: _counted(store, {"delivered": 2, "given_up": 2}), 10, "fates")
    assert await store.prune_outbox(3600) == 0  # younger than the retention: kept
    await store.emit(every_event()[:1])  # undispatched: never pruned
    assert await store.prune_outbox(0) == 2
    assert await store.pool.fetchval("SELECT count(*) FROM notify_events") == 1
    assert await store.pool.fetchval("SELECT count(*) FROM notify_deliveries") == 0


async def test_metrics_count_deliveries_failures_and_pending(store: Store) -> None:
    async with Receiver(script={"/hook": [500]}, hang={"/stuck"}) as receiver:
        hooks = [hook(receiver.url()), hook(receiver.url("/stuck"))]
        async with sending(store, hooks) as sender:
            await store.emit(every_event()[:1])
            await until(lambda: _counted(store, {"delivered": 1, "pending": 1}), 10, "states")
            sender._stats_at = 0.0  # the gauges refresh on the next pass
            sender.wake()
            m = sender.metrics
            await until(lambda: m.pending._value.get() == 1, 5, "the pending gauge")
            assert m.oldest_pending._value.get() >= 0
            key = sender.hooks[0].key
            assert m.delivered.labels(key)._value.get() == 1
            assert m.failed.labels(key, "http_5xx")._value.get() == 1
            receiver.release.set()


async def test_a_reload_swaps_the_hooks(store: Store) -> None:
    async with Receiver() as receiver, sending(store, [hook(receiver.url("/old"))]) as sender:
        await store.emit(every_event()[:1])
        await until(lambda: len(receiver.at("/old")) == 1, 10, "the old hook's event")
        fresh = NotifySettings(webhook=(hook(receiver.url("/new"), format="slack"),), **FAST)
        sender.reconfigure(fresh, "https://dash.example/")
        await store.emit(every_event()[:1])
        await until(lambda: len(receiver.at("/new")) == 1, 10, "the new hook's event")
    assert len(receiver.at("/old")) == 1
    assert "https://dash.example/?portfolio=p1" in receiver.at("/new")[0].body.decode()


async def test_without_receivers_a_notify_costs_the_outbox_nothing(store: Store) -> None:
    """No hook: NOTIFYs (one per run) do not wake the sender; its regular pass marks the
    events (for pruning), so a run pays no outbox statement but its own INSERT."""

    async def undispatched() -> int:
        return int(
            await store.pool.fetchval("SELECT count(*) FROM notify_events WHERE NOT dispatched")
        )

    async def none_left() -> bool:
        return await undispatched() == 0

    await store.emit(every_event()[:1])
    async with sending(store, []):
        await until(none_left, 10, "the first pass")  # it has started: one pass
        await store.emit(every_event()[:2])  # with its NOTIFY
        for _ in range(25):  # a receiving sender would have marked them within milliseconds
            await asyncio.sleep(0.02)
            assert await undispatched() == 2
