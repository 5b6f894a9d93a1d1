"""Offline market for the demo and tests: seeded, deterministic prices on Kraken-like EUR pairs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

from rebalancerd.exchange.protocol import PairRules, Quote, RejectedError

QUOTE = "EUR"
OCTAVES = 16  # random-walk-like up to 2**16 minutes (~45 days), bounded beyond


@dataclass(frozen=True)
class SimAsset:
    """One simulated asset: its pair's rules, a reference price, per-minute volatility, spread."""

    rules: PairRules
    start: Decimal  # the price the path wanders around
    volatility: Decimal  # typical log move per minute
    spread: Decimal  # ask - bid, as a fraction of the mid price


def _asset(
    pair: str,
    altname: str,
    base: str,
    start: str,
    ordermin: str,
    pair_decimals: int,
    volatility: str = "0.0010",
    spread: str = "0.0004",
) -> SimAsset:
    rules = PairRules(
        pair=pair,
        altname=altname,
        base=base,
        quote=QUOTE,
        ordermin=Decimal(ordermin),
        costmin=Decimal("0.5"),
        lot_decimals=8,
        pair_decimals=pair_decimals,
        tick_size=Decimal(1).scaleb(-pair_decimals),
        status="online",
    )
    return SimAsset(rules, Decimal(start), Decimal(volatility), Decimal(spread))


# Pair keys, altnames and minimums as Kraken shows them (legacy X/Z keys included).
ASSETS: dict[str, SimAsset] = {
    a.rules.base: a
    for a in (
        _asset("XXBTZEUR", "XBTEUR", "BTC", "60000", "0.00005", 1, "0.0008", "0.0002"),
        _asset("XETHZEUR", "ETHEUR", "ETH", "3000", "0.001", 2, "0.0010", "0.0003"),
        _asset("SOLEUR", "SOLEUR", "SOL", "140", "0.06", 2, "0.0014"),
        _asset("ADAEUR", "ADAEUR", "ADA", "0.45", "15", 6, "0.0014", "0.0008"),
        _asset("XDGEUR", "XDGEUR", "DOGE", "0.15", "40", 7, "0.0016", "0.0008"),
        _asset("XXRPZEUR", "XRPEUR", "XRP", "0.55", "10", 5, "0.0012", "0.0006"),
        _asset("DOTEUR", "DOTEUR", "DOT", "6", "1", 4, "0.0014", "0.0008"),
        _asset("XLTCZEUR", "LTCEUR", "LTC", "80", "0.05", 2, "0.0012", "0.0006"),
        _asset("LINKEUR", "LINKEUR", "LINK", "15", "0.2", 5, "0.0014", "0.0008"),
        _asset("XTZEUR", "XTZEUR", "XTZ", "0.9", "5", 4, "0.0014", "0.0010"),
    )
}


def _unit(seed: int, *parts: object) -> Decimal:
    """A deterministic number in [-1, 1) from the seed and `parts`."""
    digest = hashlib.blake2b(":".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return Decimal(int.from_bytes(digest, "big")) / Decimal(2**63) - 1


def log_offset(seed: int, base: str, minute: int) -> Decimal:
    """Log-price offset at `minute`: value noise summed over octaves, so moves grow like a walk."""
    total = Decimal(0)
    for octave in range(OCTAVES):
        span = 2**octave
        cell, within = divmod(minute, span)
        left, right = _unit(seed, base, octave, cell), _unit(seed, base, octave, cell + 1)
        # Linear interpolation keeps the path continuous; sqrt(span) scaling mimics a walk.
        level = left + (right - left) * Decimal(within) / Decimal(span)
        total += level * Decimal(span).sqrt()
    return total


class SimulatedMarket:
    """Prices as a pure function of (seed, asset, minute), with Kraken-like rules and spreads."""

    def __init__(
        self, seed: int = 0, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._seed = seed
        self._clock = clock
        self._assets = dict(ASSETS)

    def set_status(self, base: str, status: str) -> None:
        """Put a market in another state (cancel_only, post_only, ...), for tests and demos."""
        asset = self._assets[base]
        self._assets[base] = replace(asset, rules=replace(asset.rules, status=status))

    def mid(self, base: str, at: datetime) -> Decimal:
        """The mid price of `base` in EUR during the minute of `at`."""
        asset = self._assets[base]
        minute = int(at.timestamp()) // 60
        with localcontext() as ctx:
            ctx.prec = 28
            move = asset.volatility * log_offset(self._seed, base, minute)
            return asset.start * move.exp()

    async def pair_rules(self, bases: Sequence[str], quote: str) -> dict[str, PairRules]:
        """Rules of the simulated BASE/EUR pairs among `bases`."""
        if quote != QUOTE:
            return {}
        return {b: self._assets[b].rules for b in bases if b in self._assets}

    async def tickers(self, pairs: Sequence[str]) -> dict[str, Quote]:
        """Quotes now, keyed by the pair key or altname asked for."""
        now = self._clock()
        by_name = {n: a for a in self._assets.values() for n in (a.rules.pair, a.rules.altname)}
        quotes: dict[str, Quote] = {}
        for pair in pairs:
            asset = by_name.get(pair)
            if asset is None:
                raise RejectedError(f"unknown pair {pair}", "EQuery:Unknown asset pair")
            quotes[pair] = self._quote(pair, asset, now)
        return quotes

    def _quote(self, pair: str, asset: SimAsset, now: datetime) -> Quote:
        mid = self.mid(asset.rules.base, now)
        tick = asset.rules.tick_size
        half = mid * asset.spread / 2
        bid = (mid - half).quantize(tick, ROUND_FLOOR)
        ask = max((mid + half).quantize(tick, ROUND_CEILING), bid + tick)
        return Quote(pair=pair, bid=bid, ask=ask, last=mid.quantize(tick), observed_at=now)

    async def close(self) -> None:
        """Nothing to release."""
