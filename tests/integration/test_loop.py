"""The scheduler loop in-process: failures back off, different accounts may run in parallel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from rebalancerd.config import SchedulerSettings
from rebalancerd.exchange.kraken.client import KrakenClient
from rebalancerd.exchange.paper import MemoryLedger, PaperExchange
from rebalancerd.exchange.protocol import Balances
from rebalancerd.exchange.simulated import SimulatedMarket
from rebalancerd.metrics import Metrics
from rebalancerd.runs.lifecycle import RunManager
from rebalancerd.runs.loop import RECHECK, Scheduler
from rebalancerd.store.repository import Store
from tests.factories import make_portfolio
from tests.fake_kraken import FakeKraken


@pytest.fixture
async def fake() -> AsyncIterator[FakeKraken]:
    async with FakeKraken(latency=0.2) as server:
        yield server


async def run_loop_until(sched: Scheduler, store: Store, runs: int, timeout: float) -> None:
    shutdown = asyncio.Event()
    loop = asyncio.create_task(sched.run(shutdown))
    try:
        async with asyncio.timeout(timeout):
            while await store.pool.fetchval("SELECT count(*) FROM rebalance_history") < runs:
                await asyncio.sleep(0.05)
    finally:
        shutdown.set()
        await loop


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_max_concurrency_runs_different_accounts_in_parallel(
    store: Store, fake: FakeKraken, concurrency: int
) -> None:
    second = fake.add_account({"ZEUR": "5000"})
    clients = {
        "a": KrakenClient(fake.url, fake.api_key, fake.api_secret),
        "b": KrakenClient(fake.url, *second),
    }
    past = datetime.now(UTC) - timedelta(seconds=1)
    for account in clients:
        await make_portfolio(
            store, account=account, next_rebalance_at=past, target_weights={"BTC": 50, "ETH": 50}
        )
    sched = Scheduler(
        SchedulerSettings(max_concurrency=concurrency), store, clients, Metrics(), owner="t"
    )
    await run_loop_until(sched, store, 2, 30)
    rows = await store.pool.fetch(
        "SELECT started_at, finished_at FROM rebalance_runs ORDER BY started_at"
    )
    assert len(rows) == 2
    overlapped = rows[1]["started_at"] < rows[0]["finished_at"]
    assert overlapped == (concurrency > 1)
    for client in clients.values():
        await client.close()


async def test_failed_run_backs_off_then_moves_on(store: Store) -> None:
    slot = datetime.now(UTC) - timedelta(minutes=1)
    p = await make_portfolio(
        store, account="nowhere", next_rebalance_at=slot, rebalance_interval="hourly"
    )
    sched = Scheduler(SchedulerSettings(), store, {}, Metrics(), owner="t")
    [(run, portfolio)] = await sched.claim_due(1, [])
    before = datetime.now(UTC)
    record = await sched.runs.execute(run, portfolio)
    assert record is not None and not record.success
    assert "not configured" in (record.errors or [""])[0]
    fresh = await store.get_portfolio(p.id)
    assert fresh is not None and fresh.failure_count == 1 and fresh.next_rebalance_at
    # Retried after a bounded pause, not at once and not never.
    assert before + timedelta(seconds=30) < fresh.next_rebalance_at
    assert fresh.next_rebalance_at <= before + timedelta(minutes=2)
    # Nothing is due now: the loop would sleep, not spin.
    assert await sched.claim_due(1, []) == []


async def test_stopped_scheduler_claims_nothing_and_start_resumes(store: Store) -> None:
    await make_portfolio(store, account="x", next_rebalance_at=datetime.now(UTC))
    sched = Scheduler(SchedulerSettings(), store, {}, Metrics(), owner="t")
    config = await sched.control("stop")
    assert not config.running
    assert (await store.scheduler_state()).running is False
    other = Scheduler(SchedulerSettings(), store, {}, Metrics(), owner="u")
    assert not (await other.refresh()).running  # every daemon obeys the shared state
    assert (await sched.control("restart")).running
    assert (await other.refresh()).running
    changed = await sched.control(
        "update-config", {"checkInterval": "*/5 * * * *", "dryRunMode": True}
    )
    assert changed.check_interval == "*/5 * * * *" and changed.dry_run
    with pytest.raises(ValueError, match="unknown action"):
        await sched.control("explode")
    for bad in ({"checkInterval": "every day"}, {"dryRunMode": "yes"}, {"enabled": 1}):
        with pytest.raises(ValueError):
            await sched.control("update-config", bad)
    assert (await sched.refresh()).check_interval == "*/5 * * * *"  # nothing was stored


async def test_a_notification_from_another_daemon_wakes_the_loop_and_its_hooks(
    store: Store,
) -> None:
    sched = Scheduler(SchedulerSettings(), store, {}, Metrics(), owner="t")
    woken = asyncio.Event()
    sched.wake_hooks.append(woken.set)
    shutdown = asyncio.Event()
    listener = asyncio.create_task(sched.listen(shutdown))
    try:
        async with asyncio.timeout(10):
            await woken.wait()  # the listener wakes once when it (re)connects
            woken.clear()
            await store.notify("portfolios")  # as another daemon's write would
            await woken.wait()
    finally:
        shutdown.set()
        await listener


async def test_a_portfolio_with_corrupt_stored_weights_fails_its_run_not_the_daemon(
    store: Store,
) -> None:
    p = await make_portfolio(store, account="x", next_rebalance_at=datetime.now(UTC))
    await store.pool.execute(
        "UPDATE portfolios SET target_weights = '[1, 2]'::jsonb WHERE id = $1", p.id
    )
    market = SimulatedMarket(seed=1)
    paper = PaperExchange("x", market, MemoryLedger())
    sched = Scheduler(SchedulerSettings(), store, {"x": paper}, Metrics(), owner="t")
    [(run, portfolio)] = await sched.claim_due(1, [])
    record = await sched.runs.execute(run, portfolio)
    assert record is not None and not record.success
    assert "stored target weights are unusable" in (record.errors or [""])[0]
    assert await store.open_runs() == []


async def test_a_dropped_connection_while_keeping_the_lease_neither_ends_the_run_nor_keeps_it_busy(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_portfolio(store, account="x", next_rebalance_at=datetime.now(UTC))
    paper = PaperExchange("x", SimulatedMarket(seed=1), MemoryLedger())
    reads = paper.balances

    async def slow_balances() -> Balances:
        await asyncio.sleep(0.35)  # long enough for the keeper to extend the lease twice
        return await reads()

    monkeypatch.setattr(paper, "balances", slow_balances)
    extend = store.extend_lease
    calls = 0

    async def flaky_extend(run_id: int, owner: str, lease_seconds: float) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise asyncpg.InterfaceError("connection was closed in the middle of operation")
        return await extend(run_id, owner, lease_seconds)

    monkeypatch.setattr(store, "extend_lease", flaky_extend)
    sched = Scheduler(SchedulerSettings(), store, {"x": paper}, Metrics(), owner="t")
    [(run, portfolio)] = await sched.claim_due(1, [])
    runs = RunManager(store, {"x": paper}, Metrics(), owner="t", lease_seconds=0.3)
    record = await runs.execute(run, portfolio)
    assert record is not None and calls >= 2  # the keeper went on after the error
    assert runs.active_count == 0 and runs.busy_accounts() == []


async def test_with_every_slot_taken_a_due_portfolio_waits_for_a_run_to_end(
    store: Store, fake: FakeKraken
) -> None:
    """Not a spin: the loop sleeps while its runs go on, and claims the rest when one ends."""
    fake.inject("BalanceEx", delay=1.0, times=2)  # the first two runs take a while
    clients = {}
    for account in ("a", "b", "c"):
        clients[account] = KrakenClient(fake.url, *fake.add_account({"ZEUR": "5000"}))
        await make_portfolio(
            store,
            account=account,
            next_rebalance_at=datetime.now(UTC) - timedelta(seconds=1),
            target_weights={"BTC": 50, "ETH": 50},
        )
    sched = Scheduler(SchedulerSettings(max_concurrency=2), store, clients, Metrics(), owner="t")
    shutdown = asyncio.Event()
    loop = asyncio.create_task(sched.run(shutdown))
    try:
        async with asyncio.timeout(10):
            while sched.runs.active_count < 2 or sched.next_wake is None:
                await asyncio.sleep(0.01)
        assert sched.next_wake > datetime.now(UTC)  # it planned to sleep, not to look again
        async with asyncio.timeout(30):
            while await store.pool.fetchval("SELECT count(*) FROM rebalance_history") < 3:
                await asyncio.sleep(0.05)
    finally:
        shutdown.set()
        await loop
    for client in clients.values():
        await client.close()


async def test_a_due_portfolio_another_daemon_holds_is_looked_at_again_soon(
    store: Store,
) -> None:
    """Due, a slot free, but its row locked by another daemon's claim: the loop neither spins
    on it nor forgets it; it looks again after RECHECK and claims it once the row is free."""
    due = datetime.now(UTC) - timedelta(seconds=1)
    p = await make_portfolio(store, account="x", next_rebalance_at=due)
    sched = Scheduler(SchedulerSettings(max_concurrency=2), store, {}, Metrics(), owner="t")
    shutdown = asyncio.Event()
    async with store.pool.acquire() as other, other.transaction():
        await other.execute("SELECT 1 FROM portfolios WHERE id = $1 FOR UPDATE", p.id)
        loop = asyncio.create_task(sched.run(shutdown))
        async with asyncio.timeout(10):
            while sched.next_wake is None:
                await asyncio.sleep(0.01)
        looked = datetime.now(UTC)
        assert due < sched.next_wake <= looked + timedelta(seconds=RECHECK)
    try:
        async with asyncio.timeout(10):  # the row is free: claimed at the next look
            while await store.pool.fetchval("SELECT count(*) FROM rebalance_runs") < 1:
                await asyncio.sleep(0.05)
    finally:
        shutdown.set()
        await loop


async def test_a_running_loop_takes_over_another_daemons_run_once_its_lease_lapses(
    store: Store,
) -> None:
    """The loop looks for orphans only while another daemon's run is open, and wakes for the
    lease's end: a run opened elsewhere after the loop went to sleep is still taken over."""
    p = await make_portfolio(store, account="x", rebalance_enabled=False)
    sched = Scheduler(SchedulerSettings(), store, {}, Metrics(), owner="t")
    shutdown = asyncio.Event()
    loop = asyncio.create_task(sched.run(shutdown))
    listener = asyncio.create_task(sched.listen(shutdown))  # as in the daemon
    try:
        async with asyncio.timeout(10):
            while sched.next_wake is None:  # a first pass: nothing open anywhere
                await asyncio.sleep(0.01)
        async with store.transaction() as conn:  # a daemon on another host opens a run
            run = await store.insert_run(conn, p, None, "api", False, "elsewhere:1:a", 1.0)
        assert run is not None
        await store.notify("runs")  # as its claim's commit would wake other daemons' loops
        async with asyncio.timeout(15):  # its lease lapses in 1 s; then this loop finishes it
            while (fresh := await store.get_run(run.id)) is None or fresh.finished_at is None:
                await asyncio.sleep(0.05)
        assert fresh.owner == "t"
    finally:
        shutdown.set()
        await asyncio.gather(loop, listener)
