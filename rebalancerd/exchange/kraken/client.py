"""KrakenClient: the Exchange Protocol on Kraken's spot REST API, for one API key."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp

from rebalancerd.exchange.kraken import limits, parse
from rebalancerd.exchange.kraken.background import Background, describe
from rebalancerd.exchange.kraken.fees import DEFAULT_TAKER_FEE, KEY_QUIET, FeeRates
from rebalancerd.exchange.kraken.market import KrakenMarket
from rebalancerd.exchange.kraken.nonce import NonceSource
from rebalancerd.exchange.kraken.orders import OrderPlacer
from rebalancerd.exchange.kraken.ratelimit import Clock, RateLimiter, Sleep, TierLimits
from rebalancerd.exchange.kraken.retry import (
    DEFAULT_LOOKUP,
    DEFAULT_RETRY,
    LookupPolicy,
    RetryPolicy,
    with_retries,
)
from rebalancerd.exchange.kraken.transport import KrakenTransport
from rebalancerd.exchange.maker import LimitRequest
from rebalancerd.exchange.protocol import (
    Balances,
    OrderRequest,
    OrderState,
    PairRules,
    Quote,
    RejectedError,
)

__all__ = ["DEFAULT_TAKER_FEE", "KrakenClient", "KrakenMarket", "LookupPolicy", "RetryPolicy"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

QUERY_BATCH = 50  # QueryOrders takes at most 50 txids


class KrakenClient:
    """Kraken spot account behind the Exchange Protocol; one per API key (no key: public only).

    Public data comes from `market`, shared by a daemon's clients; without one the client makes
    (and closes) its own. Metadata and fees never cost a round trip once known: they are served
    from cache and refreshed in the background, or ahead of a run by `warm()`.
    """

    def __init__(
        self,
        api_url: str,
        api_key: str | None,
        api_secret: str | None,
        tier: str | TierLimits = "starter",
        *,
        market: KrakenMarket | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        lookup: LookupPolicy = DEFAULT_LOOKUP,
        metadata_ttl: float = 300.0,
        fee_ttl: float = 3600.0,
        fallback_fee: Decimal = DEFAULT_TAKER_FEE,
        fee_quiet: float = KEY_QUIET,
        query_fill: bool = True,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        nonces: NonceSource | None = None,
        on_nonce_refused: Callable[[str], None] | None = None,
    ) -> None:
        self._limiter = RateLimiter(tier, clock=clock, sleep=sleep)
        self._http = KrakenTransport(
            api_url,
            api_key or "",
            api_secret or "",
            self._limiter,
            session=session,
            timeout=timeout,
            connect_timeout=connect_timeout,
            nonces=nonces,
            on_nonce_refused=on_nonce_refused,
            clock=clock,
        )
        self._owns_market = market is None
        self._market = market or KrakenMarket(
            api_url,
            session=session,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retry=retry,
            ttl=metadata_ttl,
            clock=clock,
            sleep=sleep,
        )
        self._retry = retry
        self._sleep = sleep
        self._background = Background("client")
        self._fees = FeeRates(
            self._fetch_fees,
            self._http.quiet_for,
            self._background,
            ttl=fee_ttl,
            clock=clock,
            sleep=sleep,
            default=fallback_fee,
            quiet=fee_quiet,
        )
        # query_fill=False: place_order answers "pending" with the txid straight from AddOrder,
        # for callers that look many orders up in one QueryOrders (a round trip per order saved).
        self._placer = OrderPlacer(self._http, self, lookup, sleep, query_fill=query_fill)

    def __repr__(self) -> str:
        return f"KrakenClient({self._http!r}, tier={self._limiter.tier.name!r})"

    @property
    def market(self) -> KrakenMarket:
        """Where this client's public data comes from."""
        return self._market

    async def _read(self, call: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(call, self._retry, self._sleep)

    async def _private(self, method: str, params: Mapping[str, str] | None = None) -> Any:
        return await self._read(lambda: self._http.private(method, params))

    async def pair_rules(self, bases: Sequence[str], quote: str) -> dict[str, PairRules]:
        """Rules of the BASE/QUOTE pairs that exist, keyed by plain base symbol."""
        rules = await self._market.pair_rules(bases, quote)
        self._fees.track(rule.pair for rule in rules.values())
        return rules

    async def tickers(self, pairs: Sequence[str]) -> dict[str, Quote]:
        """Quotes for all `pairs` from ONE Ticker call, keyed as asked."""
        return await self._market.tickers(pairs)

    async def balances(self) -> Balances:
        """BalanceEx: available = balance - hold_trade; staked/suffixed assets are locked."""
        names, rows = await asyncio.gather(self._market.names(), self._private("BalanceEx"))
        return parse.balances(rows, names)

    async def fee_rate(self, pair: str) -> Decimal:
        """Taker fee of `pair` without a round trip: the known tier, else DEFAULT_TAKER_FEE.

        TradeVolume (one call for all pairs seen) runs in the background once the key is quiet,
        so it never queues ahead of a run's next private call.
        """
        key = (await self._market.pairs()).key_of(pair) or pair
        return self._fees.rate(key)

    async def _fetch_fees(self, pairs: list[str]) -> dict[str, Decimal]:
        params = {"pair": ",".join(pairs), "fee-info": "true"}
        return parse.fee_rates(await self._private("TradeVolume", params))

    async def warm(self) -> None:
        """Fetch what a run needs and is missing or past its TTL: metadata, then fees.

        For the scheduler, a few seconds before this account's next due slot, so that run finds
        everything cached. Never raises: a failure is logged and the run does without.
        """
        await self._market.warm()
        try:
            await self._fees.warm()
        except Exception as exc:  # logged, never raised: the run assumes the default fee
            logger.warning("kraken fee warm-up failed: %s", describe(exc))

    async def wait_refreshes(self) -> None:
        """Until the background refreshes running now are done (tests and benchmarks)."""
        await asyncio.gather(self._background.wait(), self._market.wait_refreshes())

    async def place_order(self, request: OrderRequest) -> OrderState:
        """Market AddOrder with cl_ord_id, then its fill; ambiguity is looked up, never re-sent."""
        table = await self._market.pairs()
        key = table.key_of(request.pair)
        if key is None:
            raise RejectedError(f"unknown pair {request.pair}", "EQuery:Unknown asset pair")
        volume = parse.format_volume(request.volume, int(table.rows[key]["lot_decimals"]))
        if volume is None or request.volume <= 0:
            message = f"volume {request.volume} is not a positive multiple of {key}'s lot size"
            raise RejectedError(message, "EGeneral:Invalid arguments:volume")
        params = {
            "ordertype": "market",
            "type": request.side,
            "volume": volume,
            "pair": key,
            "cl_ord_id": request.client_order_id,
            "oflags": "fciq",  # fee in EUR, so cost and fee are both quote amounts
        }
        if request.validate:
            params["validate"] = "true"
        return await self._placer.place(request, params, key)

    async def find_order(self, client_order_id: str) -> OrderState | None:
        """OpenOrders, then ClosedOrders, filtered by cl_ord_id; None if neither has it."""
        table = await self._market.pairs()
        for method, field in (("OpenOrders", "open"), ("ClosedOrders", "closed")):
            result = await self._private(method, {"cl_ord_id": client_order_id})
            rows = result.get(field) or {}
            # Filter here too: an order of someone else's id must never pass for ours.
            mine = {t: r for t, r in rows.items() if r.get("cl_ord_id") == client_order_id}
            found = parse.newest(mine)
            if found is not None:
                return parse.order_state(found[0], found[1], table.pair_of(found[1]))
        return None

    async def query_orders(self, txids: Sequence[str]) -> dict[str, OrderState]:
        """Orders by txid (QueryOrders, 50 per call)."""
        table = await self._market.pairs()
        states: dict[str, OrderState] = {}
        for start in range(0, len(txids), QUERY_BATCH):
            chunk = ",".join(txids[start : start + QUERY_BATCH])
            result = await self._private("QueryOrders", {"txid": chunk})
            for txid, row in result.items():
                states[txid] = parse.order_state(txid, row, table.pair_of(row))
        return states

    async def cancel_order(self, client_order_id: str) -> None:
        """CancelOrder by cl_ord_id; EOrder:Unknown order (already gone) raises RejectedError."""
        await self._read(lambda: self._http.private("CancelOrder", {"cl_ord_id": client_order_id}))

    # ===== maker execution (issue 16) =====

    async def place_limit(self, request: LimitRequest) -> OrderState:
        """Limit AddOrder (post-only or IOC) with cl_ord_id; ambiguity looked up, never re-sent."""
        key, params = limits.limit_params(await self._market.pairs(), request)
        return await self._placer.place(limits.as_order_request(request), params, key)

    async def amend_price(
        self, client_order_id: str, pair: str, price: Decimal, age: float
    ) -> None:
        """AmendOrder to a new post-only price; `age` (seconds on book) prices the counter."""
        await limits.amend(
            self._http, await self._market.pairs(), client_order_id, pair, price, age
        )

    def trading_room(self, pair: str) -> float:
        """Points left on `pair`'s trading counter (our model of Kraken's) right now."""
        return self._limiter.trading_room(pair)

    async def close(self) -> None:
        """Stop background refreshes; close the market and session if this client opened them."""
        await self._background.close()
        if self._owns_market:
            await self._market.close()
        await self._http.close()
