"""The status route's schedule cache, against a store whose reads we hold and count."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable, Mapping
from typing import Any, cast

import orjson

from rebalancerd.api.http import ScheduleCache
from rebalancerd.store.repository import Store


class SlowStore:
    """schedule() returns the current rows once `release` is set; counts its calls."""

    def __init__(self) -> None:
        self.rows: list[Mapping[str, Any]] = []
        self.calls = 0
        self.release = asyncio.Event()
        self.release.set()

    async def schedule(self) -> list[Mapping[str, Any]]:
        self.calls += 1
        rows = list(self.rows)
        await self.release.wait()
        return rows


def _row(pid: str) -> dict[str, Any]:
    return {
        "id": pid,
        "name": pid,
        "rebalance_interval": "daily",
        "last_rebalanced_at": None,
        "next_rebalance_at": None,
    }


async def _until(condition: Callable[[], bool], what: str = "the read to start") -> None:
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never saw {what}")


def _cache(store: SlowStore, ttl: float = 60.0) -> ScheduleCache:
    return ScheduleCache(cast(Store, store), ttl)


def _ids(body: bytes) -> list[str]:
    return [item["id"] for item in orjson.loads(body)]


async def test_fresh_reads_come_from_the_cache() -> None:
    store = SlowStore()
    cache = _cache(store)
    store.rows = [_row("a")]
    assert _ids(await cache.get()) == ["a"]
    store.rows = [_row("b")]
    assert _ids(await cache.get()) == ["a"]
    assert store.calls == 1
    cache.invalidate()
    assert _ids(await cache.get()) == ["b"]


async def test_concurrent_misses_share_one_read() -> None:
    store = SlowStore()
    store.release.clear()
    cache = _cache(store)
    waiting = [asyncio.create_task(cache.get()) for _ in range(20)]
    await asyncio.sleep(0)
    store.release.set()
    assert len(set(await asyncio.gather(*waiting))) == 1
    assert store.calls == 1


async def test_a_write_during_a_read_is_not_hidden() -> None:
    store = SlowStore()
    store.release.clear()
    cache = _cache(store)
    before = asyncio.create_task(cache.get())  # reads the old rows, then blocks
    await _until(lambda: store.calls == 1)
    store.rows = [_row("new")]
    cache.invalidate()  # the write committed while that read was in flight
    after = asyncio.create_task(cache.get())
    await _until(lambda: store.calls == 2, "a fresh read after the write")
    store.release.set()
    assert _ids(await before) == []
    assert _ids(await after) == ["new"]
    assert _ids(await cache.get()) == ["new"]  # and the stale read was not kept
    assert store.calls == 2


async def test_the_ttl_expires() -> None:
    store = SlowStore()
    cache = _cache(store, ttl=0.05)
    await cache.get()
    store.rows = [_row("later")]
    await asyncio.sleep(0.06)
    assert _ids(await cache.get()) == ["later"]


async def test_the_reply_is_built_and_gzipped_once_per_change() -> None:
    store = SlowStore()
    store.rows = [_row("a")]
    cache = _cache(store)
    plain = await cache.status_reply(b'{"isRunning":true}', gzipped=False)
    assert orjson.loads(plain) == {
        "success": True,
        "status": {"isRunning": True},
        "schedule": orjson.loads(await cache.get()),
    }
    zipped = await cache.status_reply(b'{"isRunning":true}', gzipped=True)
    assert gzip.decompress(zipped) == plain
    assert await cache.status_reply(b'{"isRunning":true}', gzipped=True) is zipped
    other = await cache.status_reply(b'{"isRunning":false}', gzipped=True)
    assert orjson.loads(gzip.decompress(other))["status"] == {"isRunning": False}
