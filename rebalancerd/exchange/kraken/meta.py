"""Cached Kraken metadata: a stale-while-revalidate cache and the AssetPairs table."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from rebalancerd.exchange.kraken.background import Background
from rebalancerd.exchange.kraken.ratelimit import Clock

T = TypeVar("T")

MAX_AGE = 24 * 3600.0  # past this a cached value is not served: it is fetched on the spot
RETRY_PAUSE = 60.0  # seconds between background refreshes after one failed


class Cached(Generic[T]):
    """One value fetched once, then served without a round trip while it is younger than `max_age`.

    Past `ttl` the value is still served, and one background refresh fetches a new one (stale-
    while-revalidate), so a known value never costs a round trip on a run's critical path. Only
    a missing value, or one older than `max_age`, is fetched while the caller waits. Callers
    that arrive while a fetch runs share it.
    """

    def __init__(
        self,
        name: str,
        fetch: Callable[[], Awaitable[T]],
        ttl: float,
        clock: Clock,
        background: Background,
        *,
        max_age: float = MAX_AGE,
    ) -> None:
        self._name = name
        self._fetch = fetch
        self._ttl = ttl
        self._max_age = max(max_age, ttl)
        self._clock = clock
        self._background = background
        self._value: T | None = None
        self._fetched_at = float("-inf")
        self._generation = 0  # fetches completed: a waiter sees whether one ended meanwhile
        self._retry_at = float("-inf")
        self._lock = asyncio.Lock()

    def age(self) -> float:
        """Seconds since the value was fetched (infinite if never)."""
        return self._clock() - self._fetched_at

    async def get(self) -> T:
        """The value: cached (refreshed in the background once past its TTL), else fetched now."""
        value = self._value
        if value is not None:
            age = self.age()
            if age < self._ttl:
                return value
            if age < self._max_age:
                if self._clock() >= self._retry_at:
                    self._background.start(self._name, self.refresh)
                return value
        return await self.refresh()

    async def warm(self) -> None:
        """Fetch now if the value is missing or past its TTL (refresh-ahead)."""
        if self._value is None or self.age() >= self._ttl:
            await self.refresh()

    async def refresh(self) -> T:
        """Fetch now; callers arriving while a fetch runs share its result."""
        generation = self._generation
        async with self._lock:
            if self._generation != generation and self._value is not None:
                return self._value
            try:
                value = await self._fetch()
            except Exception:
                self._retry_at = self._clock() + RETRY_PAUSE
                raise
            self._value, self._fetched_at = value, self._clock()
            self._generation += 1
            return value


class PairTable:
    """The AssetPairs result, findable by pair key, altname or wsname."""

    def __init__(self, rows: Mapping[str, Mapping[str, Any]]) -> None:
        # Dotted keys were dark-pool books (XXBTZEUR.d): never trade those.
        self.rows = {key: row for key, row in rows.items() if "." not in key}
        self._keys: dict[str, str] = {}
        for key, row in self.rows.items():
            for name in (row.get("wsname"), row.get("altname"), key):
                if name:
                    self._keys[str(name)] = key

    def key_of(self, name: str) -> str | None:
        """The pair key (XXBTZEUR) of a key, altname (XBTEUR) or wsname (XBT/EUR)."""
        return self._keys.get(name)

    def pair_of(self, order: Mapping[str, Any]) -> str:
        """The pair key of an order record, whose descr names the pair by altname."""
        name = str((order.get("descr") or {}).get("pair", ""))
        return self.key_of(name) or name
