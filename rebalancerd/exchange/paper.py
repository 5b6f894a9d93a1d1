"""Paper trading: Kraken's rules and errors, real or simulated prices, balances in a ledger."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import ROUND_UP, Decimal
from typing import Protocol

from rebalancerd.exchange.maker import LimitRequest
from rebalancerd.exchange.names import REWARDS_SUFFIX
from rebalancerd.exchange.paper_maker import PaperBook
from rebalancerd.exchange.protocol import (
    Balances,
    OrderRequest,
    OrderState,
    PairRules,
    Quote,
    RejectedError,
)

FEE_STEP = Decimal("1E-8")  # fees are rounded UP to this many quote units: never undercharged


class MarketData(Protocol):
    """Where paper prices and pair rules come from (KrakenMarket, KrakenClient, SimulatedMarket)."""

    async def pair_rules(self, bases: Sequence[str], quote: str) -> dict[str, PairRules]: ...

    async def tickers(self, pairs: Sequence[str]) -> dict[str, Quote]: ...


class PaperLedger(Protocol):
    """Balances and orders of paper accounts; record_order is atomic and idempotent."""

    async def seed(self, account: str, balances: Mapping[str, Decimal]) -> None:
        """Set starting balances only if the account has none yet."""
        ...

    async def balances(self, account: str) -> dict[str, Decimal]:
        """Current balances by plain symbol."""
        ...

    async def record_order(
        self, account: str, order: OrderState, deltas: Mapping[str, Decimal]
    ) -> OrderState:
        """Store the order and apply its deltas once; a known client order id returns the first."""
        # Atomically: if (account, order.client_order_id) exists return the stored order and
        # change nothing; else apply deltas (raise RejectedError("...", code="EOrder:Insufficient
        # funds") if any balance would go below 0, storing nothing) and store the order.
        ...

    async def find(self, account: str, client_order_id: str) -> OrderState | None:
        """The order recorded under this client order id, if any."""
        ...

    async def by_txid(self, account: str, txids: Sequence[str]) -> dict[str, OrderState]:
        """Recorded orders by txid."""
        ...


class MemoryLedger:
    """PaperLedger in memory (tests, throwaway demos)."""

    def __init__(self) -> None:
        self._balances: dict[str, dict[str, Decimal]] = {}
        self._orders: dict[tuple[str, str], OrderState] = {}

    # No awaits inside these methods, so each runs atomically on the event loop.
    async def seed(self, account: str, balances: Mapping[str, Decimal]) -> None:
        """Set starting balances only if the account has none yet."""
        self._balances.setdefault(account, dict(balances))

    async def balances(self, account: str) -> dict[str, Decimal]:
        """Current balances by plain symbol."""
        return dict(self._balances.get(account, {}))

    async def record_order(
        self, account: str, order: OrderState, deltas: Mapping[str, Decimal]
    ) -> OrderState:
        """Store the order and apply deltas, unless its client order id was recorded before."""
        existing = self._orders.get((account, order.client_order_id))
        if existing is not None:
            return existing
        current = self._balances.setdefault(account, {})
        after = {asset: current.get(asset, Decimal(0)) + delta for asset, delta in deltas.items()}
        short = sorted(asset for asset, amount in after.items() if amount < 0)
        if short:
            raise RejectedError(f"insufficient {', '.join(short)}", "EOrder:Insufficient funds")
        current.update(after)
        self._orders[(account, order.client_order_id)] = order
        return order

    async def find(self, account: str, client_order_id: str) -> OrderState | None:
        """The order recorded under this client order id, if any."""
        return self._orders.get((account, client_order_id))

    async def by_txid(self, account: str, txids: Sequence[str]) -> dict[str, OrderState]:
        """Recorded orders by txid."""
        wanted = set(txids)
        return {
            o.txid: o for (acc, _), o in self._orders.items() if acc == account and o.txid in wanted
        }


def paper_txid() -> str:
    """A Kraken-shaped order id (OXXXXX-XXXXX-XXXXXX)."""
    raw = uuid.uuid4().hex.upper()
    return f"O{raw[:5]}-{raw[5:10]}-{raw[10:16]}"


def check_order(request: OrderRequest, rules: PairRules, price: Decimal) -> None:
    """Kraken's checks of a market order, with Kraken's error strings as codes."""
    if not rules.tradable:
        raise RejectedError(
            f"{rules.pair} is {rules.status}", f"EService:Market in {rules.status} mode"
        )
    step = Decimal(1).scaleb(-rules.lot_decimals)
    if request.volume <= 0 or request.volume != request.volume.quantize(step):
        raise RejectedError(
            f"volume {request.volume} is not a positive multiple of {step}",
            "EGeneral:Invalid arguments:volume",
        )
    if request.volume < rules.ordermin:
        raise RejectedError(
            f"volume {request.volume} < ordermin {rules.ordermin}", "EOrder:Order minimum not met"
        )
    if request.volume * price < rules.costmin:
        raise RejectedError(
            f"cost {request.volume * price} < costmin {rules.costmin}",
            "EOrder:Cost minimum not met",
        )


def fill(
    request: OrderRequest, rules: PairRules, quote: Quote, fee_rate: Decimal
) -> tuple[OrderState, dict[str, Decimal]]:
    """A market order filled at once at the ask (buy) or bid (sell); fee in quote currency."""
    price = quote.ask if request.side == "buy" else quote.bid
    cost = request.volume * price  # exact: both sit on the pair's grids
    fee = (cost * fee_rate).quantize(FEE_STEP, ROUND_UP)
    sign = 1 if request.side == "buy" else -1
    deltas = {rules.base: sign * request.volume, rules.quote: -sign * cost - fee}
    state = OrderState(
        client_order_id=request.client_order_id,
        txid=paper_txid(),
        pair=request.pair,
        side=request.side,
        status="closed",
        volume=request.volume,
        volume_executed=request.volume,
        cost=cost,
        fee=fee,
        avg_price=price,
    )
    return state, deltas


def draw_spot_first(
    deltas: Mapping[str, Decimal], amounts: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """Deltas with each debit taken from the spot row, the rest from its Rewards (.F) row."""
    out: dict[str, Decimal] = {}
    for asset, delta in deltas.items():
        spot = max(amounts.get(asset, Decimal(0)), Decimal(0))
        rewards = f"{asset}.{REWARDS_SUFFIX}"
        if delta < 0 and -delta > spot and amounts.get(rewards, Decimal(0)) > 0:
            out[asset], out[rewards] = -spot, delta + spot
        else:
            out[asset] = delta
    return out


class PaperExchange:
    """The Exchange Protocol on paper: fills at once at the market's bid/ask, never twice."""

    def __init__(
        self,
        account: str,
        market: MarketData,
        ledger: PaperLedger,
        fee_rate: Decimal = Decimal("0.0026"),
        maker_fee_rate: Decimal = Decimal("0.0016"),
    ) -> None:
        self.account = account
        self._market = market
        self._ledger = ledger
        self._fee_rate = fee_rate
        self._book = PaperBook(maker_fee_rate, fee_rate)  # maker execution (issue 16)
        self._pairs: dict[str, tuple[str, str]] = {}  # pair key -> (base, quote)

    def __repr__(self) -> str:
        return f"PaperExchange(account={self.account!r})"

    async def seed(self, balances: Mapping[str, Decimal]) -> None:
        """Starting balances of this account, if it has none yet."""
        await self._ledger.seed(self.account, balances)

    async def balances(self) -> Balances:
        """Ledger balances: as on Kraken, Rewards (.F) rows are tradable, other dotted ones not."""
        amounts = await self._ledger.balances(self.account)
        return Balances.from_rows((s, a, Decimal(0)) for s, a in amounts.items())

    async def pair_rules(self, bases: Sequence[str], quote: str) -> dict[str, PairRules]:
        """The market's rules (remembered, so orders can look their pair up again)."""
        rules = await self._market.pair_rules(bases, quote)
        self._pairs.update({r.pair: (r.base, r.quote) for r in rules.values()})
        self._pairs.update({r.altname: (r.base, r.quote) for r in rules.values()})
        return rules

    async def tickers(self, pairs: Sequence[str]) -> dict[str, Quote]:
        """The market's quotes."""
        return await self._market.tickers(pairs)

    async def fee_rate(self, pair: str) -> Decimal:
        """The configured paper fee."""
        return self._fee_rate

    async def place_order(self, request: OrderRequest) -> OrderState:
        """Fill a market order now, or return the order already filled under its client id."""
        existing = await self._ledger.find(self.account, request.client_order_id)
        if existing is not None:
            return existing
        rules = await self._rules(request.pair)
        quote = (await self._market.tickers([request.pair]))[request.pair]
        check_order(request, rules, quote.ask if request.side == "buy" else quote.bid)
        state, deltas = fill(request, rules, quote, self._fee_rate)
        if request.validate:
            # Like Kraken's validate=true: the order's inputs are checked, funds are not.
            nothing = Decimal(0)
            return replace(
                state,
                txid=None,
                status="canceled",
                volume_executed=nothing,
                cost=nothing,
                fee=nothing,
            )
        amounts = await self._ledger.balances(self.account)
        return await self._ledger.record_order(
            self.account, state, draw_spot_first(deltas, amounts)
        )

    async def _rules(self, pair: str) -> PairRules:
        """Fresh rules of `pair` (market status may have changed since planning)."""
        if pair not in self._pairs:
            raise RejectedError(
                f"unknown pair {pair} (ask pair_rules first)", "EQuery:Unknown asset pair"
            )
        base, quote = self._pairs[pair]
        rules = (await self._market.pair_rules([base], quote)).get(base)
        if rules is None:
            raise RejectedError(f"pair {pair} is gone", "EQuery:Unknown asset pair")
        return rules

    async def find_order(self, client_order_id: str) -> OrderState | None:
        """The resting or recorded order with this client order id."""
        await self._match()
        if client_order_id in self._book.resting:
            return self._book.resting[client_order_id][0]
        return await self._ledger.find(self.account, client_order_id)

    async def query_orders(self, txids: Sequence[str]) -> dict[str, OrderState]:
        """Resting and recorded orders by txid."""
        await self._match()
        resting = self._book.by_txid()
        found = await self._ledger.by_txid(self.account, [t for t in txids if t not in resting])
        return {**found, **{t: s for t, s in resting.items() if t in txids}}

    async def cancel_order(self, client_order_id: str) -> None:
        """Cancel a resting limit order (market orders fill at once: nothing to cancel)."""
        await self._match()
        await self._book.cancel(client_order_id, self._record)

    # ===== maker execution (issue 16) =====

    async def place_limit(self, request: LimitRequest) -> OrderState:
        """Rest a post-only order, fill an IOC that crosses; never twice for one client id."""
        await self._match()
        if request.client_order_id in self._book.resting:
            return self._book.resting[request.client_order_id][0]
        existing = await self._ledger.find(self.account, request.client_order_id)
        if existing is not None:
            return existing
        rules = await self._rules(request.pair)
        quote = (await self._market.tickers([request.pair]))[request.pair]
        order = OrderRequest(request.pair, request.side, request.volume, request.client_order_id)
        check_order(order, rules, request.price)
        state = OrderState(
            request.client_order_id,
            paper_txid(),
            request.pair,
            request.side,
            "open",
            request.volume,
        )
        return await self._book.place(request, state, rules, quote, self._record)

    async def amend_price(
        self, client_order_id: str, pair: str, price: Decimal, age: float
    ) -> None:
        """Move a resting order; refused when it would take."""
        await self._match()
        quote = (await self._market.tickers([pair]))[pair]
        self._book.amend(client_order_id, price, quote)

    def trading_room(self, pair: str) -> float:
        """Paper has no trading counter."""
        return float("inf")

    async def _match(self) -> None:
        pairs = self._book.pairs()
        if pairs:
            await self._book.match(dict(await self._market.tickers(pairs)), self._record)

    async def _record(self, state: OrderState, deltas: dict[str, Decimal]) -> OrderState:
        amounts = await self._ledger.balances(self.account)
        return await self._ledger.record_order(
            self.account, state, draw_spot_first(deltas, amounts)
        )

    async def warm(self) -> None:
        """Warm the market's cache (a Kraken market has one; simulated prices need none)."""
        warm = getattr(self._market, "warm", None)
        if warm is not None:
            await warm()

    async def close(self) -> None:
        """Close the market's connections (shared by paper accounts: closing twice is fine)."""
        close = getattr(self._market, "close", None)
        if close is not None:
            await close()
