"""Pure parts of the dashboard: drift and attention, snapshot fields, asset names, the tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from rebalancerd.api.dashboard import drift
from rebalancerd.api.web_site import hashed_name
from rebalancerd.config import ConfigError, load_settings
from rebalancerd.exchange.protocol import Quote
from rebalancerd.runs.snapshots import after_fills, fields_of
from rebalancerd.store.rows import Portfolio
from rebalancerd.store.snapshots import Snapshot

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def portfolio(band_abs: str | None = None, band_rel: str | None = None) -> Portfolio:
    return Portfolio(
        id="p", name="p", user_id=None, account="default",
        target_weights={"BTC": 60, "ETH": 40}, rebalance_enabled=True,
        rebalance_interval="daily", rebalance_threshold=Decimal(10),
        max_orders_per_rebalance=None, last_rebalanced_at=None, next_rebalance_at=None,
        created_at=NOW, updated_at=NOW,
        drift_band_abs=None if band_abs is None else Decimal(band_abs),
        drift_band_rel=None if band_rel is None else Decimal(band_rel),
    )  # fmt: skip


def snapshot(weights: dict[str, str]) -> Snapshot:
    return Snapshot(1, "p", NOW, "tick", Decimal(100), dict(weights), {}, None)


@pytest.mark.parametrize(
    ("weights", "band_abs", "band_rel", "expected"),
    [
        ({"BTC": "60", "ETH": "40"}, None, None, (0.0, "BTC", False)),
        ({"BTC": "66", "ETH": "34"}, None, None, (6.0, "BTC", False)),  # no band: never "outside"
        ({"BTC": "66", "ETH": "34"}, "5", None, (6.0, "BTC", True)),
        ({"BTC": "64", "ETH": "36"}, "5", None, (4.0, "BTC", False)),
        ({"BTC": "55", "ETH": "37", "EUR": "8"}, None, "10", (8.0, "EUR", False)),  # cash counts
        ({"BTC": "60", "ETH": "30", "EUR": "10"}, "20", None, (-10.0, "ETH", False)),
    ],
)
def test_drift_is_the_largest_gap_and_outside_only_with_a_band(
    weights: dict[str, str],
    band_abs: str | None,
    band_rel: str | None,
    expected: tuple[float, str, bool],
) -> None:
    assert drift(portfolio(band_abs, band_rel), snapshot(weights)) == expected


def test_no_snapshot_no_drift() -> None:
    assert drift(portfolio("5"), None) == (None, None, False)


def test_snapshot_fields_value_each_holding_at_mid() -> None:
    quote = Quote("XBTZEUR", Decimal(99), Decimal(101), Decimal(100), NOW)
    fields = fields_of(
        {"BTC": Decimal("66.666666666"), "EUR": Decimal("33.333333333")},
        Decimal("150.004"),
        {"BTC": Decimal("1.000"), "EUR": Decimal("50")},
        {"BTC": quote},
    )
    assert fields.value == Decimal("150.00")
    assert fields.weights == {"BTC": Decimal("66.6667"), "EUR": Decimal("33.3333")}
    assert fields.holdings["BTC"] == {
        "amount": Decimal(1),
        "value": Decimal("100.00"),
        "price": Decimal(100),
    }
    assert fields.holdings["EUR"]["value"] == Decimal("50.00")


def test_after_fills_moves_the_amounts_and_cash_at_the_same_prices() -> None:
    quote = Quote("XBTZEUR", Decimal(99), Decimal(101), Decimal(100), NOW)
    before = fields_of(
        {"BTC": Decimal(0), "EUR": Decimal(100)},
        Decimal(1000),
        {"BTC": Decimal(0), "EUR": Decimal(1000)},
        {"BTC": quote},
    )
    buy = {"symbol": "BTC", "side": "buy", "status": "filled", "volumeExecuted": "6",
           "cost": "606", "fee": "1.5"}  # fmt: skip
    after = after_fills(before, [buy])
    assert after.holdings["BTC"]["amount"] == Decimal(6)
    assert after.holdings["EUR"]["amount"] == Decimal("392.5")
    assert after.value == Decimal("992.50")  # 600 at mid + 392.50 cash: spread and fee are gone
    assert after.weights == {"BTC": Decimal("60.4534"), "EUR": Decimal("39.5466")}
    sell = {**buy, "side": "sell", "volumeExecuted": "6", "cost": "594", "fee": "1.5"}
    assert after_fills(after, [sell]).holdings["EUR"]["amount"] == Decimal("985")


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("app.js", b"x", "app.2d711642b726.js"),
        ("vendor/uPlot.min.css", b"x", "uPlot.min.2d711642b726.css"),
        ("vendor/uPlot.LICENSE", b"x", "uPlot.2d711642b726.LICENSE"),
        ("app.js", b"y", "app.a1fce4363854.js"),
    ],
)
def test_asset_names_carry_their_content_hash(name: str, body: bytes, expected: str) -> None:
    assert hashed_name(name, body) == expected


def _settings(env: dict[str, str]) -> object:
    return load_settings(None, {"HOME": "/nonexistent", **env})


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"REBALANCERD_READ_TOKEN": "r" * 20}, "needs http.api_token"),
        ({"REBALANCERD_API_TOKEN": "a" * 20, "REBALANCERD_READ_TOKEN": "short"}, "16 characters"),
        ({"REBALANCERD_API_TOKEN": "a" * 20, "REBALANCERD_READ_TOKEN": "a" * 20}, "must differ"),
    ],
)
def test_a_bad_read_token_is_a_configuration_error(env: dict[str, str], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        _settings(env)


def test_the_read_token_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    token = tmp_path / "read-token"
    token.write_text("r" * 24 + "\n")
    config = tmp_path / "config.toml"
    config.write_text(f'[http]\napi_token = "{"a" * 20}"\nread_token_file = "{token}"\n')
    settings = load_settings(config, {"HOME": "/nonexistent"})
    assert settings.http.read_token is not None
    assert settings.http.read_token.get_secret_value() == "r" * 24
    env = {"REBALANCERD_API_TOKEN": "a" * 20, "REBALANCERD_READ_TOKEN": "e" * 20}
    from_env = load_settings(None, {"HOME": "/nonexistent", **env})
    assert from_env.http.read_token is not None
    assert from_env.http.read_token.get_secret_value() == "e" * 20
