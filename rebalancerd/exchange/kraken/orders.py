"""AddOrder without ever sending an order twice: ambiguous replies are looked up by cl_ord_id."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from rebalancerd.exchange.kraken.errors import (
    KrakenFailure,
    NoReply,
    Outcome,
    outcome_of_failure,
    to_error,
)
from rebalancerd.exchange.kraken.ratelimit import Sleep
from rebalancerd.exchange.kraken.retry import LookupPolicy
from rebalancerd.exchange.kraken.transport import KrakenTransport
from rebalancerd.exchange.protocol import (
    AmbiguousOrderError,
    ExchangeError,
    FatalError,
    OrderRequest,
    OrderState,
    RetryableError,
)

logger = logging.getLogger(__name__)


class OrderFinder(Protocol):
    """The look-ups an ambiguous order needs (KrakenClient has them)."""

    async def find_order(self, client_order_id: str) -> OrderState | None: ...

    async def query_orders(self, txids: Sequence[str]) -> dict[str, OrderState]: ...


class OrderPlacer:
    """Sends one AddOrder and works out what became of it, without ever re-sending blindly."""

    def __init__(
        self,
        http: KrakenTransport,
        finder: OrderFinder,
        lookup: LookupPolicy,
        sleep: Sleep,
        *,
        query_fill: bool = True,
    ) -> None:
        self._query_fill = query_fill
        self._http = http
        self._finder = finder
        self._lookup = lookup
        self._sleep = sleep

    async def place(
        self, request: OrderRequest, params: dict[str, str], key: str, *, resent: bool = False
    ) -> OrderState:
        """Send AddOrder once; return the placed order's state, or find out what happened."""
        try:
            result = await self._http.private("AddOrder", params, pair=key)
        except KrakenFailure as failure:
            outcome = outcome_of_failure(failure, placing=True)
            if outcome is Outcome.AMBIGUOUS:
                return await self._resolve(request, failure)
            if outcome is Outcome.RESIGN and not resent:
                return await self._resend(request, params, key, failure)
            raise to_error(failure, placing=True) from None
        if request.validate:
            # Checked, not placed: no txid, nothing filled, nothing on the book.
            return OrderState(
                request.client_order_id,
                None,
                request.pair,
                request.side,
                "canceled",
                request.volume,
            )
        txids = result.get("txid") or []
        if not txids:
            return await self._resolve(request, NoReply("AddOrder", "reply has no txid", sent=True))
        if not self._query_fill:
            return OrderState(
                request.client_order_id,
                str(txids[0]),
                request.pair,
                request.side,
                "pending",
                request.volume,
            )
        return await self._fill_of(request, str(txids[0]))

    async def _resend(
        self, request: OrderRequest, params: dict[str, str], key: str, failure: KrakenFailure
    ) -> OrderState:
        """After EAPI:Invalid nonce (refused before processing): check, then send once more."""
        try:
            found = await self._finder.find_order(request.client_order_id)
        except ExchangeError as exc:
            raise RetryableError(
                f"{failure}; look-up failed: {exc}", "EAPI:Invalid nonce"
            ) from None
        if found is not None:
            return replace(found, pair=request.pair)
        logger.warning("kraken AddOrder %s: invalid nonce, sending again", request.client_order_id)
        return await self.place(request, params, key, resent=True)

    async def _fill_of(self, request: OrderRequest, txid: str) -> OrderState:
        """The placed order's state from one QueryOrders (AddOrder's reply has no fill)."""
        try:
            state = (await self._finder.query_orders([txid])).get(txid)
        except ExchangeError as exc:
            logger.warning("kraken order %s placed, state unknown yet: %s", txid, exc)
            state = None
        if state is None:
            return OrderState(
                request.client_order_id, txid, request.pair, request.side, "pending", request.volume
            )
        return replace(state, pair=request.pair)

    async def _resolve(self, request: OrderRequest, failure: KrakenFailure) -> OrderState:
        """Find an order whose AddOrder had no clear answer; never send it again."""
        cl_ord_id = request.client_order_id
        logger.warning("kraken AddOrder %s ambiguous (%s); looking it up", cl_ord_id, failure)
        problem = str(failure)
        for delay in self._lookup.delays:
            if delay:
                await self._sleep(delay)
            try:
                found = await self._finder.find_order(cl_ord_id)
            except FatalError as exc:
                raise AmbiguousOrderError(
                    f"{problem}; look-up impossible: {exc}", cl_ord_id, exc.code
                ) from None
            except ExchangeError as exc:
                problem = f"{failure}; look-up failed: {exc}"
                continue
            if found is not None:
                logger.info("kraken AddOrder %s found: %s %s", cl_ord_id, found.txid, found.status)
                return replace(found, pair=request.pair)
        code = to_error(failure, placing=True).code
        message = f"{problem}; not found by cl_ord_id after {len(self._lookup.delays)} look-ups"
        raise AmbiguousOrderError(message, cl_ord_id, code)
