"""The offline market: deterministic, seeded, Kraken-like pairs and spreads."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from rebalancerd.exchange.protocol import RejectedError
from rebalancerd.exchange.simulated import ASSETS, SimulatedMarket

T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def at(moment: datetime) -> SimulatedMarket:
    return SimulatedMarket(seed=42, clock=lambda: moment)


async def test_rules_are_kraken_like() -> None:
    rules = await at(T0).pair_rules(
        ["BTC", "ETH", "DOGE", "XRP", "SOL", "ADA", "DOT", "NOPE"], "EUR"
    )
    assert {b: r.pair for b, r in rules.items()} == {
        "BTC": "XXBTZEUR",
        "ETH": "XETHZEUR",
        "DOGE": "XDGEUR",
        "XRP": "XXRPZEUR",
        "SOL": "SOLEUR",
        "ADA": "ADAEUR",
        "DOT": "DOTEUR",
    }
    btc = rules["BTC"]
    assert (btc.ordermin, btc.lot_decimals, btc.pair_decimals, btc.status) == (
        Decimal("0.00005"),
        8,
        1,
        "online",
    )
    assert await at(T0).pair_rules(["BTC"], "USD") == {}


async def test_same_seed_and_minute_same_prices() -> None:
    pairs = [a.rules.pair for a in ASSETS.values()]
    first = await at(T0).tickers(pairs)
    again = await at(T0 + timedelta(seconds=20)).tickers(pairs)  # same minute
    assert {p: (q.bid, q.ask) for p, q in first.items()} == {
        p: (q.bid, q.ask) for p, q in again.items()
    }
    other_seed = await SimulatedMarket(seed=43, clock=lambda: T0).tickers(pairs)
    assert any(other_seed[p].bid != first[p].bid for p in pairs)


async def test_prices_move_between_minutes_but_stay_plausible() -> None:
    market = at(T0)
    path = [market.mid("BTC", T0 + timedelta(minutes=m)) for m in range(0, 600)]
    assert len(set(path)) > 500
    steps = [abs(b / a - 1) for a, b in itertools.pairwise(path)]
    assert max(steps) < Decimal("0.01")  # no 1 % jumps in a minute
    far = [market.mid("BTC", T0 + timedelta(days=d)) for d in range(0, 365, 7)]
    assert all(Decimal(20000) < p < Decimal(180000) for p in far)


async def test_quotes_have_a_spread_on_the_tick_grid() -> None:
    quotes = await at(T0).tickers(["XXBTZEUR", "ADAEUR", "XDGEUR"])
    for pair, quote in quotes.items():
        rules = next(a.rules for a in ASSETS.values() if a.rules.pair == pair)
        assert quote.bid < quote.last <= quote.ask or quote.bid <= quote.last < quote.ask
        assert quote.bid == quote.bid.quantize(rules.tick_size)
        assert quote.ask == quote.ask.quantize(rules.tick_size)
        assert quote.observed_at == T0
        assert isinstance(quote.bid, Decimal)


async def test_tickers_by_altname_and_unknown_pairs() -> None:
    quotes = await at(T0).tickers(["XBTEUR"])
    assert set(quotes) == {"XBTEUR"}
    with pytest.raises(RejectedError) as caught:
        await at(T0).tickers(["NOPEEUR"])
    assert caught.value.code == "EQuery:Unknown asset pair"


async def test_market_status_can_be_changed() -> None:
    market = at(T0)
    market.set_status("SOL", "cancel_only")
    assert not (await market.pair_rules(["SOL"], "EUR"))["SOL"].tradable
    assert (await SimulatedMarket(seed=42).pair_rules(["SOL"], "EUR"))["SOL"].tradable
