"""Balances from BalanceEx rows: Kraken Rewards (.F) rows are holdings, bonded rows are not.

Kraken spends `XBT.F` through XBT, so it pools with the spot row; `.S`, `.M`, `.B`, `.P` and
unknown suffixes are counted apart and never sold. A hold never makes an amount negative.
"""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from rebalancerd.exchange.kraken.parse import balances
from rebalancerd.exchange.names import AssetNames, holding_of
from rebalancerd.exchange.paper import draw_spot_first
from rebalancerd.exchange.protocol import Balances

NAMES = AssetNames()

# The example reply of Kraken's "Get Extended Balance" documentation, as sent (JSON numbers).
KRAKEN_DOC_REPLY = """{"error": [], "result": {
    "ZUSD": {"balance": 25435.21, "hold_trade": 8249.76},
    "XXBT": {"balance": 1.2435, "hold_trade": 0.8423}}}"""

# A real account with Kraken Rewards on (freqtrade issue 11118, "Kraken: problems with
# 'rewards' enabled": its balances as ccxt listed Kraken's rows), written back as the BalanceEx
# rows they came from, plus bonded rows of the kinds Kraken lists beside them.
REWARDS_REPLY = {
    "AAVE": {"balance": "0.0000001300", "hold_trade": "0.0000000000"},
    "ADA": {"balance": "0.00000000", "hold_trade": "0.00000000"},
    "ADA.F": {"balance": "9.12487495", "hold_trade": "0.00000000"},
    "ALGO": {"balance": "0.00000000", "hold_trade": "0.00000000"},
    "ALGO.F": {"balance": "0.00287319", "hold_trade": "0.00000000"},
    "APT": {"balance": "0.81861200", "hold_trade": "0.00000000"},
    "ATOM.F": {"balance": "0.00347846", "hold_trade": "0.00000000"},
    "ZEUR": {"balance": "503.1542", "credit": "0.0000", "credit_used": "0.0000", "hold_trade": "0"},
    "DOT.S": {"balance": "12.3500000000", "hold_trade": "0.0000000000"},
    "ETH2.S": {"balance": "0.5000000000", "hold_trade": "0.0000000000"},
    "SOL.M": {"balance": "3.0000000000", "hold_trade": "0.0000000000"},
}


@pytest.mark.parametrize(
    ("symbol", "holding"),
    [
        ("BTC", "BTC"),
        ("BTC.F", "BTC"),
        ("USDT.F", "USDT"),
        ("EUR.F", "EUR"),
        ("DOT.S", None),
        ("BTC.M", None),
        ("SOL.B", None),
        ("DOT.P", None),
        ("USD.HOLD", None),
        ("NEW.Q", None),  # unknown suffix: never sold
        ("BTC.f", None),  # Kraken's suffixes are upper case; anything else is not understood
    ],
)
def test_which_rows_are_holdings(symbol: str, holding: str | None) -> None:
    assert holding_of(symbol) == holding


def test_real_reply_with_rewards_rows_parses_to_holdings() -> None:
    parsed = balances(REWARDS_REPLY, NAMES)
    assert parsed.tradable == {
        "AAVE": D("0.00000013"),
        "ADA": D("9.12487495"),
        "ALGO": D("0.00287319"),
        "APT": D("0.818612"),
        "ATOM": D("0.00347846"),
        "EUR": D("503.1542"),
    }
    assert parsed.locked == {"DOT.S": D("12.35"), "ETH2.S": D("0.5"), "SOL.M": D(3)}


def test_kraken_documentation_reply_subtracts_holds() -> None:
    parsed = balances(json.loads(KRAKEN_DOC_REPLY, parse_float=D)["result"], NAMES)
    assert parsed.tradable == {"USD": D("17185.45"), "BTC": D("0.4012")}
    assert parsed.locked == {"USD": D("8249.76"), "BTC": D("0.8423")}


@pytest.mark.parametrize(
    ("rows", "tradable", "locked"),
    [
        # A hold larger than the spot row (it drew on .F too) never makes a negative amount.
        ({"XXBT": ("0.01", "0.02")}, {"BTC": D(0)}, {"BTC": D("0.01")}),
        ({"XXBT": ("0.01", "0.02"), "XBT.F": ("0.1", "0")}, {"BTC": D("0.09")}, {"BTC": D("0.02")}),
        ({"XBT.F": ("0.5", "0")}, {"BTC": D("0.5")}, {}),
        ({"DOT.S": ("25", "0"), "DOT": ("1", "0")}, {"DOT": D(1)}, {"DOT.S": D(25)}),
        ({"ZEUR": ("100", "100")}, {"EUR": D(0)}, {"EUR": D(100)}),
    ],
)
def test_holds_pool_over_spot_and_rewards_rows(
    rows: dict[str, tuple[str, str]], tradable: dict[str, D], locked: dict[str, D]
) -> None:
    reply = {a: {"balance": b, "hold_trade": h} for a, (b, h) in rows.items()}
    parsed = balances(reply, NAMES)
    assert parsed == Balances(tradable=tradable, locked=locked)
    assert all(amount >= 0 for amount in parsed.tradable.values())


@pytest.mark.parametrize(
    ("deltas", "amounts", "expected"),
    [
        ({"BTC": D("-0.05")}, {"BTC": D("0.1")}, {"BTC": D("-0.05")}),
        (
            {"BTC": D("-0.05")},
            {"BTC": D("0.02"), "BTC.F": D(1)},
            {"BTC": D("-0.02"), "BTC.F": D("-0.03")},
        ),
        ({"BTC": D("-0.05")}, {"BTC.F": D(1)}, {"BTC": D(0), "BTC.F": D("-0.05")}),
        ({"BTC": D("-0.05")}, {"BTC": D("0.02")}, {"BTC": D("-0.05")}),  # short: ledger refuses
        ({"BTC": D("0.05")}, {"BTC.F": D(1)}, {"BTC": D("0.05")}),  # credits go to spot
    ],
)
def test_paper_debits_draw_on_spot_then_rewards(
    deltas: dict[str, D], amounts: dict[str, D], expected: dict[str, D]
) -> None:
    assert draw_spot_first(deltas, amounts) == expected
