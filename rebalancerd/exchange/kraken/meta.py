"""Cached Kraken metadata: a TTL cache and the AssetPairs table with its name lookups."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from rebalancerd.exchange.kraken.ratelimit import Clock

T = TypeVar("T")


class Cached(Generic[T]):
    """One value fetched on demand and kept for `ttl` seconds; concurrent callers share a fetch."""

    def __init__(self, fetch: Callable[[], Awaitable[T]], ttl: float, clock: Clock) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._value: T | None = None
        self._expires = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self) -> T:
        """The cached value, fetched again once expired."""
        if self._value is not None and self._clock() < self._expires:
            return self._value
        async with self._lock:
            if self._value is None or self._clock() >= self._expires:
                self._value = await self._fetch()
                self._expires = self._clock() + self._ttl
            return self._value


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
