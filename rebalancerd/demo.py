"""`rebalancerd demo`: two sample portfolios on paper accounts, priced by the simulated market."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rebalancerd.runs.slots import first_slot
from rebalancerd.store.portfolios import PortfolioFields
from rebalancerd.store.repository import Store

log = logging.getLogger(__name__)

SAMPLES: list[dict[str, Any]] = [
    {
        "name": "Balanced crypto",
        "account": "default",
        "target_weights": {"BTC": 40, "ETH": 30, "SOL": 20, "ADA": 10},
        "rebalance_interval": "*/5 * * * *",
    },
    {
        "name": "Majors with cash",
        "account": "sandbox",
        "target_weights": {"BTC": 50, "ETH": 30, "EUR": 20},
        "rebalance_interval": "hourly",
        "execution_mode": "maker",  # issue 16: rests at the touch, fills on the price path
    },
]


async def seed_demo(store: Store) -> None:
    """Create the sample portfolios once (an existing database is left as it is)."""
    if await store.list_portfolios():
        return
    now = datetime.now(UTC)
    for sample in SAMPLES:
        anchor, first = first_slot(sample["rebalance_interval"], None, now)
        await store.create_portfolio(
            PortfolioFields(
                name=sample["name"],
                user_id="demo",
                account=sample["account"],
                target_weights=sample["target_weights"],
                rebalance_enabled=True,
                rebalance_interval=sample["rebalance_interval"],
                rebalance_threshold=Decimal(10),
                max_orders_per_rebalance=None,
                schedule_tz=None,
                drift_band_abs=None,
                drift_band_rel=None,
                schedule_anchor=anchor,
                next_rebalance_at=first,
                execution_mode=sample.get("execution_mode", "market"),
            )
        )
    log.info("[Scheduler] Demo: created %d sample portfolios", len(SAMPLES))
