"""Target symbols checked against the account's EUR markets before a portfolio is stored."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from aiohttp import web

from rebalancerd.api.http import ApiError
from rebalancerd.exchange.protocol import Exchange, ExchangeError, PairRules

log = logging.getLogger(__name__)
CASH = "EUR"


class MarketCheck:
    """Refuses symbols the account has no EUR market for, from the market list its exchange
    serves (cached once known); when that list cannot be had within `timeout` seconds the
    portfolio is stored anyway with a warning, and its run reports any missing market."""

    def __init__(self, exchange_of: Callable[[str], Exchange | None], timeout: float = 3.0):
        self.exchange_of = exchange_of
        self.timeout = timeout
        # A read that outlasts the request goes on and fills the cache for the next one.
        self._reads: set[asyncio.Task[dict[str, PairRules]]] = set()

    async def warnings(self, account: str, symbols: Collection[str]) -> list[str]:
        """What could not be checked; ApiError(422) naming every symbol without a market."""
        bases = sorted(s for s in symbols if s != CASH)
        exchange = self.exchange_of(account)
        if not bases or exchange is None:  # no exchange here: require_account says so
            return []
        try:
            pairs = await self._read(exchange, bases)
        except (ExchangeError, TimeoutError) as exc:
            reason = str(exc) or f"no answer within {self.timeout:g} s"
            log.warning("[API] Market list of account %r unavailable: %s", account, reason)
            return [
                f"targetWeights: not checked against the {CASH} markets of account {account!r} "
                f"(market list unavailable: {reason}); a run reports any symbol without one"
            ]
        missing = [b for b in bases if b not in pairs]
        if missing:
            raise ApiError(
                422,
                f"targetWeights: no {CASH} market for {', '.join(missing)} on account {account!r}",
            )
        return []

    async def _read(self, exchange: Exchange, bases: list[str]) -> dict[str, PairRules]:
        read = asyncio.create_task(exchange.pair_rules(bases, CASH), name="api-market-check")
        self._reads.add(read)
        read.add_done_callback(self._settled)
        async with asyncio.timeout(self.timeout):
            return await asyncio.shield(read)

    def _settled(self, read: asyncio.Task[dict[str, PairRules]]) -> None:
        self._reads.discard(read)
        if not read.cancelled():
            read.exception()  # retrieved: a late failure is not "never retrieved"

    async def close(self) -> None:
        """Cancel reads still running (the app is shutting down)."""
        for read in list(self._reads):
            read.cancel()
        await asyncio.gather(*self._reads, return_exceptions=True)


MARKETS = web.AppKey("markets", MarketCheck)
