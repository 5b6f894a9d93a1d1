"""Notification bench: what an event costs the transaction that records it, and how fast the
sender delivers the outbox to a local receiver, alone and next to a receiver that hangs.

    .venv/bin/python bench/bench_notify.py [--events 2000]

Uses $DATABASE_URL (a scratch database is created on that server) or an embedded PostgreSQL.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry

from bench.support import percentile, scratch_database
from rebalancerd.config import NotifySettings, WebhookSettings
from rebalancerd.notify import events
from rebalancerd.notify.metrics import NotifyMetrics
from rebalancerd.notify.sender import Sender
from rebalancerd.store.repository import Store
from tests.notify_receiver import Receiver


async def insert_cost(store: Store, n: int) -> tuple[float, float]:
    """Median µs of a writing transaction, and of the same one recording one event too."""
    timings: dict[bool, list[float]] = {False: [], True: []}
    for i in range(n):
        with_event = i % 2 == 1
        batch = (
            [events.new_event("run.succeeded", datetime.now(UTC), {"i": i})] if with_event else []
        )
        started = time.perf_counter()
        async with store.transaction() as conn:
            # A write in both: the commit's WAL flush is the run's cost, not the event's.
            await conn.execute("UPDATE scheduler_state SET updated_at = now()")
            await store.add_events(conn, batch)
        timings[with_event].append((time.perf_counter() - started) * 1e6)
    return percentile(timings[False], 50), percentile(timings[True], 50)


async def deliver(store: Store, n: int, hang: bool) -> tuple[float, float, float]:
    """(events/s to the healthy hook, p50 and p99 ms from commit to arrival)."""
    await store.pool.execute("TRUNCATE notify_events CASCADE")
    async with Receiver(hang={"/stuck"}) as receiver:
        hooks = [WebhookSettings(url=receiver.url("/fast"))]
        if hang:
            hooks.append(WebhookSettings(url=receiver.url("/stuck")))
        settings = NotifySettings(webhook=tuple(hooks), max_in_flight=8, timeout_seconds=60)
        sender = Sender(store, settings, NotifyMetrics(CollectorRegistry()), "http://x/")
        stop = asyncio.Event()
        listening = asyncio.create_task(store.listen(sender.wake, stop))
        task = asyncio.create_task(sender.run())
        emitted: dict[str, float] = {}
        started = time.perf_counter()
        for _ in range(0, n, 50):
            batch = [events.new_event("run.succeeded", datetime.now(UTC), {}) for _i in range(50)]
            await store.emit(batch)
            emitted.update({str(e.id): time.perf_counter() for e in batch})
        while len(receiver.at("/fast")) < n:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        latencies = [(r.at - emitted[r.id]) * 1000 for r in receiver.at("/fast")]
        receiver.release.set()
        stop.set()
        sender.close(grace=1)
        await asyncio.gather(task, listening)
    return n / elapsed, percentile(latencies, 50), percentile(latencies, 99)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    async with scratch_database() as db:
        empty, with_event = await insert_cost(db.store, 2000)
        print(f"writing transaction: {empty:.0f} µs median; with one outbox event too: "
              f"{with_event:.0f} µs (+{with_event - empty:.0f} µs)")  # fmt: skip
        for hang in (False, True):
            rate, p50, p99 = await deliver(db.store, args.events, hang)
            label = "next to a hanging receiver" if hang else "alone"
            print(f"delivery to a local receiver, {label}: {rate:.0f} events/s, "
                  f"commit to arrival p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
