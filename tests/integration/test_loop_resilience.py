"""The loop against bad rows, wall-clock steps and warm-ups (issue 13 items 3 and 7)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from rebalancerd.config import SchedulerSettings
from rebalancerd.exchange.paper import MemoryLedger, PaperExchange
from rebalancerd.exchange.simulated import SimulatedMarket
from rebalancerd.metrics import Metrics
from rebalancerd.runs.loop import Scheduler
from rebalancerd.store.repository import Store
from tests.factories import make_portfolio

FAR_CHECK = "0 0 1 1 *"  # a check tick that never comes during a test


class SteppingClock:
    """The real clock plus an offset the test steps, as NTP or a resumed VM would."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def step(self, by: timedelta) -> None:
        self.offset += by


class WarmPaper(PaperExchange):
    """A paper account that records when warm() was called."""

    def __init__(self, name: str, clock: Callable[[], datetime]) -> None:
        super().__init__(name, SimulatedMarket(seed=1), MemoryLedger())
        self.clock = clock
        self.warmed: list[datetime] = []
        self.warm_called = asyncio.Event()

    async def warm(self) -> None:
        self.warmed.append(self.clock())
        self.warm_called.set()


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    """Poll a condition the system under test must reach within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


async def history_count(store: Store) -> int:
    value: int = await store.pool.fetchval("SELECT count(*) FROM rebalance_history")
    return value


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Scheduler], asyncio.Task[None]]]:
    """Start a scheduler's loop; stopped (and checked alive until then) at the end."""
    shutdown = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    def start(sched: Scheduler) -> asyncio.Task[None]:
        task = asyncio.create_task(sched.run(shutdown))
        tasks.append(task)
        return task

    yield start
    shutdown.set()
    await asyncio.gather(*tasks)


async def test_bad_stored_rows_fail_their_runs_and_every_other_portfolio_keeps_its_slots(
    store: Store, running: Callable[[Scheduler], asyncio.Task[None]]
) -> None:
    now = datetime.now(UTC)
    accounts = ["interval", "zone", "weights", "sum", "good"]
    ids = {
        name: (
            await make_portfolio(
                store, account=name, next_rebalance_at=now, rebalance_interval="hourly"
            )
        ).id
        for name in accounts
    }
    for sql, name in (
        ("UPDATE portfolios SET rebalance_interval = 'every blue moon' WHERE id = $1", "interval"),
        ("UPDATE portfolios SET schedule_tz = 'Mars/Olympus_Mons' WHERE id = $1", "zone"),
        ("UPDATE portfolios SET target_weights = '[1, 2]'::jsonb WHERE id = $1", "weights"),
        ("UPDATE portfolios SET target_weights = '{\"BTC\": 40}'::jsonb WHERE id = $1", "sum"),
    ):
        await store.pool.execute(sql, ids[name])
    market = SimulatedMarket(seed=1)
    ledger = MemoryLedger()
    exchanges = {name: PaperExchange(name, market, ledger) for name in accounts}
    sched = Scheduler(
        SchedulerSettings(check_interval=FAR_CHECK), store, exchanges, Metrics(), owner="t"
    )
    loop = running(sched)

    async def all_ran() -> bool:
        return await history_count(store) >= len(accounts)

    await wait_for(all_ran, "a run of every portfolio")
    assert not loop.done()  # the loop is alive and goes on
    expected = {
        "interval": "stored schedule is unusable: cron expression 'every blue moon'",
        "zone": "stored schedule is unusable: unknown time zone 'Mars/Olympus_Mons'",
        "weights": "stored target weights are unusable: expected an object",
        "sum": "stored target weights are unusable: weights sum to 40, not 100",
    }
    for name, pid in ids.items():
        [record] = await store.list_history(pid)
        fresh = await store.get_portfolio(pid)
        assert fresh is not None and fresh.next_rebalance_at is not None
        if name == "good":
            assert record.success, record.errors
            assert fresh.next_rebalance_at == now + timedelta(hours=1)  # its slot kept
            continue
        assert not record.success and (record.errors or [""])[0].startswith(expected[name])
        # Pushed out by a backoff: not retried in a hot loop, not dropped either.
        assert now + timedelta(seconds=30) < fresh.next_rebalance_at <= now + timedelta(hours=1)
    assert await history_count(store) == len(accounts)


async def test_a_wall_clock_step_runs_no_slot_twice_and_loses_none(
    store: Store, running: Callable[[Scheduler], asyncio.Task[None]]
) -> None:
    clock = SteppingClock()
    slot = (clock() + timedelta(hours=1)).replace(microsecond=0)
    p = await make_portfolio(
        store, account="x", next_rebalance_at=slot, rebalance_interval="hourly"
    )
    await store.pool.execute("UPDATE portfolios SET schedule_anchor = $2 WHERE id = $1", p.id, slot)
    # The whole host's clock steps: the prices' timestamps too.
    paper = PaperExchange("x", SimulatedMarket(seed=1, clock=clock), MemoryLedger())
    sched = Scheduler(
        SchedulerSettings(check_interval=FAR_CHECK),
        store,
        {"x": paper},
        Metrics(),
        owner="t",
        clock=clock,
        step_check=0.1,
    )
    running(sched)

    async def runs(n: int) -> bool:
        return await history_count(store) >= n

    async def asleep() -> bool:
        return sched._sleeping

    await wait_for(asleep, "the loop to sleep until the slot an hour away")
    # Forward: the slot is due at once on the new clock; the sleeping loop notices the step.
    clock.step(timedelta(hours=1, seconds=1))
    await wait_for(lambda: runs(1), "the run of the slot the step made due")
    # Back an hour (the slot just run is an hour ahead again), then forward past the next slot.
    clock.step(timedelta(hours=-1))
    await wait_for(asleep, "the loop to re-plan after the backward step")
    clock.step(timedelta(hours=2))
    await wait_for(lambda: runs(2), "the run of the next slot")
    clock.step(timedelta(hours=-1))
    await wait_for(asleep, "the loop to re-plan after the second backward step")
    slots = [r["slot"] for r in await store.pool.fetch("SELECT slot FROM rebalance_runs")]
    assert sorted(slots) == [slot, slot + timedelta(hours=1)]  # each slot once, none lost
    fresh = await store.get_portfolio(p.id)
    assert fresh is not None and fresh.next_rebalance_at == slot + timedelta(hours=2)
    assert await history_count(store) == 2
    assert all(h.success for h in await store.list_history(p.id))


async def test_the_exchange_of_a_due_account_is_warmed_once_just_before_its_slot(
    store: Store, running: Callable[[Scheduler], asyncio.Task[None]]
) -> None:
    clock = SteppingClock()
    slot = clock() + timedelta(seconds=2)
    await make_portfolio(store, account="x", next_rebalance_at=slot, rebalance_interval="hourly")
    idle = WarmPaper("idle", clock)  # due in a day: not warmed now
    await make_portfolio(
        store,
        account="idle",
        next_rebalance_at=slot + timedelta(days=1),
        rebalance_interval="daily",
    )
    paper = WarmPaper("x", clock)
    sched = Scheduler(
        SchedulerSettings(check_interval=FAR_CHECK),
        store,
        {"x": paper, "idle": idle},
        Metrics(),
        owner="t",
        clock=clock,
        warm_ahead=1.0,
    )
    running(sched)
    async with asyncio.timeout(10):
        await paper.warm_called.wait()
    assert await history_count(store) == 0  # before the run, not during it
    [warmed_at] = paper.warmed
    assert slot - timedelta(seconds=1) <= warmed_at < slot

    async def ran() -> bool:
        return await history_count(store) >= 1

    await wait_for(ran, "the run of the warmed slot")
    assert len(paper.warmed) == 1 and idle.warmed == []  # one call per account per slot
