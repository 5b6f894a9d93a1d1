"""Small builders for test data (real rows in the real database)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rebalancerd.store.portfolios import PortfolioFields
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import Portfolio


def fields(**overrides: Any) -> PortfolioFields:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "name": "Test portfolio",
        "user_id": None,
        "account": "default",
        "target_weights": {"BTC": 40, "ETH": 30, "SOL": 20, "ADA": 10},
        "rebalance_enabled": True,
        "rebalance_interval": "daily",
        "rebalance_threshold": Decimal(10),
        "max_orders_per_rebalance": None,
        "schedule_tz": None,
        "drift_band_abs": None,
        "drift_band_rel": None,
        "schedule_anchor": now,
        "next_rebalance_at": now,
    }
    values.update(overrides)
    if "next_rebalance_at" in overrides and "schedule_anchor" not in overrides:
        values["schedule_anchor"] = overrides["next_rebalance_at"]
    return PortfolioFields(**values)


async def make_portfolio(store: Store, **overrides: Any) -> Portfolio:
    return await store.create_portfolio(fields(**overrides))
