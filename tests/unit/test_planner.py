"""Tables for the pure planner: the original example, minimums, guards, bands and re-sizing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rebalancerd.exchange.protocol import Balances, PairRules, Quote
from rebalancerd.planning.plan import (
    Plan,
    PlannedOrder,
    PortfolioRules,
    Skip,
    mid,
    out_of_band,
    plan,
    size_buys,
)

D = Decimal
NOW = datetime(2025, 10, 20, 10, 0, tzinfo=UTC)
EXAMPLE_PRICES = {"BTC": "40000", "ETH": "2500", "SOL": "100", "ADA": "0.5"}
EXAMPLE_HOLDINGS = {"BTC": "0.5", "ETH": "2", "SOL": "20", "ADA": "1000"}
EXAMPLE_TARGETS = {"BTC": "40", "ETH": "30", "SOL": "20", "ADA": "10"}
# Kraken's minimums for these EUR pairs (reference/kraken-rest.md).
KRAKEN_MINS = {"BTC": "0.00005", "ETH": "0.001", "SOL": "0.06", "ADA": "15"}
EXAMPLE_ORDERS = [
    ("sell", "BTC", "0.225"),
    ("buy", "SOL", "35"),
    ("buy", "ETH", "1.3"),
    ("buy", "ADA", "4500"),
]


def pair(
    symbol: str,
    ordermin: str = "0",
    costmin: str = "0",
    lot: int = 8,
    status: str = "online",
    quote: str = "EUR",
) -> PairRules:
    """Rules of SYMBOL/EUR."""
    return PairRules(
        pair=f"{symbol}{quote}",
        altname=f"{symbol}{quote}",
        base=symbol,
        quote=quote,
        ordermin=D(ordermin),
        costmin=D(costmin),
        lot_decimals=lot,
        pair_decimals=2,
        tick_size=D("0.01"),
        status=status,
    )


def quote(bid: str, ask: str | None = None, age: timedelta = timedelta(0)) -> Quote:
    """A quote observed `age` before NOW; ask defaults to bid (zero spread)."""
    ask = bid if ask is None else ask
    return Quote(pair="?", bid=D(bid), ask=D(ask), last=D(bid), observed_at=NOW - age)


def example_pairs(**overrides: PairRules) -> dict[str, PairRules]:
    """The example's pairs with Kraken's minimums."""
    pairs = {s: pair(s, KRAKEN_MINS[s], "0.45") for s in EXAMPLE_PRICES}
    return {**pairs, **overrides}


def example_quotes(**overrides: Quote) -> dict[str, Quote]:
    """The example's prices with zero spread."""
    return {**{s: quote(p) for s, p in EXAMPLE_PRICES.items()}, **overrides}


def decimals(mapping: dict[str, str]) -> dict[str, Decimal]:
    """Strings to Decimals."""
    return {k: D(v) for k, v in mapping.items()}


def run(
    holdings: dict[str, str],
    targets: dict[str, str],
    *,
    quotes: dict[str, Quote] | None = None,
    pairs: dict[str, PairRules] | None = None,
    fee: str = "0",
    locked: dict[str, str] | None = None,
    **rules: Any,
) -> Plan:
    """plan() with the example's market unless told otherwise."""
    balances = Balances(decimals(holdings), decimals(locked or {}))
    return plan(
        balances,
        example_quotes() if quotes is None else quotes,
        example_pairs() if pairs is None else pairs,
        D(fee),
        PortfolioRules(decimals(targets), **rules),
        NOW,
    )


def orders_of(result: Plan) -> list[tuple[str, str, Decimal]]:
    """(side, symbol, volume) of each order, in order."""
    return [(o.side, o.symbol, o.volume) for o in result.orders]


def expected(rows: list[tuple[str, str, str]]) -> list[tuple[str, str, Decimal]]:
    """Table rows with Decimal volumes."""
    return [(side, symbol, D(volume)) for side, symbol, volume in rows]


def skips_of(result: Plan) -> list[tuple[str, str, str]]:
    """(symbol, side, reason) of each skip."""
    return [(s.symbol, s.side, s.reason) for s in result.skipped]


# --- the original example and its variations -------------------------------------------------


@pytest.mark.parametrize(
    ("holdings", "targets", "kwargs", "rows", "skips"),
    [
        pytest.param(EXAMPLE_HOLDINGS, EXAMPLE_TARGETS, {}, EXAMPLE_ORDERS, [], id="original"),
        pytest.param(
            EXAMPLE_HOLDINGS,
            EXAMPLE_TARGETS,
            {"fee": "0.0026"},
            [
                ("sell", "BTC", "0.225"),
                ("buy", "SOL", "34.81847197"),
                ("buy", "ETH", "1.29325753"),
                ("buy", "ADA", "4476.66068222"),
            ],
            [],
            id="fees-scale-buys-to-net-proceeds",
        ),
        pytest.param(
            {**EXAMPLE_HOLDINGS, "DOGE": "1000", "XRP": "5"},
            EXAMPLE_TARGETS,
            {},
            EXAMPLE_ORDERS,
            [],
            id="assets-outside-targets-untouched",
        ),
        pytest.param(
            EXAMPLE_HOLDINGS,
            EXAMPLE_TARGETS,
            {"locked": {"BTC.S": "10", "BTC": "1", "ETH.F": "3", "EUR": "500"}},
            EXAMPLE_ORDERS,
            [],
            id="staked-and-held-ignored",
        ),
        pytest.param(
            EXAMPLE_HOLDINGS,
            EXAMPLE_TARGETS,
            {"threshold": D("3300")},
            [("sell", "BTC", "0.225"), ("buy", "SOL", "35")],
            [
                ("ADA", "buy", "deviation €2250.00 below threshold €3300.00"),
                ("ETH", "buy", "deviation €3250.00 below threshold €3300.00"),
            ],
            id="threshold-filters-small-deviations",
        ),
        pytest.param(
            EXAMPLE_HOLDINGS,
            EXAMPLE_TARGETS,
            {"threshold": D("3250")},
            [("sell", "BTC", "0.225"), ("buy", "SOL", "35"), ("buy", "ETH", "1.3")],
            [("ADA", "buy", "deviation €2250.00 below threshold €3250.00")],
            id="threshold-equal-to-deviation-trades",
        ),
        pytest.param(
            EXAMPLE_HOLDINGS,
            EXAMPLE_TARGETS,
            {"threshold": D("9000.01")},
            [],
            [
                ("ADA", "buy", "deviation €2250.00 below threshold €9000.01"),
                ("BTC", "sell", "deviation €9000.00 below threshold €9000.01"),
                ("ETH", "buy", "deviation €3250.00 below threshold €9000.01"),
                ("SOL", "buy", "deviation €3500.00 below threshold €9000.01"),
            ],
            id="threshold-above-every-deviation",
        ),
        pytest.param(
            EXAMPLE_HOLDINGS,
            EXAMPLE_TARGETS,
            {"pairs": example_pairs(ETH=pair("ETH", "0.001", "0.45", status="cancel_only"))},
            [("sell", "BTC", "0.225"), ("buy", "SOL", "35"), ("buy", "ADA", "4500")],
            [("ETH", "buy", "market ETHEUR is cancel_only")],
            id="market-not-online-skipped",
        ),
        pytest.param(
            EXAMPLE_HOLDINGS,
            EXAMPLE_TARGETS,
            {"pairs": example_pairs(BTC=pair("BTC", status="post_only"))},
            [],
            [
                ("BTC", "sell", "market BTCEUR is post_only"),
                ("SOL", "buy", "volume rounds down to 0 SOL after sizing to €0.00 available"),
                ("ETH", "buy", "volume rounds down to 0 ETH after sizing to €0.00 available"),
                ("ADA", "buy", "volume rounds down to 0 ADA after sizing to €0.00 available"),
            ],
            id="no-sell-no-cash-no-buys",
        ),
        pytest.param(
            {"EUR": "10000"},
            {"BTC": "60", "ETH": "40"},
            {},
            [("buy", "BTC", "0.15"), ("buy", "ETH", "1.6")],
            [],
            id="all-cash-start",
        ),
        pytest.param(
            {"EUR": "10000"},
            {"BTC": "60", "ETH": "40"},
            {"fee": "0.01"},
            [("buy", "BTC", "0.14851485"), ("buy", "ETH", "1.58415841")],
            [],
            id="all-cash-start-with-fees",
        ),
        pytest.param(
            {"EUR": "10000"},
            {"BTC": "50", "ETH": "30", "EUR": "20"},
            {},
            [("buy", "BTC", "0.125"), ("buy", "ETH", "1.2")],
            [],
            id="cash-share-kept",
        ),
        pytest.param(
            {"BTC": "1"},
            {"BTC": "50", "EUR": "50"},
            {},
            [("sell", "BTC", "0.5")],
            [],
            id="sell-into-cash-share",
        ),
        pytest.param(
            {"BTC": "0.123456789", "ETH": "4"},
            {"BTC": "0", "ETH": "100"},
            {"fee": "0.0026"},
            [("sell", "BTC", "0.12345678"), ("buy", "ETH", "1.96506351")],
            [],
            id="zero-weight-sold-rounded-down",
        ),
        pytest.param(
            {"BTC": "0.5", "ETH": "8"},
            {"BTC": "50", "ETH": "50"},
            {},
            [],
            [],
            id="on-target-nothing-to-do",
        ),
        pytest.param({}, EXAMPLE_TARGETS, {}, [], [], id="empty-account"),
    ],
)
def test_plan_table(
    holdings: dict[str, str],
    targets: dict[str, str],
    kwargs: dict[str, Any],
    rows: list[tuple[str, str, str]],
    skips: list[tuple[str, str, str]],
) -> None:
    result = run(holdings, targets, **kwargs)
    assert result.aborted is None
    assert orders_of(result) == expected(rows)
    assert skips_of(result) == skips


def test_original_example_in_detail() -> None:
    result = run(EXAMPLE_HOLDINGS, EXAMPLE_TARGETS)
    assert result.value == D("27500")
    assert result.current_weights == {
        "ADA": D(500) * 100 / D(27500),
        "BTC": D(20000) * 100 / D(27500),
        "ETH": D(5000) * 100 / D(27500),
        "SOL": D(2000) * 100 / D(27500),
        "EUR": D(0),
    }
    assert result.target_weights == {**decimals(EXAMPLE_TARGETS), "EUR": D(0)}
    assert result.expected_weights == {**decimals(EXAMPLE_TARGETS), "EUR": D(0)}
    assert [(o.price, o.value, o.fee, o.deviation) for o in result.orders] == [
        (D(40000), D(9000), D(0), D(9000)),
        (D(100), D(3500), D(0), D(3500)),
        (D(2500), D(3250), D(0), D(3250)),
        (D("0.5"), D(2250), D(0), D(2250)),
    ]
    assert [o.pair for o in result.orders] == ["BTCEUR", "SOLEUR", "ETHEUR", "ADAEUR"]
    assert result.estimated_fees == 0
    assert result.cash_reserve == 0
    assert result.traded_value == D(18000)
    assert [o.symbol for o in result.sells] == ["BTC"]
    assert [o.symbol for o in result.buys] == ["SOL", "ETH", "ADA"]


def test_fees_are_value_times_rate_and_buys_fit_net_proceeds() -> None:
    result = run(EXAMPLE_HOLDINGS, EXAMPLE_TARGETS, fee="0.0026")
    for order in result.orders:
        assert order.value == order.volume * order.price
        assert order.fee == order.value * D("0.0026")
    assert result.estimated_fees == sum(o.fee for o in result.orders)
    proceeds = sum(o.value - o.fee for o in result.sells)
    spent = sum(o.value + o.fee for o in result.buys)
    assert spent <= proceeds
    assert proceeds - spent < D("0.01")  # the cash is used, not left idle


def test_sells_fill_at_bid_buys_at_ask_value_at_mid() -> None:
    spread = {
        "BTC": quote("39990", "40010"),
        "ETH": quote("2499", "2501"),
        "SOL": quote("99.95", "100.05"),
        "ADA": quote("0.4999", "0.5001"),
    }
    result = run(EXAMPLE_HOLDINGS, EXAMPLE_TARGETS, quotes=spread)
    assert result.value == D("27500")
    assert [o.price for o in result.orders] == [D("39990"), D("100.05"), D("2501"), D("0.5001")]
    assert result.orders[0].volume == D("0.225")
    assert result.orders[0].value == D("8997.75")
    assert sum(o.value for o in result.buys) <= D("8997.75")
    assert [o.volume for o in result.buys] == [
        D("34.97764758"),
        D("1.29916976"),
        D("4497.12611762"),
    ]


def test_expected_weights_count_fees_and_proceeds() -> None:
    result = run({"BTC": "1"}, {"BTC": "50", "EUR": "50"}, quotes={"BTC": quote("100")}, fee="0.01")
    # 0.5 BTC sold for €50, €0.50 fee: €50 + €49.50 remain.
    assert result.expected_weights == {
        "BTC": D(50) * 100 / D("99.5"),
        "EUR": D("49.5") * 100 / D("99.5"),
    }
    assert result.cash_reserve == D(50)


def test_buys_never_spend_the_cash_reserve() -> None:
    quotes = {"BTC": quote("100")}
    result = run({"BTC": "1", "EUR": "40"}, {"BTC": "50", "EUR": "50"}, quotes=quotes)
    # Worth €140: BTC is €30 over target and cash €30 under; selling refills the cash share.
    assert orders_of(result) == expected([("sell", "BTC", "0.3")])
    assert result.cash_reserve == D(70)


def test_cash_below_reserve_buys_nothing() -> None:
    quotes = {"BTC": quote("100"), "ETH": quote("100")}
    pairs = {"BTC": pair("BTC", status="cancel_only"), "ETH": pair("ETH", "0.01")}
    holdings = {"BTC": "0.6", "ETH": "0.3", "EUR": "10"}
    result = run(holdings, {"BTC": "30", "ETH": "40", "EUR": "30"}, quotes=quotes, pairs=pairs)
    # €100: BTC €30 over but its market is closed; cash is €20 under its share, so no buy.
    assert result.orders == ()
    assert skips_of(result) == [
        ("BTC", "sell", "market BTCEUR is cancel_only"),
        ("ETH", "buy", "volume rounds down to 0 ETH after sizing to €0.00 available"),
    ]


def test_never_sells_more_than_held_even_when_arithmetic_rounds_up() -> None:
    # 29 nines: amount x mid rounds up to 3 at 28 digits, and 3 / 3 would sell a whole 1.
    held = "0." + "9" * 29
    quotes = {"BTC": quote("3"), "ETH": quote("3")}
    pairs = {"BTC": pair("BTC"), "ETH": pair("ETH")}
    result = run({"BTC": held}, {"BTC": "0", "ETH": "100"}, quotes=quotes, pairs=pairs)
    assert result.sells[0].volume == D("0.99999999")


# --- one asset and cash: minimums, rounding ---------------------------------------------------


def one_asset(gap: str, price: str = "1", **pair_kw: Any) -> Plan:
    """X at `price` and EUR, targets 50/50, X off target by `gap` EUR (positive: buy)."""
    g = D(gap)
    x_value, cash = (D(100), D(100) + 2 * g) if g > 0 else (D(100) - 2 * g, D(100))
    holdings = {"X": str(x_value / D(price)), "EUR": str(cash)}
    targets = {"X": "50", "EUR": "50"}
    return run(holdings, targets, quotes={"X": quote(price)}, pairs={"X": pair("X", **pair_kw)})


@pytest.mark.parametrize(
    ("gap", "price", "pair_kw", "rows", "skips"),
    [
        ("4.99", "1", {"ordermin": "5"}, [], [("X", "buy", "volume 4.99 below ordermin 5 X")]),
        ("5", "1", {"ordermin": "5"}, [("buy", "X", "5")], []),
        ("-4.99", "1", {"ordermin": "5"}, [], [("X", "sell", "volume 4.99 below ordermin 5 X")]),
        ("-5", "1", {"ordermin": "5"}, [("sell", "X", "5")], []),
        (
            "1",
            "40000",
            {"ordermin": "0.00005"},
            [],
            [("X", "buy", "volume 0.000025 below ordermin 0.00005 X")],
        ),
        ("4.99", "1", {"costmin": "5"}, [], [("X", "buy", "cost €4.99 below costmin €5.00")]),
        ("5", "1", {"costmin": "5"}, [("buy", "X", "5")], []),
        ("-4.99", "1", {"costmin": "5"}, [], [("X", "sell", "cost €4.99 below costmin €5.00")]),
        ("-5", "1", {"costmin": "5"}, [("sell", "X", "5")], []),
        ("5.999", "1", {"lot": 2}, [("buy", "X", "5.99")], []),
        ("5.999", "1", {"lot": 0}, [("buy", "X", "5")], []),
        ("-5.999", "1", {"lot": 1}, [("sell", "X", "5.9")], []),
        ("0.9", "1", {"lot": 0}, [], [("X", "buy", "volume rounds down to 0 X")]),
        ("0.9", "1", {"lot": 0, "ordermin": "1"}, [], [("X", "buy", "volume rounds down to 0 X")]),
        ("10", "3", {"lot": 8}, [("buy", "X", "3.33333333")], []),
        (
            "10",
            "3",
            {"lot": 8, "status": "reduce_only"},
            [],
            [("X", "buy", "market XEUR is reduce_only")],
        ),
    ],
)
def test_minimums_and_lot_rounding(
    gap: str,
    price: str,
    pair_kw: dict[str, Any],
    rows: list[tuple[str, str, str]],
    skips: list[tuple[str, str, str]],
) -> None:
    result = one_asset(gap, price, **pair_kw)
    assert orders_of(result) == expected(rows)
    assert skips_of(result) == skips
    for order in result.orders:
        lot = D(1).scaleb(-pair_kw.get("lot", 8))
        assert order.volume == order.volume.quantize(lot)


def test_skip_carries_order_value() -> None:
    result = one_asset("4.99", "2", costmin="10")
    assert [(s.value, s.reason) for s in result.skipped] == [
        (D("4.99"), "cost €4.99 below costmin €10.00")
    ]


# --- max_orders -----------------------------------------------------------------------------


UNIT = {s: quote("1") for s in "ABDEWXYZ"}
UNIT_PAIRS = {s: pair(s) for s in "ABDEWXYZ"}


@pytest.mark.parametrize(
    ("max_orders", "rows"),
    [
        (1, [("sell", "BTC", "0.225")]),
        (2, [("sell", "BTC", "0.225"), ("buy", "SOL", "35")]),
        (3, [("sell", "BTC", "0.225"), ("buy", "SOL", "35"), ("buy", "ETH", "1.3")]),
        (4, EXAMPLE_ORDERS),
        (9, EXAMPLE_ORDERS),
        (None, EXAMPLE_ORDERS),
    ],
)
def test_max_orders_keeps_largest_deviations(
    max_orders: int | None, rows: list[tuple[str, str, str]]
) -> None:
    result = run(EXAMPLE_HOLDINGS, EXAMPLE_TARGETS, max_orders=max_orders)
    assert orders_of(result) == expected(rows)
    dropped = {s.symbol for s in result.skipped}
    assert dropped == {"BTC", "SOL", "ETH", "ADA"} - {o.symbol for o in result.orders}
    for skip in result.skipped:
        assert skip.reason == f"not among the {max_orders} most important orders (max_orders)"


def test_max_orders_dropped_skip_values() -> None:
    result = run(EXAMPLE_HOLDINGS, EXAMPLE_TARGETS, max_orders=2)
    assert [(s.symbol, s.side, s.value) for s in result.skipped] == [
        ("ETH", "buy", D(3250)),
        ("ADA", "buy", D(2250)),
    ]


@pytest.mark.parametrize(
    ("holdings", "targets", "max_orders", "rows"),
    [
        # No cash; a €300 buy of B is larger than any one sell (€100 each), so it cannot go alone.
        pytest.param(
            {"A": "200", "D": "200", "E": "200", "B": "0"},
            {"A": "25", "D": "25", "E": "25", "B": "25"},
            1,
            [("sell", "A", "50")],
            id="unfunded-buy-never-beats-a-sell",
        ),
        pytest.param(
            {"A": "200", "D": "200", "E": "200", "B": "0"},
            {"A": "25", "D": "25", "E": "25", "B": "25"},
            2,
            [("sell", "A", "50"), ("buy", "B", "50")],
            id="buy-sized-to-the-kept-sell",
        ),
        # €400, €100 each: X +100, Y +90, Z -80, W -10. The €100 cash pays for X; then Y has
        # nothing left to pay with, so the sell of Z corrects more.
        pytest.param(
            {"X": "0", "Y": "10", "Z": "180", "W": "110", "EUR": "100"},
            {"X": "25", "Y": "25", "Z": "25", "W": "25"},
            2,
            [("sell", "Z", "80"), ("buy", "X", "100")],
            id="cash-spent-by-kept-buys",
        ),
        pytest.param(
            {"X": "0", "Y": "10", "Z": "180", "W": "110", "EUR": "100"},
            {"X": "25", "Y": "25", "Z": "25", "W": "25"},
            1,
            [("buy", "X", "100")],
            id="funded-buy-beats-smaller-sell",
        ),
        pytest.param(
            {"X": "0", "Y": "10", "Z": "180", "W": "110", "EUR": "100"},
            {"X": "25", "Y": "25", "Z": "25", "W": "25"},
            3,
            # Both buys then share the €180 in proportion: 180/190 of each.
            [("sell", "Z", "80"), ("buy", "X", "94.7368421"), ("buy", "Y", "85.26315789")],
            id="sell-funds-next-buy",
        ),
    ],
)
def test_max_orders_stays_fundable(
    holdings: dict[str, str],
    targets: dict[str, str],
    max_orders: int,
    rows: list[tuple[str, str, str]],
) -> None:
    # Some holdings are only there to make the targets' arithmetic round; see each case's values.
    result = run(holdings, targets, quotes=UNIT, pairs=UNIT_PAIRS, max_orders=max_orders)
    assert orders_of(result) == expected(rows)
    spent = sum(o.value + o.fee for o in result.buys)
    assert spent <= D(holdings.get("EUR", "0")) - result.cash_reserve + sum(
        o.value - o.fee for o in result.sells
    )


def test_max_orders_counts_only_cash_above_the_reserve() -> None:
    holdings = {"X": "0", "Z": "100", "EUR": "200"}
    targets = {"X": "40", "Z": "10", "EUR": "50"}
    # €300: X +120, Z -70; €200 cash against a €150 share leaves €50 for X on its own.
    limited = run(holdings, targets, quotes=UNIT, pairs=UNIT_PAIRS, max_orders=1)
    assert orders_of(limited) == expected([("sell", "Z", "70")])
    free = run(holdings, targets, quotes=UNIT, pairs=UNIT_PAIRS)
    assert orders_of(free) == expected([("sell", "Z", "70"), ("buy", "X", "120")])


@pytest.mark.parametrize(
    ("fee", "rows"),
    [
        ("0.01", [("sell", "Z", "80"), ("sell", "W", "29"), ("buy", "X", "150")]),
        # Without fees Y wins the slot, and X and Y share the €180 in proportion.
        ("0", [("sell", "Z", "80"), ("buy", "X", "129.18660287"), ("buy", "Y", "50.81339712")]),
    ],
)
def test_max_orders_tracks_cash_with_fees(fee: str, rows: list[tuple[str, str, str]]) -> None:
    holdings = {"X": "50", "Y": "141", "Z": "280", "W": "229", "EUR": "100"}
    targets = {"X": "25", "Y": "25", "Z": "25", "W": "25"}
    # €800: X +150, Y +59, Z -80, W -29. X takes the €100 cash (and more), Z's proceeds leave
    # €27.70 after fees (€30 without), so the third slot goes to W's €29 rather than to Y.
    result = run(holdings, targets, quotes=UNIT, pairs=UNIT_PAIRS, fee=fee, max_orders=3)
    assert orders_of(result) == expected(rows)


def test_asset_on_target_does_not_stop_the_others() -> None:
    holdings = {"A": "50", "B": "0", "EUR": "50"}
    targets = {"A": "50", "B": "25", "EUR": "25"}
    result = run(holdings, targets, quotes=UNIT, pairs=UNIT_PAIRS, threshold=D(0))
    assert orders_of(result) == expected([("buy", "B", "25")])
    assert result.skipped == ()


# --- drift bands ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "target", "band_abs", "band_rel", "out"),
    [
        pytest.param({"A": "40"}, {"A": "40"}, None, None, True, id="no-bands-always-plans"),
        pytest.param({"A": "45"}, {"A": "40"}, "5", None, False, id="abs-at-edge"),
        pytest.param({"A": "45.01"}, {"A": "40"}, "5", None, True, id="abs-over"),
        pytest.param({"A": "34.99"}, {"A": "40"}, "5", None, True, id="abs-under"),
        pytest.param({"A": "35"}, {"A": "40"}, "5", None, False, id="abs-under-at-edge"),
        pytest.param({"A": "50"}, {"A": "40"}, None, "25", False, id="rel-at-edge"),
        pytest.param({"A": "50.01"}, {"A": "40"}, None, "25", True, id="rel-over"),
        pytest.param({"A": "29.99"}, {"A": "40"}, None, "25", True, id="rel-under"),
        pytest.param({"A": "12.6"}, {"A": "10"}, "5", "25", True, id="both-rel-trips"),
        pytest.param({"A": "12.4"}, {"A": "10"}, "5", "25", False, id="both-inside"),
        pytest.param({"A": "55.5"}, {"A": "50"}, "5", "25", True, id="both-abs-trips"),
        pytest.param({"A": "40", "B": "60"}, {"A": "40", "B": "54"}, "5", None, True, id="second"),
        pytest.param({}, {"A": "40"}, "5", None, True, id="missing-current-is-zero"),
        pytest.param({"A": "0.01"}, {"A": "0"}, None, "25", True, id="rel-zero-target"),
        pytest.param({"A": "0"}, {"A": "0"}, None, "25", False, id="rel-zero-target-at-zero"),
        pytest.param({"A": "40", "EUR": "9"}, {"A": "40"}, "5", None, False, id="only-targets"),
    ],
)
def test_out_of_band(
    current: dict[str, str],
    target: dict[str, str],
    band_abs: str | None,
    band_rel: str | None,
    out: bool,
) -> None:
    abs_band = None if band_abs is None else D(band_abs)
    rel_band = None if band_rel is None else D(band_rel)
    assert out_of_band(decimals(current), decimals(target), abs_band, rel_band) is out


def test_within_bands_plans_nothing_but_says_what_it_would_do() -> None:
    result = run(EXAMPLE_HOLDINGS, EXAMPLE_TARGETS, band_abs=D("33"))  # BTC is 32.73 pp over
    assert result.orders == ()
    assert skips_of(result) == [
        (symbol, side, "portfolio is within its drift bands") for side, symbol, _ in EXAMPLE_ORDERS
    ]
    assert result.expected_weights == result.current_weights
    assert result.estimated_fees == 0
    assert result.value == D(27500)


def test_within_bands_keeps_every_field() -> None:
    holdings = {"BTC": "0.5", "ETH": "0.42", "EUR": "1000"}
    targets = {"BTC": "85", "ETH": "5", "EUR": "10"}
    # €22050: BTC 5.70 pp over, ETH 0.24 pp (€52.50) under, cash 5.46 pp under.
    result = run(holdings, targets, threshold=D(100), band_abs=D(6))
    current = {
        "BTC": D(20000) * 100 / D(22050),
        "ETH": D(1050) * 100 / D(22050),
        "EUR": D(1000) * 100 / D(22050),
    }
    skipped = (
        Skip("ETH", "buy", D("52.5"), "deviation €52.50 below threshold €100.00"),
        Skip("BTC", "sell", D("1257.5"), "portfolio is within its drift bands"),
    )
    assert result == Plan(
        D(22050), current, decimals(targets), current, (), skipped, D(0), D(2205), None
    )
    beyond = run(holdings, targets, threshold=D(100), band_abs=D("5.5"))
    assert orders_of(beyond) == expected([("sell", "BTC", "0.0314375")])


@pytest.mark.parametrize(("band_rel", "orders"), [("82", 0), ("81", 4)])
def test_relative_band_decides_the_plan(band_rel: str, orders: int) -> None:
    # BTC is 81.8 % over its target and ADA 81.8 % under; the others are closer.
    result = run(EXAMPLE_HOLDINGS, EXAMPLE_TARGETS, band_rel=D(band_rel))
    assert len(result.orders) == orders


def test_out_of_band_trades_back_to_target_not_to_the_edge() -> None:
    result = run(EXAMPLE_HOLDINGS, EXAMPLE_TARGETS, band_abs=D("32"))
    assert orders_of(result) == expected(EXAMPLE_ORDERS)
    assert result.expected_weights == {**decimals(EXAMPLE_TARGETS), "EUR": D(0)}


# --- data-quality guard and validation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"quotes": {k: v for k, v in example_quotes().items() if k != "ETH"}}, "no quote for ETH"),
        ({"quotes": example_quotes(ETH=quote("0", "2500"))}, "quote for ETH is not positive"),
        ({"quotes": example_quotes(ETH=quote("2500", "0"))}, "quote for ETH is not positive"),
        ({"quotes": example_quotes(ETH=quote("-1", "-1"))}, "quote for ETH is not positive"),
        ({"quotes": example_quotes(ETH=quote("2501", "2499"))}, "quote for ETH is crossed"),
        (
            {"quotes": example_quotes(ADA=quote("0.5", age=timedelta(seconds=121)))},
            "quote for ADA is stale (0:02:01 old, limit 0:02:00)",
        ),
        (
            {
                "quotes": example_quotes(ADA=quote("0.5", age=timedelta(seconds=31))),
                "max_quote_age": timedelta(seconds=30),
            },
            "quote for ADA is stale",
        ),
        (
            {"quotes": example_quotes(SOL=quote("97.99", "102.01"))},
            "spread of SOL is 4.02%, limit 2.00%",
        ),
        (
            {"quotes": example_quotes(SOL=quote("99.4", "100.6")), "max_spread": D("0.01")},
            "spread of SOL is 1.20%, limit 1.00%",
        ),
        (
            {"pairs": {k: v for k, v in example_pairs().items() if k != "SOL"}},
            "no SOL/EUR pair rules",
        ),
        (
            {"pairs": example_pairs(SOL=pair("SOL", quote="USD"))},
            "pair SOLUSD is quoted in USD, not EUR",
        ),
    ],
)
def test_bad_market_data_aborts(kwargs: dict[str, Any], reason: str) -> None:
    result = run(EXAMPLE_HOLDINGS, EXAMPLE_TARGETS, **kwargs)
    assert result.aborted is not None
    assert result.aborted.startswith(reason)
    targets = {**decimals(EXAMPLE_TARGETS), "EUR": D(0)}
    assert result == Plan(D(0), {}, targets, {}, (), (), D(0), D(0), result.aborted)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"quotes": example_quotes(ADA=quote("0.5", age=timedelta(seconds=120)))},
        {"quotes": example_quotes(ADA=quote("0.5", age=timedelta(seconds=-5)))},
        {"quotes": example_quotes(SOL=quote("99", "101"))},  # exactly 2 %
        {"quotes": example_quotes(SOL=quote("99.5", "100.5")), "max_spread": D("0.01")},
        {"quotes": {**example_quotes(), "DOGE": quote("0", age=timedelta(days=9))}},
    ],
    ids=["age-at-limit", "clock-skew", "spread-at-limit", "custom-spread-at-limit", "non-target"],
)
def test_acceptable_market_data_plans(kwargs: dict[str, Any]) -> None:
    result = run({**EXAMPLE_HOLDINGS, "DOGE": "5"}, EXAMPLE_TARGETS, **kwargs)
    assert result.aborted is None
    assert len(result.orders) == 4


def test_asset_not_held_still_needs_data() -> None:
    quotes = {k: v for k, v in example_quotes().items() if k != "ADA"}
    result = run({"BTC": "1"}, EXAMPLE_TARGETS, quotes=quotes)
    assert result.aborted == "no quote for ADA"


@pytest.mark.parametrize(
    ("targets", "kwargs", "fee", "message"),
    [
        ({"BTC": "101", "ETH": "-1"}, {}, "0", "target weight of ETH is negative: -1"),
        ({"BTC": "60", "ETH": "39.98"}, {}, "0", "target weights sum to 99.98, not 100"),
        ({"BTC": "60", "ETH": "40.02"}, {}, "0", "target weights sum to 100.02, not 100"),
        ({"BTC": "50", "EUR": "30"}, {}, "0", "target weights sum to 80, not 100"),
        ({"BTC": "100"}, {"threshold": D("-1")}, "0", "threshold is negative: -1"),
        ({"BTC": "100"}, {"max_orders": 0}, "0", "max_orders must be at least 1, not 0"),
        ({"BTC": "100"}, {}, "-0.001", "fee rate must be a fraction in [0, 1), not -0.001"),
        ({"BTC": "100"}, {}, "1", "fee rate must be a fraction in [0, 1), not 1"),
    ],
)
def test_invalid_rules_raise(
    targets: dict[str, str], kwargs: dict[str, Any], fee: str, message: str
) -> None:
    with pytest.raises(ValueError) as error:
        run(EXAMPLE_HOLDINGS, targets, fee=fee, **kwargs)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("targets", "kwargs"),
    [
        ({"BTC": "60", "ETH": "39.99"}, {}),
        ({"BTC": "60", "ETH": "40.01"}, {}),
        ({"BTC": "100", "ETH": "0"}, {"threshold": D(0), "max_orders": 1}),
    ],
)
def test_valid_edges_accepted(targets: dict[str, str], kwargs: dict[str, Any]) -> None:
    assert run(EXAMPLE_HOLDINGS, targets, fee="0.9999", **kwargs).aborted is None


# --- size_buys after the sells filled ------------------------------------------------------------


def buy(symbol: str, volume: str) -> PlannedOrder:
    """A planned buy at €1."""
    v = D(volume)
    return PlannedOrder(symbol, f"{symbol}EUR", "buy", v, D(1), v, D(0), v)


BUYS = [buy("X", "100"), buy("Y", "50")]


@pytest.mark.parametrize(
    ("available", "fee", "quotes", "pairs", "rows", "skips"),
    [
        pytest.param("200", "0", UNIT, UNIT_PAIRS, [("X", "100"), ("Y", "50")], [], id="ample"),
        pytest.param("150", "0", UNIT, UNIT_PAIRS, [("X", "100"), ("Y", "50")], [], id="exact"),
        pytest.param("151.5", "0.01", UNIT, UNIT_PAIRS, [("X", "100"), ("Y", "50")], [], id="fee"),
        pytest.param("75", "0", UNIT, UNIT_PAIRS, [("X", "50"), ("Y", "25")], [], id="short"),
        pytest.param(
            "151.49",
            "0.01",
            UNIT,
            UNIT_PAIRS,
            [("X", "99.99339933"), ("Y", "49.99669966")],
            [],
            id="short-by-the-fee",
        ),
        pytest.param(
            "75",
            "0",
            UNIT,
            {**UNIT_PAIRS, "Y": pair("Y", "30")},
            [("X", "50")],
            [("Y", "volume 25 below ordermin 30 Y after sizing to €75.00 available")],
            id="short-below-ordermin",
        ),
        pytest.param(
            "75",
            "0",
            UNIT,
            {**UNIT_PAIRS, "Y": pair("Y", costmin="26")},
            [("X", "50")],
            [("Y", "cost €25.00 below costmin €26.00 after sizing to €75.00 available")],
            id="short-below-costmin",
        ),
        pytest.param(
            "-5",
            "0",
            UNIT,
            UNIT_PAIRS,
            [],
            [
                ("X", "volume rounds down to 0 X after sizing to €0.00 available"),
                ("Y", "volume rounds down to 0 Y after sizing to €0.00 available"),
            ],
            id="nothing-available",
        ),
        pytest.param(
            "150",
            "0",
            {**UNIT, "X": quote("2")},
            UNIT_PAIRS,
            [("X", "60"), ("Y", "30")],
            [],
            id="repriced-at-new-ask",
        ),
        pytest.param(
            "500",
            "0",
            {**UNIT, "X": quote("0.5", "0.5")},
            UNIT_PAIRS,
            [("X", "100"), ("Y", "50")],
            [],
            id="cheaper-never-buys-more-than-planned",
        ),
        pytest.param(
            "150",
            "0",
            {k: v for k, v in UNIT.items() if k != "Y"},
            UNIT_PAIRS,
            [("X", "100")],
            [("Y", "no usable quote for Y")],
            id="quote-gone",
        ),
        pytest.param(
            "150",
            "0",
            UNIT,
            {k: v for k, v in UNIT_PAIRS.items() if k != "X"},
            [("Y", "50")],
            [("X", "no usable quote for X")],
            id="pair-gone",
        ),
        pytest.param(
            "150",
            "0",
            {**UNIT, "X": quote("0", "0")},
            UNIT_PAIRS,
            [("Y", "50")],
            [("X", "no usable quote for X")],
            id="zero-ask",
        ),
        pytest.param(
            "150",
            "0",
            UNIT,
            {**UNIT_PAIRS, "Y": pair("Y", status="cancel_only")},
            [("X", "100")],
            [("Y", "market YEUR is cancel_only")],
            id="market-closed-meanwhile",
        ),
    ],
)
def test_size_buys(
    available: str,
    fee: str,
    quotes: dict[str, Quote],
    pairs: dict[str, PairRules],
    rows: list[tuple[str, str]],
    skips: list[tuple[str, str]],
) -> None:
    sized, skipped = size_buys(BUYS, D(available), quotes, pairs, D(fee))
    assert [(o.symbol, o.volume) for o in sized] == [(s, D(v)) for s, v in rows]
    assert [(s.symbol, s.reason) for s in skipped] == skips
    assert all(s.side == "buy" for s in skipped)
    assert sum(o.value + o.fee for o in sized) <= max(D(available), D(0))
    for order in sized:
        assert order.price == quotes[order.symbol].ask
        assert order.fee == order.value * D(fee)


def test_size_buys_skips_carry_values() -> None:
    pairs = {**UNIT_PAIRS, "Y": pair("Y", "30")}
    quotes = {k: v for k, v in UNIT.items() if k != "X"}
    _, skipped = size_buys([*BUYS, buy("Z", "40")], D(40), quotes, pairs, D(0))
    # X has no quote: its planned value. Y is scaled to 40/90 of 50 and is then too small.
    assert [(s.symbol, s.value) for s in skipped] == [("X", D(100)), ("Y", D("22.22222222"))]


# --- helpers and serialisation ---------------------------------------------------------------


def test_current_weights_at_mid_excluding_locked() -> None:
    holdings = {"BTC": "0.5", "EUR": "5000", "DOGE": "9"}
    quotes = {"BTC": quote("39900", "40100"), "ETH": quote("2500")}
    result = run(
        holdings, {"BTC": "60", "ETH": "20", "EUR": "20"}, quotes=quotes, locked={"BTC": "7"}
    )
    assert result.current_weights == {"BTC": D(80), "ETH": D(0), "EUR": D(20)}
    assert mid(quotes["BTC"]) == D(40000)


def test_as_dict_is_json_with_decimal_strings() -> None:
    result = run(EXAMPLE_HOLDINGS, EXAMPLE_TARGETS, fee="0.0026", threshold=D("2300"))
    data = result.as_dict()
    assert data["value"] == "27500.0"
    assert data["aborted"] is None
    assert data["orders"][0] == {
        "symbol": "BTC",
        "pair": "BTCEUR",
        "side": "sell",
        "volume": "0.22500000",
        "price": "40000",
        "value": "9000.00000000",
        "fee": "23.400000000000",
        "deviation": "9000.0",
    }
    assert data["skipped"] == [
        {
            "symbol": "ADA",
            "side": "buy",
            "value": "2250.0",
            "reason": "deviation €2250.00 below threshold €2300.00",
        }
    ]
    assert data["targetWeights"]["BTC"] == "40"
    assert data["cashReserve"] == "0.0"
    assert data["tradedValue"] == format(result.traded_value, "f")
    assert set(data) == {
        "value",
        "currentWeights",
        "targetWeights",
        "expectedWeights",
        "orders",
        "skipped",
        "estimatedFees",
        "cashReserve",
        "aborted",
        "tradedValue",
        "notes",
    }
    assert json.loads(json.dumps(data)) == data


def test_as_dict_of_an_empty_account_has_decimal_zeros() -> None:
    data = run({}, EXAMPLE_TARGETS).as_dict()
    assert (data["estimatedFees"], data["tradedValue"]) == ("0", "0")
    assert (D(data["value"]), D(data["cashReserve"])) == (D(0), D(0))
    assert {type(v) for v in (data["value"], data["cashReserve"])} == {str}
    assert set(data["currentWeights"].values()) == {"0"}
    assert (data["orders"], data["skipped"]) == ([], [])


def test_as_dict_never_uses_exponents() -> None:
    result = one_asset("1", "40000", ordermin="0.00005")
    assert result.as_dict()["skipped"][0]["value"] == "1.00000000"
    tiny = Plan(D("1E-7"), {}, {}, {}, aborted="x").as_dict()
    assert tiny["value"] == "0.0000001"
