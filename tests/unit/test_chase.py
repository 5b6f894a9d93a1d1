"""Maker execution's pure decisions (issue 16), as tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebalancerd.exchange.maker import amend_cost, cancel_cost
from rebalancerd.exchange.protocol import OrderState, Quote
from rebalancerd.runs import chase

TICK = D("0.1")


def q(bid: str, ask: str) -> Quote:
    return Quote("XXBTZEUR", D(bid), D(ask), D(ask), datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("side", "bid", "ask", "price"),
    [
        ("buy", "100.0", "100.5", "100.0"),  # join the bid
        ("sell", "100.0", "100.5", "100.5"),  # join the ask
        ("buy", "100.0", "100.1", "100.0"),  # one-tick spread: still the bid
        ("buy", "100.0", "100.0", "99.9"),  # locked quote: never at the ask
        ("sell", "100.0", "100.0", "100.1"),
        ("buy", "100.2", "100.0", "99.9"),  # crossed (stale) quote: below the ask
        ("sell", "100.2", "100.0", "100.3"),
    ],
)
def test_maker_price_joins_the_touch_and_never_takes(
    side: str, bid: str, ask: str, price: str
) -> None:
    assert chase.maker_price(side, q(bid, ask), TICK) == D(price)


@pytest.mark.parametrize(
    ("side", "resting", "best", "room", "points", "amend"),
    [
        ("buy", "100.0", "100.1", 59.0, 4.0, True),  # bid moved up: follow
        ("buy", "100.0", "100.0", 59.0, 4.0, False),  # still at the touch
        ("buy", "100.0", "99.9", 59.0, 4.0, False),  # moved towards us: we are the touch
        ("sell", "100.5", "100.4", 59.0, 4.0, True),  # ask moved down: follow
        ("sell", "100.5", "100.6", 59.0, 4.0, False),
        ("buy", "100.0", "100.1", 12.0, 4.0, True),  # exactly the cancel reserve left after
        ("buy", "100.0", "100.1", 11.9, 4.0, False),  # would eat into the cancel's points
        ("buy", "100.0", "100.1", 9.0, 1.0, True),  # an old order's amend costs 1
        ("sell", "100.5", "100.4", 8.5, 1.0, False),
    ],
)
def test_should_amend_only_when_moved_away_with_room_for_a_cancel(
    side: str, resting: str, best: str, room: float, points: float, amend: bool
) -> None:
    assert chase.should_amend(side, D(resting), D(best), room, points) is amend


@pytest.mark.parametrize(
    ("age", "amend", "cancel"),
    [(0, 4, 8), (4.9, 4, 8), (5, 3, 6), (9.9, 3, 6), (10, 2, 5), (15, 1, 4), (44, 1, 4),
     (45, 1, 2), (90, 1, 1), (299, 1, 1), (300, 1, 0), (3600, 1, 0)],
)  # fmt: skip
def test_counter_costs_follow_krakens_age_table(age: float, amend: float, cancel: float) -> None:
    assert (amend_cost(age), cancel_cost(age)) == (amend, cancel)


@pytest.mark.parametrize(
    ("side", "mid", "bps", "price"),
    [
        ("buy", "90005", "50", "90455.0"),  # floor(90455.025)
        ("sell", "90005", "50", "89555.0"),  # ceil(89554.975)
        ("buy", "100.05", "0", "100.0"),  # no slippage allowed: at most the mid
        ("sell", "100.05", "0", "100.1"),
        ("buy", "100", "1000", "110.0"),
    ],
)
def test_fallback_price_stays_within_the_cap(side: str, mid: str, bps: str, price: str) -> None:
    assert chase.fallback_price(side, D(mid), D(bps), TICK) == D(price)


@given(
    mid=st.decimals(D("0.01"), D("100000"), places=4),
    bps=st.decimals(D(0), D(1000), places=2),
    side=st.sampled_from(["buy", "sell"]),
)
def test_fallback_price_is_never_beyond_the_cap(mid: D, bps: D, side: str) -> None:
    price = chase.fallback_price(side, mid, bps, TICK)
    if side == "buy":
        assert price <= mid * (1 + bps / 10_000)
    else:
        assert price >= mid * (1 - bps / 10_000)
    assert price % TICK == 0


@pytest.mark.parametrize(
    ("side", "mid", "volume", "cost", "fee", "bps"),
    [
        ("buy", "100", "1", "100", "0.25", "25.00"),  # at the mid: the fee only
        ("buy", "100", "1", "99.95", "0.25", "20.01"),  # bought below the mid: spread earned
        ("sell", "100", "1", "99.95", "0.40", "45.02"),  # sold below the mid: shortfall
        ("sell", "100", "2", "200.10", "0.50", "19.99"),
        ("buy", None, "1", "100", "0.25", None),  # no arrival mid known
        ("buy", "100", "0", "0", "0", None),  # nothing traded
    ],
)
def test_cost_bps_is_fee_plus_shortfall_over_value(
    side: str, mid: str | None, volume: str, cost: str, fee: str, bps: str | None
) -> None:
    got = chase.cost_bps(side, D(mid) if mid else None, D(volume), D(cost), D(fee))
    assert got == (D(bps) if bps else None)


def test_weighted_bps_weights_by_value() -> None:
    assert chase.weighted_bps([(D(20), D(100)), (D(50), D(300))]) == D("42.50")
    assert chase.weighted_bps([]) is None


def test_child_ids_are_the_intents_own_then_distinct_and_stable() -> None:
    parent = str(uuid.uuid4())
    ids = [chase.child_id(parent, n) for n in range(4)]
    assert ids[0] == parent and len(set(ids)) == 4
    assert ids == [chase.child_id(parent, n) for n in range(4)]  # a restart derives the same
    assert all(len(i) == 36 for i in ids)  # Kraken's long UUID form of cl_ord_id


def test_average_price_weights_each_fill() -> None:
    def state(volume: str, price: str) -> OrderState:
        return OrderState("c", "t", "p", "buy", "closed", D(1), D(volume), D(0), D(0), D(price))

    assert chase.average_price([state("1", "100"), state("3", "104")]) == D(103)
    assert chase.average_price([]) == 0
