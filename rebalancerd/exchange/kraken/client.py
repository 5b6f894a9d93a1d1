"""KrakenClient: the Exchange Protocol on Kraken's spot REST API."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp

from rebalancerd.exchange.kraken import parse
from rebalancerd.exchange.kraken.meta import Cached, PairTable
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
from rebalancerd.exchange.names import AssetNames
from rebalancerd.exchange.protocol import (
    Balances,
    OrderRequest,
    OrderState,
    PairRules,
    Quote,
    RejectedError,
    RetryableError,
)

__all__ = ["DEFAULT_TAKER_FEE", "KrakenClient", "LookupPolicy", "RetryPolicy"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Used only while TradeVolume cannot be read. Kraken Pro's entry taker fee is 0.40 % (the
# legacy schedule said 0.26 %): guessing high sizes a buy slightly small, guessing low can
# make the last buy of a run fail for insufficient funds.
DEFAULT_TAKER_FEE = Decimal("0.0040")
FALLBACK_FEE_TTL = 60.0  # seconds before a failed fee look-up is tried again
QUERY_BATCH = 50  # QueryOrders takes at most 50 txids


class KrakenClient:
    """Kraken spot account behind the Exchange Protocol; one per API key (no key: public only)."""

    def __init__(
        self,
        api_url: str,
        api_key: str | None,
        api_secret: str | None,
        tier: str | TierLimits = "starter",
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        lookup: LookupPolicy = DEFAULT_LOOKUP,
        metadata_ttl: float = 300.0,
        fee_ttl: float = 3600.0,
        fallback_fee: Decimal = DEFAULT_TAKER_FEE,
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
        )
        self._retry = retry
        self._lookup = lookup
        self._clock = clock
        self._sleep = sleep
        self._fee_ttl = fee_ttl
        self._fallback_fee = fallback_fee
        self._names = Cached(self._fetch_names, metadata_ttl, clock)
        self._pairs = Cached(self._fetch_pairs, metadata_ttl, clock)
        # query_fill=False: place_order answers "pending" with the txid straight from AddOrder,
        # for callers that look many orders up in one QueryOrders (a round trip per order saved).
        self._placer = OrderPlacer(self._http, self, lookup, sleep, query_fill=query_fill)
        self._fees: dict[str, tuple[Decimal, float]] = {}
        self._fee_pairs: set[str] = set()

    def __repr__(self) -> str:
        return f"KrakenClient({self._http!r}, tier={self._limiter.tier.name!r})"

    async def _read(self, call: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(call, self._retry, self._sleep)

    async def _public(self, method: str, params: Mapping[str, str] | None = None) -> Any:
        return await self._read(lambda: self._http.public(method, params))

    async def _private(self, method: str, params: Mapping[str, str] | None = None) -> Any:
        return await self._read(lambda: self._http.private(method, params))

    async def _fetch_names(self) -> AssetNames:
        return AssetNames.from_assets(await self._public("Assets"))

    async def _fetch_pairs(self) -> PairTable:
        return PairTable(await self._public("AssetPairs"))

    async def pair_rules(self, bases: Sequence[str], quote: str) -> dict[str, PairRules]:
        """Rules of the BASE/QUOTE pairs that exist, keyed by plain base symbol."""
        names, table = await asyncio.gather(self._names.get(), self._pairs.get())
        wanted = set(bases)
        rules: dict[str, PairRules] = {}
        for key, row in table.rows.items():
            base, pair_quote = names.plain(str(row["base"])), names.plain(str(row["quote"]))
            if pair_quote == quote and base in wanted and base not in rules:
                rules[base] = parse.pair_rules(key, row, base, pair_quote)
        self._fee_pairs.update(rule.pair for rule in rules.values())
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
                row = result.get((await self._pairs.get()).key_of(pair) or pair)
            if row is None:
                raise RejectedError(f"Ticker: no quote for {pair}", "EQuery:Unknown asset pair")
            quotes[pair] = parse.quote(pair, row, observed_at)
        return quotes

    async def balances(self) -> Balances:
        """BalanceEx: available = balance - hold_trade; staked/suffixed assets are locked."""
        names, rows = await asyncio.gather(self._names.get(), self._private("BalanceEx"))
        return parse.balances(rows, names)

    async def fee_rate(self, pair: str) -> Decimal:
        """Taker fee via TradeVolume (one call for all pairs seen), cached; or the fallback fee."""
        key = (await self._pairs.get()).key_of(pair) or pair
        cached = self._fees.get(key)
        if cached is None or cached[1] <= self._clock():
            await self._fetch_fees(sorted(self._fee_pairs | {key}))
        return self._fees[key][0]

    async def _fetch_fees(self, pairs: list[str]) -> None:
        try:
            params = {"pair": ",".join(pairs), "fee-info": "true"}
            rates = parse.fee_rates(await self._private("TradeVolume", params))
        except (RetryableError, RejectedError) as exc:
            logger.warning("kraken fees unknown (%s)", exc.code or exc)
            rates = {}
        now = self._clock()
        for pair in pairs:
            rate = rates.get(pair)
            if rate is None:
                logger.warning("kraken fee of %s unknown; assuming %s", pair, self._fallback_fee)
            expiry = now + (self._fee_ttl if rate is not None else FALLBACK_FEE_TTL)
            self._fees[pair] = (rate if rate is not None else self._fallback_fee, expiry)

    async def place_order(self, request: OrderRequest) -> OrderState:
        """Market AddOrder with cl_ord_id, then its fill; ambiguity is looked up, never re-sent."""
        table = await self._pairs.get()
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
        table = await self._pairs.get()
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
        table = await self._pairs.get()
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

    async def close(self) -> None:
        """Close the HTTP session (if this client opened it)."""
        await self._http.close()
