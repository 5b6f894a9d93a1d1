"""The pure safety checks: the price-jump guard, an approved plan still holding, the global cap
setting, and how the planner applies sellMode and the caps (table-driven)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from rebalancerd.config import ConfigError, load_settings
from rebalancerd.planning.safety import approval_changes, new_marks, order_values, price_jumps
from rebalancerd.planning.types import Plan, PlannedOrder

D = Decimal
NOW = datetime(2025, 10, 20, 10, 0, tzinfo=UTC)


def ago(minutes: int) -> datetime:
    return NOW - timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("mark", "price", "limit", "blocked"),
    [
        ((D(100), ago(10)), D(120), D(15), True),  # +20 % in 10 min
        ((D(100), ago(10)), D(80), D(15), True),  # -20 %
        ((D(100), ago(10)), D(115), D(15), False),  # exactly the limit passes
        ((D(100), ago(10)), D("115.01"), D(15), True),
        ((D(100), ago(59)), D(150), D(15), True),
        ((D(100), ago(60)), D(150), D(15), False),  # an hour-old mark says nothing
        ((D(100), ago(10)), D(150), None, False),  # guard off
        (None, D(150), D(15), False),  # no mark yet
    ],
)
def test_price_jump_guard(
    mark: tuple[Decimal, datetime] | None, price: Decimal, limit: Decimal | None, blocked: bool
) -> None:
    marks = {} if mark is None else {"BTC": mark}
    reasons = price_jumps(marks, {"BTC": price, "ETH": D(3000)}, NOW, limit)
    assert bool(reasons) == blocked
    if blocked:
        assert reasons[0].startswith("BTC moved ") and "price-jump guard" in reasons[0]
    # A jumped price never becomes the next reference; every other price does.
    kept = new_marks(marks, {"BTC": price, "ETH": D(3000)}, NOW, limit)
    assert ("BTC" in kept) == (not blocked) and kept["ETH"] == D(3000)


def order(symbol: str, side: str, value: str) -> PlannedOrder:
    v = D(value)
    return PlannedOrder(symbol, f"{symbol}EUR", side, D(1), v, v, D(0), v)  # type: ignore[arg-type]


def plan_of(*orders: PlannedOrder, value: str = "10000") -> Plan:
    return Plan(D(value), {}, {}, {}, tuple(orders))


APPROVED = order_values(
    [
        {"symbol": "BTC", "side": "sell", "value": "1000"},
        {"symbol": "ETH", "side": "buy", "value": "900"},
    ]
)


@pytest.mark.parametrize(
    ("fresh", "tolerance", "stale_on"),
    [
        (plan_of(order("BTC", "sell", "1000"), order("ETH", "buy", "900")), D(1), []),
        (plan_of(order("BTC", "sell", "1099"), order("ETH", "buy", "801")), D(1), []),  # 99 < 100
        (plan_of(order("BTC", "sell", "1101"), order("ETH", "buy", "900")), D(1), ["BTC"]),
        (plan_of(order("BTC", "sell", "1000")), D(1), ["ETH"]),  # an order gone counts in full
        (
            plan_of(
                order("BTC", "sell", "1000"), order("ETH", "buy", "900"), order("ADA", "buy", "150")
            ),
            D(1),
            ["ADA"],
        ),
        (
            plan_of(order("BTC", "buy", "1000"), order("ETH", "buy", "900")),
            D(50),
            [],
        ),  # 1000 <= 5000
        (
            plan_of(order("BTC", "buy", "1000"), order("ETH", "buy", "900")),
            D(1),
            ["BTC", "BTC"],
        ),  # side turned
        (plan_of(order("BTC", "sell", "1000"), order("ETH", "buy", "900")), D(0), []),
    ],
)
def test_an_approved_plan_holds_within_the_tolerance(
    fresh: Plan, tolerance: Decimal, stale_on: list[str]
) -> None:
    changes = approval_changes(APPROVED, fresh, tolerance)
    assert [c.split()[1].rstrip(":") for c in changes] == stale_on


@pytest.mark.parametrize(
    ("value", "ok"), [("5000", True), ("0.5", True), ("0", False), ("-1", False)]
)
def test_global_trade_cap_setting(tmp_path: Path, value: str, ok: bool) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[safety]\nmax_trade_value_eur = {value}\n")
    env = {"REBALANCERD_STATE_DIR": str(tmp_path)}
    if ok:
        assert load_settings(path, env).safety.max_trade_value_eur == D(value)
    else:
        with pytest.raises(ConfigError, match=r"safety\.max_trade_value_eur"):
            load_settings(path, env)
