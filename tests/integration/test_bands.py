"""Drift bands: a check tick makes a portfolio that drifted out of its band due at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from rebalancerd.config import SchedulerSettings
from rebalancerd.exchange.kraken.client import KrakenClient
from rebalancerd.metrics import Metrics
from rebalancerd.runs.loop import Scheduler
from rebalancerd.runs.trade import RunPlan
from rebalancerd.store.repository import Store
from tests.factories import make_portfolio
from tests.fake_kraken import FakeKraken

# The fake account holds about 4 560 € BTC, 3 880 € ETH, 1 420 € SOL, 290 € ADA, 10 000 € EUR.
NEAR_CURRENT = {"BTC": 22.6, "ETH": 19.2, "SOL": 7.1, "ADA": 1.4, "EUR": 49.7}


@pytest.fixture
async def setup(store: Store) -> AsyncIterator[tuple[Scheduler, KrakenClient, FakeKraken]]:
    async with FakeKraken() as fake:
        client = KrakenClient(fake.url, fake.api_key, fake.api_secret)
        sched = Scheduler(SchedulerSettings(), store, {"default": client}, Metrics(), owner="t")
        yield sched, client, fake
        await client.close()


@pytest.mark.parametrize(
    ("weights", "band_abs", "band_rel", "moved"),
    [
        (NEAR_CURRENT, Decimal(1), None, 0),  # every asset within 1 pp
        ({"BTC": 40, "ETH": 30, "SOL": 20, "ADA": 10}, Decimal(5), None, 1),
        (NEAR_CURRENT, None, Decimal(50), 0),
        ({"BTC": 30, "ETH": 19.2, "SOL": 7.1, "ADA": 1.4, "EUR": 42.3}, None, Decimal(20), 1),
        ({"BTC": 30, "ETH": 19.2, "SOL": 7.1, "ADA": 1.4, "EUR": 42.3}, Decimal(10), None, 0),
    ],
)
async def test_out_of_band_portfolio_becomes_due_now(
    store: Store,
    setup: tuple[Scheduler, KrakenClient, FakeKraken],
    weights: dict[str, float],
    band_abs: Decimal | None,
    band_rel: Decimal | None,
    moved: int,
) -> None:
    sched, _, fake = setup
    later = datetime.now(UTC) + timedelta(days=1)
    p = await make_portfolio(
        store,
        target_weights=weights,
        drift_band_abs=band_abs,
        drift_band_rel=band_rel,
        next_rebalance_at=later,
    )
    assert await sched.check_bands() == moved
    fresh = await store.get_portfolio(p.id)
    assert fresh is not None and fresh.next_rebalance_at is not None
    assert (fresh.next_rebalance_at < later) == bool(moved)
    assert fake.placed == []  # a check never trades by itself


async def test_portfolios_without_bands_are_not_checked(
    store: Store, setup: tuple[Scheduler, KrakenClient, FakeKraken]
) -> None:
    sched, _, fake = setup
    await make_portfolio(store, next_rebalance_at=datetime.now(UTC) + timedelta(days=1))
    assert await sched.check_bands() == 0
    assert fake.calls("Balance") == fake.calls("BalanceEx") == []


async def test_a_tick_reads_each_portfolio_once_for_its_band_and_its_snapshot(
    store: Store, setup: tuple[Scheduler, KrakenClient, FakeKraken]
) -> None:
    sched, _, fake = setup
    later = datetime.now(UTC) + timedelta(days=1)
    banded = await make_portfolio(
        store, target_weights=NEAR_CURRENT, drift_band_abs=Decimal(1), next_rebalance_at=later
    )
    planned: dict[str, RunPlan | None] = {}
    assert await sched.check_bands(planned) == 0
    assert set(planned) == {banded.id}
    reads = len(fake.calls("BalanceEx"))
    assert reads == 1
    assert await sched.take_snapshots(planned) == 1  # the drift check's planning, reused
    assert len(fake.calls("BalanceEx")) == reads
    [snapshot] = await store.list_snapshots(banded.id, None, None, 10)
    assert snapshot.kind == "tick"
