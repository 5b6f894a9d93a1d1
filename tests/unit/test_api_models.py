"""The API's validation and schedule rules as pure functions: no database, no server."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from rebalancerd.api.bodies import HistoryQuery, PortfolioCreate, PortfolioUpdate
from rebalancerd.api.fields import KRAKEN_NAMES, check_weights
from rebalancerd.api.http import describe, dumps
from rebalancerd.api.openapi import openapi_document
from rebalancerd.api.plans import PlanJson
from rebalancerd.api.portfolios import fields_for_create, fields_for_update
from rebalancerd.api.replies import REPLIES, HistoryRecord, PortfolioReply
from rebalancerd.api.replies import Portfolio as PortfolioJson
from rebalancerd.planning.types import Plan, PlannedOrder, Skip
from rebalancerd.store import rows
from rebalancerd.store.rows import Portfolio

NOW = datetime(2025, 10, 20, 10, 0, tzinfo=UTC)
LATER = datetime(2025, 11, 1, 0, 0, tzinfo=UTC)
ANCHOR = datetime(2025, 10, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("weights", "stored"),
    [
        (
            {"BTC": 40, "ETH": 30, "SOL": 20, "ADA": 10},
            {"BTC": 40, "ETH": 30, "SOL": 20, "ADA": 10},
        ),
        ({"BTC": Decimal("33.33"), "ETH": Decimal("33.33"), "SOL": Decimal("33.33")}, None),
        ({"BTC": Decimal("50.005"), "ETH": 50}, {"BTC": 50.005, "ETH": 50}),  # within 0.01
        ({"BTC": Decimal("99.99"), "EUR": Decimal("0.02")}, None),
        ({"BTC": 0, "ETH": 100}, {"BTC": 0, "ETH": 100}),
        ({"BTC": Decimal("100.0")}, {"BTC": 100}),
        ({"BTC": 80, "EUR": 20}, {"BTC": 80, "EUR": 20}),
        ({"1INCH": 50, "DOGE": 50}, {"1INCH": 50, "DOGE": 50}),
    ],
)
def test_weights_accepted(weights: dict[str, Any], stored: dict[str, Any] | None) -> None:
    result = check_weights(weights)
    assert set(result) == set(weights)
    if stored is not None:
        assert result == stored
        assert all(type(v) is type(stored[k]) for k, v in result.items())


@pytest.mark.parametrize(
    ("weights", "says"),
    [
        ({"BTC": Decimal("100.011")}, "sum to 100"),
        ({"BTC": Decimal("49.98"), "ETH": 50}, "sum to 100"),
        ({"BTC": 150, "ETH": -50}, "must be >= 0"),
        ({"BTC": Decimal("1E+400"), "ETH": 0}, "sum to 100"),
        ({"BTC": float("nan")}, "finite"),
        ({"BTC": float("inf")}, "finite"),
        ({"BTC": Decimal("NaN")}, "finite"),
        ({"XETH": 100}, "ETH"),
        ({"XXDG": 100}, "DOGE"),
        ({"XDG": 100}, "DOGE"),
        ({"BTC.S": 100}, "plain ticker"),
        ({"": 100}, "plain ticker"),
        ({"EUR": 100}, "other than EUR"),
        ({f"A{i}": 1 for i in range(51)}, "at most 50"),
    ],
)
def test_weights_refused(weights: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        check_weights(weights)


def test_every_kraken_name_points_at_a_plain_ticker() -> None:
    assert KRAKEN_NAMES["XXBT"] == "BTC" and KRAKEN_NAMES["ZEUR"] == "EUR"
    assert all(plain not in KRAKEN_NAMES for plain in KRAKEN_NAMES.values())


def _create(**fields: Any) -> PortfolioCreate:
    return PortfolioCreate.model_validate({"name": "p", "targetWeights": {"BTC": 100}, **fields})


def test_create_defaults_are_the_original_s() -> None:
    fields = fields_for_create(_create(), NOW)
    assert (fields.rebalance_enabled, fields.rebalance_interval) == (False, "weekly")
    assert fields.rebalance_threshold == Decimal(10) and fields.account == "default"
    assert fields.next_rebalance_at is None and fields.schedule_anchor is None


@pytest.mark.parametrize(
    ("extra", "anchor", "first"),
    [
        ({"rebalanceInterval": "weekly"}, NOW, NOW),  # due at once, as the original's NULL was
        ({"rebalanceInterval": "Monthly"}, NOW, NOW),
        ({"rebalanceInterval": "30 10 * * *"}, NOW.replace(minute=30), NOW.replace(minute=30)),
        ({"nextRebalanceAt": "2025-11-01T01:00:00+01:00"}, LATER, LATER),
    ],
)
def test_an_enabled_create_is_scheduled(
    extra: dict[str, Any], anchor: datetime, first: datetime
) -> None:
    fields = fields_for_create(_create(rebalanceEnabled=True, **extra), NOW)
    assert (fields.schedule_anchor, fields.next_rebalance_at) == (anchor, first)
    assert fields.rebalance_interval == extra.get("rebalanceInterval", "weekly").lower()


def _stored(**changes: Any) -> Portfolio:
    base = Portfolio(
        id="p1", name="p", user_id=None, account="default", target_weights={"BTC": 100},
        rebalance_enabled=True, rebalance_interval="daily", rebalance_threshold=Decimal(10),
        max_orders_per_rebalance=None, last_rebalanced_at=None, next_rebalance_at=LATER,
        created_at=ANCHOR, updated_at=ANCHOR, schedule_anchor=ANCHOR,
    )  # fmt: skip
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("old", "patch", "anchor", "next_at"),
    [
        (_stored(), {"name": "x"}, ANCHOR, LATER),  # untouched schedule is kept
        (_stored(), {"rebalanceThreshold": 5}, ANCHOR, LATER),
        (_stored(), {"rebalanceEnabled": True}, ANCHOR, LATER),  # already enabled
        (_stored(), {"rebalanceInterval": "weekly"}, NOW, NOW),  # retimed
        (_stored(), {"scheduleTimezone": "Europe/Berlin"}, NOW, NOW),
        (_stored(), {"nextRebalanceAt": "2025-11-01T00:00:00Z"}, LATER, LATER),
        (_stored(rebalance_enabled=False), {"rebalanceEnabled": True}, NOW, NOW),  # enabling
        (_stored(), {"rebalanceEnabled": False}, ANCHOR, LATER),  # disabling keeps it
        (_stored(rebalance_enabled=False), {"nextRebalanceAt": None}, None, None),
        (
            _stored(rebalance_enabled=False),
            {"nextRebalanceAt": "2025-11-01T00:00:00Z"},
            LATER,
            LATER,
        ),
    ],
)
def test_update_restarts_the_schedule_only_when_it_should(
    old: Portfolio, patch: dict[str, Any], anchor: datetime | None, next_at: datetime | None
) -> None:
    fields = fields_for_update(old, PortfolioUpdate.model_validate({"id": old.id, **patch}), NOW)
    assert (fields.schedule_anchor, fields.next_rebalance_at) == (anchor, next_at)


def test_update_changes_only_what_was_sent() -> None:
    old = _stored(max_orders_per_rebalance=3, user_id="u")
    patch = PortfolioUpdate.model_validate({"id": "p1", "name": "new", "userId": None})
    fields = fields_for_update(old, patch, NOW)
    assert (fields.name, fields.user_id, fields.max_orders_per_rebalance) == ("new", None, 3)
    assert fields.target_weights == old.target_weights


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"from": "1900-01-01T00:00:00Z"}, datetime(1970, 1, 1, tzinfo=UTC)),
        ({"from": "0001-01-01T00:00:00+05:00"}, datetime(1970, 1, 1, tzinfo=UTC)),
        ({"from": "9999-12-31T23:59:59-05:00"}, datetime(9000, 1, 1, tzinfo=UTC)),
        ({"from": "2025-10-01"}, datetime(2025, 10, 1, tzinfo=UTC)),
        ({"from": "2025-10-01T12:00:00+02:00"}, datetime(2025, 10, 1, 10, tzinfo=UTC)),
    ],
)
def test_filter_bounds_are_utc_and_clamped(raw: dict[str, str], expected: datetime) -> None:
    assert HistoryQuery.model_validate(raw).from_ == expected


def test_errors_name_every_bad_field_in_one_line() -> None:
    with pytest.raises(ValidationError) as caught:
        PortfolioCreate.model_validate({"name": "", "targetWeights": {"BTC": 1}, "x": 1})
    text = describe(caught.value)
    assert "\n" not in text
    assert text.startswith("name: ") and "targetWeights: " in text and "x: unknown field" in text


def test_a_portfolio_reads_as_the_original_json() -> None:
    stored = _stored(
        rebalance_threshold=Decimal("10.50"), drift_band_abs=Decimal("2.0"), schedule_tz="UTC"
    )
    assert dumps(PortfolioJson.model_validate(stored, from_attributes=True).body()) == (
        b'{"id":"p1","name":"p","userId":null,"account":"default","targetWeights":{"BTC":100},'
        b'"rebalanceEnabled":true,"rebalanceInterval":"daily","rebalanceThreshold":10.5,'
        b'"maxOrdersPerRebalance":null,"lastRebalancedAt":null,'
        b'"nextRebalanceAt":"2025-11-01T00:00:00Z","createdAt":"2025-10-01T09:00:00Z",'
        b'"updatedAt":"2025-10-01T09:00:00Z","scheduleTimezone":"UTC","driftBandAbs":2,'
        b'"driftBandRel":null,"failureCount":0,'
        b'"executionMode":"market","makerTimeoutSeconds":120,"maxSlippageBps":50,'
        b'"approval":"auto","approvalTtlSeconds":3600,"approvalTolerancePct":1,'
        b'"maxTradePercent":null,"sellMode":"allow","priceJumpGuardPct":15}'
    )


def test_history_figures_are_json_numbers_and_times_end_in_z() -> None:
    record = rows.HistoryRecord(
        "h1", "p1", NOW, True, False, Decimal("1234.5600"), 1, 1, 0, Decimal("100"),
        [{"symbol": "BTC"}], None, "api", 12,
    )  # fmt: skip
    body = HistoryRecord.model_validate(record, from_attributes=True).body()
    assert (body["portfolioValue"], body["totalValueTraded"]) == (1234.56, 100)
    assert type(body["totalValueTraded"]) is int
    assert b'"executedAt":"2025-10-20T10:00:00Z"' in dumps(body)


def test_the_plan_model_reads_back_exactly_what_plan_as_dict_writes() -> None:
    order = PlannedOrder(
        "BTC", "XXBTZEUR", "buy", Decimal("0.001"), Decimal("60000.0"), Decimal("60"),
        Decimal("0.156"), Decimal("61.2"),
    )  # fmt: skip
    plan = Plan(
        Decimal("1000"), {"BTC": Decimal(0)}, {"BTC": Decimal(100)}, {"BTC": Decimal(6)},
        orders=(order,), skipped=(Skip("ETH", "sell", Decimal("1E-7"), "below ordermin"),),
    )  # fmt: skip
    written = plan.as_dict()
    assert PlanJson.model_validate(written).model_dump(by_alias=True) == written


def test_every_reply_field_is_documented_and_required() -> None:
    schemas = openapi_document()["components"]["schemas"]
    for model in REPLIES:
        names = {f.alias or name for name, f in model.model_fields.items()}
        schema = schemas[model.__name__]
        assert set(schema["properties"]) == names, model.__name__
        assert set(schema["required"]) == names, model.__name__
    assert "warnings" in schemas[PortfolioReply.__name__]["required"]
