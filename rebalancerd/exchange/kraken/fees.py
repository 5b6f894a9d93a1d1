"""An account's taker fees (TradeVolume): answered at once, fetched off a run's critical path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal

from rebalancerd.exchange.kraken.background import Background
from rebalancerd.exchange.kraken.ratelimit import Clock, Sleep

logger = logging.getLogger(__name__)

# Used until TradeVolume has answered for a pair. Kraken Pro's entry taker fee is 0.40 % (the
# legacy schedule said 0.26 %): guessing high sizes a buy slightly small, guessing low can
# make the last buy of a run fail for insufficient funds.
DEFAULT_TAKER_FEE = Decimal("0.0040")
FALLBACK_FEE_TTL = 60.0  # seconds before a failed or unanswered fee look-up is tried again
# TradeVolume is private, so it takes the key's turn: sent in a run's gap it would delay the
# run's next call by a round trip. A background refresh waits until the key has been quiet this
# long; a run's calls follow one another within milliseconds (fill polls within 2 s).
KEY_QUIET = 5.0

FetchRates = Callable[[list[str]], Awaitable[dict[str, Decimal]]]


class FeeRates:
    """Taker fee per pair key. `rate()` never waits on Kraken.

    It answers the known rate (also past its TTL) or, while none is known, the conservative
    default; what is missing or stale is fetched by one background TradeVolume for every pair
    seen, once the key has been quiet for `quiet` seconds. `warm()` fetches at once.
    """

    def __init__(
        self,
        fetch: FetchRates,
        key_quiet_for: Callable[[], float],
        background: Background,
        *,
        ttl: float,
        clock: Clock,
        sleep: Sleep,
        default: Decimal = DEFAULT_TAKER_FEE,
        quiet: float = KEY_QUIET,
    ) -> None:
        self._fetch = fetch
        self._key_quiet_for = key_quiet_for
        self._background = background
        self._ttl = ttl
        self._clock = clock
        self._sleep = sleep
        self._default = default
        self._quiet = quiet
        self._rates: dict[str, Decimal] = {}
        self._pairs: set[str] = set()
        self._fetched_at = float("-inf")
        self._retry_at = float("-inf")
        self._generation = 0
        self._lock = asyncio.Lock()

    def track(self, pairs: Iterable[str]) -> None:
        """Ask for these pairs' fees too, at the next TradeVolume."""
        self._pairs.update(pairs)

    def rate(self, key: str) -> Decimal:
        """The known rate of pair `key` (even stale) or the default; refreshes in the background."""
        self._pairs.add(key)
        known = self._rates.get(key)
        if (known is None or self._stale()) and self._clock() >= self._retry_at:
            self._background.start("TradeVolume", self._refresh_when_quiet)
        if known is None:
            logger.debug("kraken fee of %s not known yet; assuming %s", key, self._default)
            return self._default
        return known

    def _stale(self) -> bool:
        return self._clock() - self._fetched_at >= self._ttl

    async def warm(self) -> None:
        """Fetch now if a seen pair's fee is missing or past its TTL (refresh-ahead)."""
        if self._stale() or not self._pairs.issubset(self._rates):
            await self.refresh()

    async def _refresh_when_quiet(self) -> None:
        while (quiet := self._key_quiet_for()) < self._quiet:
            await self._sleep(self._quiet - quiet)
        await self.refresh()

    async def refresh(self) -> None:
        """One TradeVolume for every pair seen; callers arriving meanwhile share it."""
        generation = self._generation
        async with self._lock:
            wanted = sorted(self._pairs)
            if self._generation != generation or not wanted:
                return
            try:
                rates = await self._fetch(wanted)
            except Exception:
                self._retry_at = self._clock() + FALLBACK_FEE_TTL
                raise
            self._rates.update(rates)
            self._fetched_at = self._clock()
            self._generation += 1
            missing = [pair for pair in wanted if pair not in rates]
            if missing:
                self._retry_at = self._fetched_at + FALLBACK_FEE_TTL
                logger.warning(
                    "kraken fee of %s unknown; assuming %s", ", ".join(missing), self._default
                )
