"""Backtest replays: hold is buy-and-hold, a frictionless schedule is the closed form, flags."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from rebalancerd.backtest import replay
from rebalancerd.backtest.command import FEE_TIERS
from rebalancerd.backtest.engine import decimal_close
from rebalancerd.backtest.strategies import parse_strategy
from tests.backtest_support import run

FRICTIONLESS = ("--fee", "0", "--spread-bps", "0", "--no-minimums", "--threshold", "0")


@pytest.mark.parametrize(
    ("weights", "costs"),
    [
        ("BTC=40,ETH=30,SOL=20,ADA=10", ()),
        ("BTC=50,ETH=50", ("--fee", "0.0026", "--spread-bps", "25")),
        ("BTC=60,SOL=30,EUR=10", ("--max-orders", "2")),
    ],
)
def test_hold_is_buy_and_hold_of_its_first_orders(weights: str, costs: tuple[str, ...]) -> None:
    outcome = run(
        "--simulate", "90", "--seed", "3", "--weights", weights, "--strategy", "hold", *costs
    )
    trace, prices = outcome.traces[0], outcome.prices
    start = prices.times[0]
    assert trace.fills and all(f.time == start for f in trace.fills)  # bought once, never again
    units = {f.order.symbol: f.order.volume for f in trace.fills}
    cash = outcome.setup.value - sum(f.order.value + f.order.fee for f in trace.fills)
    last = {s: decimal_close(prices.closes[s][-1]) for s in units}
    assert trace.final_value == cash + sum(units[s] * last[s] for s in units)  # exactly
    assert trace.rebalances == 0
    for k in range(0, len(prices), 97):
        held = float(cash) + sum(float(units[s]) * prices.closes[s][k] for s in units)
        assert trace.equity[k] == pytest.approx(held, rel=1e-12)


def test_frictionless_hold_is_the_weighted_price_ratio() -> None:
    outcome = run("--simulate", "200", "--seed", "9", "--weights", "BTC=70,ETH=30",
                  "--strategy", "hold", *FRICTIONLESS)  # fmt: skip
    c = outcome.prices.closes
    ratio = 0.7 * c["BTC"][-1] / c["BTC"][0] + 0.3 * c["ETH"][-1] / c["ETH"][0]
    assert float(outcome.traces[0].final_value) == pytest.approx(10000 * ratio, rel=1e-12)


def _slot_steps(times: list[int], strategy: str) -> list[int]:
    """Steps where the schedule fires, worked out from the calendar, not from the schedule code."""
    t0 = times[0]
    stamps = [datetime.fromtimestamp(t, UTC) for t in times]
    if strategy == "periodic:daily":
        return [k for k, t in enumerate(times) if k and (t - t0) % 86400 == 0]
    if strategy == "periodic:weekly":
        return [k for k, t in enumerate(times) if k and (t - t0) % (7 * 86400) == 0]
    assert strategy == "periodic:0 9 * * 1"  # Mondays 09:00 UTC
    return [k for k, s in enumerate(stamps) if k and s.weekday() == 0 and s.hour == 9]


@pytest.mark.parametrize(
    ("seed", "weights", "strategy"),
    [
        (1, (60, 40), "periodic:daily"),
        (2, (50, 50), "periodic:weekly"),
        (3, (80, 20), "periodic:0 9 * * 1"),
        (4, (35, 65), "periodic:daily"),
    ],
)
def test_frictionless_schedule_is_the_closed_form(
    seed: int, weights: tuple[int, int], strategy: str
) -> None:
    w_btc, w_eth = weights
    outcome = run("--simulate", "180", "--seed", str(seed), "--weights",
                  f"BTC={w_btc},ETH={w_eth}", "--strategy", strategy, *FRICTIONLESS)  # fmt: skip
    btc, eth = outcome.prices.closes["BTC"], outcome.prices.closes["ETH"]
    slots = _slot_steps(list(outcome.prices.times), strategy)
    value, last = 10000.0, 0
    for k in [*slots, len(btc) - 1]:  # V(k) = V(last) * sum of w_i * P_i(k) / P_i(last)
        value *= (w_btc * btc[k] / btc[last] + w_eth * eth[k] / eth[last]) / 100
        last = k
    trace = outcome.traces[0]
    assert trace.rebalances == len(slots)
    assert math.isclose(float(trace.final_value), value, rel_tol=1e-9)


@pytest.mark.parametrize("strategy", ["band:2", "band-rel:8"])
def test_the_band_prescreen_only_skips_steps_the_planner_would_not_trade(
    strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = ("--simulate", "60", "--seed", "11", "--weights", "BTC=50,ETH=30,SOL=20",
             "--strategy", strategy)  # fmt: skip
    screened = run(*flags).traces[0]
    monkeypatch.setattr(replay, "BAND_SLACK", math.inf)  # hand every step to the planner
    every_step = run(*flags).traces[0]
    assert screened.rebalances > 3
    assert screened.fills == every_step.fills
    assert screened.final_value == every_step.final_value


@pytest.mark.parametrize(
    ("text", "label", "kind", "band"),
    [
        ("hold", "hold", "hold", None),
        ("periodic:weekly", "periodic:weekly", "periodic", None),
        ("periodic:Monthly", "periodic:monthly", "periodic", None),
        ("periodic:0  9 * * 1", "periodic:0 9 * * 1", "periodic", None),
        ("band:5", "band:5", "band", Decimal(5)),
        ("band-rel:25", "band-rel:25", "band-rel", Decimal(25)),
        ("band:2.5%", "band:2.5%", "band", Decimal("2.5")),
    ],
)
def test_strategies_parse(text: str, label: str, kind: str, band: Decimal | None) -> None:
    strategy = parse_strategy(text)
    assert (strategy.label, strategy.kind, strategy.band) == (label, kind, band)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("weekly", "expected periodic:"),
        ("periodic:", "expected periodic:"),
        ("periodic:fortnightly", "5-field cron"),
        ("band:0", "above 0"),
        ("band:abc", "must be a number"),
        ("band-rel:101", "at most 100"),
        ("hold:1", "expected periodic:"),
    ],
)
def test_bad_strategies_say_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        parse_strategy(text)
    assert "\n" not in str(caught.value)


def test_the_starter_tier_is_the_daemons_default_fee() -> None:
    from rebalancerd.exchange.kraken.fees import DEFAULT_TAKER_FEE

    assert Decimal(FEE_TIERS["starter"]) == DEFAULT_TAKER_FEE
    rates = [Decimal(r) for r in FEE_TIERS.values()]
    assert rates == sorted(rates, reverse=True)  # more volume never costs more
