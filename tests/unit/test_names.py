"""Kraken asset ids <-> plain symbols, table-driven."""

from __future__ import annotations

import pytest

from rebalancerd.exchange.names import AssetNames, split_suffix
from tests.fake_kraken_data import ASSETS

FROM_ASSETS = AssetNames.from_assets(
    {
        **ASSETS,
        "XXLM": {"altname": "XLM"},
        "XZEC": {"altname": "ZEC"},
        "ZUSD": {"altname": "USD"},
        "ADA.S": {"altname": "ADA.S"},
        "ETH2.S": {"altname": "ETH2.S"},
        "ETH2": {"altname": "ETH2"},
        "XTZ.S": {"altname": "XTZ.S"},
        "USD.HOLD": {"altname": "USD.HOLD"},
        "ZEUS": {"altname": "ZEUS"},  # a Z-named asset that is not a fiat
    }
)
BUILTIN = AssetNames()


@pytest.mark.parametrize(
    ("asset_id", "plain", "locked"),
    [
        ("XXBT", "BTC", False),
        ("XBT", "BTC", False),
        ("XETH", "ETH", False),
        ("XXDG", "DOGE", False),
        ("XDG", "DOGE", False),
        ("XXRP", "XRP", False),
        ("XXLM", "XLM", False),
        ("XZEC", "ZEC", False),
        ("ZEUR", "EUR", False),
        ("ZUSD", "USD", False),
        ("XTZ", "XTZ", False),  # starts with X, but is Tezos: never strip blindly
        ("ZEUS", "ZEUS", False),
        ("SOL", "SOL", False),
        ("ADA", "ADA", False),
        ("USDT", "USDT", False),
        ("DOT", "DOT", False),
        ("ETH2", "ETH2", False),
        ("DOT.S", "DOT.S", True),
        ("ADA.S", "ADA.S", True),
        ("XTZ.S", "XTZ.S", True),
        ("ETH2.S", "ETH2.S", True),
        ("XBT.M", "BTC.M", True),
        ("ETH.F", "ETH.F", False),  # Kraken Rewards: spent through ETH, so not locked
        ("XBT.F", "BTC.F", False),
        ("SOL.B", "SOL.B", True),
        ("DOT.P", "DOT.P", True),
        ("ETH.T", "ETH.T", True),
        ("USD.HOLD", "USD.HOLD", True),
        ("XDG.S", "DOGE.S", True),
        ("NEW.Q", "NEW.Q", True),  # unknown suffix: locked, never sold
    ],
)
def test_plain_symbol_and_lock(asset_id: str, plain: str, locked: bool) -> None:
    assert FROM_ASSETS.plain(asset_id) == plain
    assert FROM_ASSETS.is_locked(asset_id) is locked


@pytest.mark.parametrize(
    ("asset_id", "plain"),
    [
        ("XXBT", "BTC"),
        ("XXDG", "DOGE"),
        ("XXRP", "XRP"),
        ("ZEUR", "EUR"),
        ("XTZ", "XTZ"),
        ("XMR", "XMR"),
    ],
)
def test_builtin_table_works_before_assets_are_loaded(asset_id: str, plain: str) -> None:
    assert BUILTIN.plain(asset_id) == plain


@pytest.mark.parametrize(
    ("plain", "asset_id"),
    [
        ("BTC", "XXBT"),
        ("ETH", "XETH"),
        ("DOGE", "XXDG"),
        ("XRP", "XXRP"),
        ("EUR", "ZEUR"),
        ("USD", "ZUSD"),
        ("XTZ", "XTZ"),
        ("SOL", "SOL"),
        ("ADA", "ADA"),
        ("USDT", "USDT"),
        ("BTC.M", "XBT.M"),
        ("DOT.S", "DOT.S"),
        ("UNKNOWN", "UNKNOWN"),
    ],
)
def test_reverse_mapping(plain: str, asset_id: str) -> None:
    assert FROM_ASSETS.asset_id(plain) == asset_id


@pytest.mark.parametrize("asset_id", [*ASSETS, "XXLM", "ADA.S", "ETH2.S"])
def test_round_trip(asset_id: str) -> None:
    assert FROM_ASSETS.asset_id(FROM_ASSETS.plain(asset_id)) == asset_id


@pytest.mark.parametrize(
    ("asset_id", "expected"),
    [("DOT.S", ("DOT", "S")), ("USD.HOLD", ("USD", "HOLD")), ("XXBT", ("XXBT", None))],
)
def test_split_suffix(asset_id: str, expected: tuple[str, str | None]) -> None:
    assert split_suffix(asset_id) == expected
