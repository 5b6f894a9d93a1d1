"""KrakenMarket: Kraken's public data (asset names, pairs, tickers), one cache per daemon."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

from rebalancerd.exchange.kraken import parse
from rebalancerd.exchange.kraken.background import Background, describe
from rebalancerd.exchange.kraken.meta import MAX_AGE, Cached, PairTable
from rebalancerd.exchange.kraken.ratelimit import Clock, RateLimiter, Sleep
from rebalancerd.exchange.kraken.retry import DEFAULT_RETRY, RetryPolicy, with_retries
from rebalancerd.exchange.kraken.transport import KrakenTransport
from rebalancerd.exchange.names import AssetNames
from rebalancerd.exchange.protocol import PairRules, Quote, RejectedError

logger = logging.getLogger(__name__)


class KrakenMarket:
    """Public calls for every account of a daemon: Assets and AssetPairs are the same for all
    keys, so they are fetched and parsed once and shared; tickers go through the same session.

    Also the price source of paper accounts priced at Kraken (it has `pair_rules` and `tickers`).
    """

    def __init__(
        self,
        api_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        ttl: float = 300.0,
        max_age: float = MAX_AGE,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        # Public calls count against the IP, not a key: the limiter is never asked.
        self._http = KrakenTransport(
            api_url,
            "",
            "",
            RateLimiter("starter", clock=clock, sleep=sleep),
            session=session,
            timeout=timeout,
            connect_timeout=connect_timeout,
            clock=clock,
        )
        self._retry = retry
        self._sleep = sleep
        self._background = Background("market")
        self._names = Cached(
            "Assets", self._fetch_names, ttl, clock, self._background, max_age=max_age
        )
        self._pairs = Cached(
            "AssetPairs", self._fetch_pairs, ttl, clock, self._background, max_age=max_age
        )

    def __repr__(self) -> str:
        return f"KrakenMarket({self._http!r})"

    async def _public(self, method: str, params: Mapping[str, str] | None = None) -> Any:
        return await with_retries(
            lambda: self._http.public(method, params), self._retry, self._sleep
        )

    async def _fetch_names(self) -> AssetNames:
        return AssetNames.from_assets(await self._public("Assets"))

    async def _fetch_pairs(self) -> PairTable:
        return PairTable(await self._public("AssetPairs"))

    async def names(self) -> AssetNames:
        """Kraken asset ids and plain symbols (cached)."""
        return await self._names.get()

    async def pairs(self) -> PairTable:
        """The AssetPairs table (cached)."""
        return await self._pairs.get()

    async def pair_rules(self, bases: Sequence[str], quote: str) -> dict[str, PairRules]:
        """Rules of the BASE/QUOTE pairs that exist, keyed by plain base symbol."""
        names, table = await asyncio.gather(self.names(), self.pairs())
        wanted = set(bases)
        rules: dict[str, PairRules] = {}
        for key, row in table.rows.items():
            base, pair_quote = names.plain(str(row["base"])), names.plain(str(row["quote"]))
            if pair_quote == quote and base in wanted and base not in rules:
                rules[base] = parse.pair_rules(key, row, base, pair_quote)
        return rules

    async def tickers(self, pairs: Sequence[str]) -> dict[str, Quote]:
        """Quotes for all `pairs` from ONE Ticker call, keyed as asked."""
        if not pairs:
            return {}
        result = await self._public("Ticker", {"pair": ",".join(pairs)})
        observed_at = datetime.now(UTC)
        quotes: dict[str, Quote] = {}
        for pair in pairs:
            row = result.get(pair)
            if row is None:  # asked by altname; Kraken answers by pair key
                row = result.get((await self.pairs()).key_of(pair) or pair)
            if row is None:
                raise RejectedError(f"Ticker: no quote for {pair}", "EQuery:Unknown asset pair")
            quotes[pair] = parse.quote(pair, row, observed_at)
        return quotes

    async def warm(self) -> None:
        """Fetch Assets and AssetPairs now if missing or past their TTL (refresh-ahead).

        Never raises: a failure is logged, and a run then uses the cached value or fetches.
        """
        results = await asyncio.gather(
            self._names.warm(), self._pairs.warm(), return_exceptions=True
        )
        for error in results:
            if isinstance(error, Exception):
                logger.warning("kraken metadata warm-up failed: %s", describe(error))

    async def wait_refreshes(self) -> None:
        """Until the background refreshes running now are done (tests and benchmarks)."""
        await self._background.wait()

    async def close(self) -> None:
        """Stop background refreshes; close the session if this market opened it. Idempotent."""
        await self._background.close()
        await self._http.close()
