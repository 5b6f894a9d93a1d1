"""Maker execution (issue 16) in the real daemon: SIGTERM and kill -9 mid-chase leave no order
resting, record every fill, and place no client order id twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from rebalancerd.store.repository import Store
from rebalancerd.store.rows import Portfolio
from tests.daemon_proc import DaemonProcess
from tests.e2e.test_daemon_e2e import live_config, spawn, until
from tests.factories import make_portfolio
from tests.fake_kraken import FakeKraken, Order

pytestmark = pytest.mark.e2e
PAIR = "XXBTZEUR"


@pytest.fixture
async def fake() -> AsyncIterator[FakeKraken]:
    async with FakeKraken(fee_rate=Decimal("0.004")) as server:
        server.venue.maker_fee_rate = Decimal("0.0025")
        yield server


async def resting_half_filled(
    tmp_path: Path, database_url: str, store: Store, fake: FakeKraken, procs: list[DaemonProcess]
) -> tuple[DaemonProcess, Portfolio, Path, Order]:
    """A daemon whose maker run rests a buy that is half filled (the timeout is an hour)."""
    key, secret = fake.add_account({"ZEUR": "10000.0000"})
    config = live_config(tmp_path, fake, {"default": (key, secret)})
    daemon = spawn(procs, tmp_path, database_url, config)
    await daemon.wait_healthy()
    portfolio = await make_portfolio(
        store,
        target_weights={"BTC": 50, "EUR": 50},
        execution_mode="maker",
        maker_timeout_seconds=3600,
        next_rebalance_at=datetime.now(UTC),
    )
    await store.notify("portfolios")

    async def resting() -> bool:
        return bool(fake.resting())

    await until(resting, 20, "the maker order to rest")
    [order] = fake.resting()
    half = (order.volume / 2).quantize(Decimal("1E-8"))
    assert order.limit_price is not None
    fake.endpoints.matcher.limits.fill(order, half, order.limit_price, maker=True)
    return daemon, portfolio, config, order


async def test_kill_9_mid_chase_cancels_the_resting_order_on_restart(
    tmp_path: Path, database_url: str, store: Store, fake: FakeKraken, procs: list[DaemonProcess]
) -> None:
    daemon, portfolio, config, order = await resting_half_filled(
        tmp_path, database_url, store, fake, procs
    )
    daemon.kill()
    assert order.status == "open"  # left on the book by the dead daemon
    restarted = spawn(procs, tmp_path, database_url, config)
    await restarted.wait_healthy()

    async def reconciled() -> bool:
        return not await store.open_runs() and bool(await store.list_history(portfolio.id))

    await until(reconciled, 20, "the interrupted run to be reconciled")
    assert fake.resting() == [] and order.status == "canceled"
    [record] = await store.list_history(portfolio.id)
    assert not record.success and "interrupted" in (record.errors or [""])[0]
    [json] = record.orders
    assert json["clientOrderId"] == order.cl_ord_id and json["executionMode"] == "maker"
    assert Decimal(json["volumeExecuted"]) == order.volume_exec
    assert order.volume_exec == (order.volume / 2).quantize(Decimal("1E-8"))
    assert json["status"] == "canceled"
    assert max(Counter(o.cl_ord_id for o in fake.placed).values()) == 1


async def test_sigterm_mid_chase_cancels_records_and_exits_0_within_10_s(
    tmp_path: Path, database_url: str, store: Store, fake: FakeKraken, procs: list[DaemonProcess]
) -> None:
    daemon, portfolio, _, order = await resting_half_filled(
        tmp_path, database_url, store, fake, procs
    )
    started = time.monotonic()
    code = await asyncio.to_thread(daemon.terminate, 15)
    assert code == 0, daemon.log()
    assert time.monotonic() - started < 10
    assert fake.resting() == [] and order.status == "canceled"
    assert await store.open_runs() == []
    [record] = await store.list_history(portfolio.id)
    assert not record.success and any("shutting down" in e for e in record.errors or [])
    [json] = record.orders
    assert json["clientOrderId"] == order.cl_ord_id
    assert Decimal(json["volumeExecuted"]) == order.volume_exec
    assert order.volume_exec == (order.volume / 2).quantize(Decimal("1E-8"))
    assert len(fake.placed) == 1
