"""What the client commands print for people: EUR to the cent, volumes on their lot, % to 2."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from rebalancerd.cli.text import history_text, plan_text
from rebalancerd.decimals import eur, exact, fixed, plain


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (Decimal("9944.1451276844"), 2, "9944.15"),
        (Decimal("0.005"), 2, "0.01"),  # half up, as people round money
        (Decimal("0.0049"), 2, "0.00"),
        (Decimal("-3.456"), 2, "-3.46"),
        (Decimal(12), 2, "12.00"),
        (9944.1451276844, 2, "9944.15"),  # a JSON number
        ("27500.0", 2, "27500.00"),  # a JSON string
        (Decimal("33.333333"), 2, "33.33"),
        ("not a number", 2, "not a number"),
        (Decimal("1E+30"), 2, "1000000000000000000000000000000"),  # past the context: exact
    ],
)
def test_fixed(value: Any, places: int, text: str) -> None:
    assert fixed(value, places) == text


@pytest.mark.parametrize(
    ("value", "exact_text", "plain_text", "eur_text"),
    [
        (Decimal("0.50"), "0.50", "0.5", "€0.50"),
        (Decimal("5E-7"), "0.0000005", "0.0000005", "€0.00"),
        (Decimal("100.00"), "100.00", "100", "€100.00"),
        (Decimal("1234.5678"), "1234.5678", "1234.5678", "€1234.57"),
    ],
)
def test_decimal_texts(value: Decimal, exact_text: str, plain_text: str, eur_text: str) -> None:
    assert (exact(value), plain(value), eur(value)) == (exact_text, plain_text, eur_text)


RECORD = {
    "executedAt": "2026-12-04T10:00:00.123Z",
    "portfolioId": "p1",
    "success": True,
    "dryRun": False,
    "portfolioValue": 9944.1451276844,
    "ordersExecuted": 2,
    "ordersPlanned": 2,
    "totalValueTraded": 1234.5,
    "triggeredBy": "manual",
    "duration": 812,
    "errors": None,
}


def test_history_shows_eur_to_the_cent() -> None:
    line = history_text([RECORD]).splitlines()[1]
    assert "9944.15" in line and "1234.50" in line
    assert "9944.1451" not in line


PREVIEW = {
    "portfolioId": "p1",
    "portfolioValue": "27500.4567",
    "plan": {
        "currentWeights": {"BTC": "52.345678", "EUR": "47.654322"},
        "targetWeights": {"BTC": "40", "EUR": "60"},
        "expectedWeights": {"BTC": "40.0123", "EUR": "59.9877"},
        "orders": [
            {
                "side": "sell",
                "symbol": "BTC",
                "volume": "0.03700000",
                "price": "91234.4",
                "value": "3375.672800",
                "fee": "8.77674928",
            }
        ],
        "skipped": [{"side": "buy", "symbol": "ETH", "value": "3.333333", "reason": "below"}],
    },
    "errors": [],
}


def test_plan_shows_money_to_the_cent_volumes_on_their_lot_and_weights() -> None:
    text = plan_text(PREVIEW)
    assert text.splitlines()[0] == "Portfolio p1: value €27500.46"
    assert "0.03700000" in text  # the pair's 8 lot decimals, as planned
    assert "3375.67" in text and "3375.6728" not in text
    assert "8.78" in text and "3.33 " in text
    weights = text.split("Weights (%):")[1].split("Orders:")[0]
    assert "52.35" in weights and "40.00" in weights and "40.01" in weights
    assert "52.3456" not in weights
