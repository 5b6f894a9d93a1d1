"""Claims: any number of schedulers sharing a database run each due slot exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from rebalancerd.config import SchedulerSettings
from rebalancerd.metrics import Metrics
from rebalancerd.runs.control import PortfolioBusy, PortfolioNotFound
from rebalancerd.runs.loop import Scheduler
from rebalancerd.store.portfolios import AccountInUseError
from rebalancerd.store.repository import Store
from tests.factories import make_portfolio


def scheduler(store: Store, owner: str, **settings: object) -> Scheduler:
    return Scheduler(SchedulerSettings(**settings), store, {}, Metrics(), owner=owner)  # type: ignore[arg-type]


async def test_two_schedulers_claim_thirty_portfolios_once_each(store: Store) -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    ids = {
        (await make_portfolio(store, account=f"acct{i}", next_rebalance_at=past)).id
        for i in range(30)
    }
    a, b = scheduler(store, "a"), scheduler(store, "b")

    async def drain(s: Scheduler) -> list[str]:
        got = []
        while claimed := await s.claim_due(3, []):
            got += [p.id for _, p in claimed]
        return got

    got_a, got_b = await asyncio.gather(drain(a), drain(b))
    assert sorted(got_a + got_b) == sorted(ids)
    assert not set(got_a) & set(got_b)
    assert got_a and got_b  # both really took part
    runs = await store.open_runs()
    assert len(runs) == 30
    assert {r.slot for r in runs} == {past}


async def test_claim_advances_next_slot_and_skips_running(store: Store) -> None:
    slot = datetime(2026, 1, 1, 12, tzinfo=UTC)
    p = await make_portfolio(store, next_rebalance_at=slot, rebalance_interval="daily")
    s = scheduler(store, "a")
    [(run, claimed)] = await s.claim_due(5, [])
    assert claimed.id == p.id and run.slot == slot
    assert (run.portfolio_id, run.account, run.owner) == (p.id, p.account, "a")
    assert (run.triggered_by, run.dry_run, run.status) == ("scheduler", False, "running")
    assert run.finished_at is None and run.lease_expires_at > datetime.now(UTC)
    assert [r.id for r in await store.open_runs()] == [run.id]
    fresh = await store.get_portfolio(p.id)
    assert fresh is not None and fresh.next_rebalance_at is not None
    # Missed days coalesce: the next slot is the first lattice point after now, not slot + 1 day.
    now = datetime.now(UTC)
    assert now < fresh.next_rebalance_at <= now + timedelta(days=1)
    assert fresh.next_rebalance_at.time() == slot.time()
    # Make it due again while its run is open: nobody may claim it.
    await store.set_next_rebalance(None, p.id, slot - timedelta(days=1))
    assert await s.claim_due(5, []) == []
    assert await scheduler(store, "b").claim_due(5, []) == []


async def test_a_slot_runs_once_even_if_due_again(store: Store) -> None:
    slot = datetime.now(UTC) - timedelta(hours=1)
    p = await make_portfolio(store, next_rebalance_at=slot, rebalance_interval="hourly")
    s = scheduler(store, "a")
    [(run, _)] = await s.claim_due(5, [])
    record = await s.runs.execute(run, p)  # no exchange for "default": fails, but finishes
    assert record is not None and not record.success
    await store.set_next_rebalance(None, p.id, slot)  # the same slot comes round again
    assert await s.claim_due(5, []) == []  # the unique (portfolio, slot) key holds
    # ... and the slot moves on, as after a crash between the claim and its advance_slots.
    fresh = await store.get_portfolio(p.id)
    assert fresh is not None and fresh.next_rebalance_at is not None
    assert fresh.next_rebalance_at > datetime.now(UTC)


async def test_a_schedule_edited_after_the_claim_keeps_its_new_slot(store: Store) -> None:
    slot = datetime.now(UTC) - timedelta(minutes=1)
    p = await make_portfolio(store, next_rebalance_at=slot, rebalance_interval="daily")
    [(claimed, run)] = await store.claim_due(
        datetime.now(UTC), 5, [], dry_run=True, owner="a", lease_seconds=30
    )
    assert claimed.id == p.id and run is not None and run.dry_run
    edited = datetime.now(UTC) + timedelta(minutes=5)
    await store.set_next_rebalance(None, p.id, edited)  # an edit between the two statements
    await store.advance_slots([(p.id, slot, slot + timedelta(days=1))])
    fresh = await store.get_portfolio(p.id)
    assert fresh is not None and fresh.next_rebalance_at == edited


async def test_busy_accounts_are_left_for_later(store: Store) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    await make_portfolio(store, account="x", next_rebalance_at=past)
    other = await make_portfolio(store, account="y", next_rebalance_at=past)
    claimed = await scheduler(store, "a").claim_due(5, ["x"])
    assert [p.id for _, p in claimed] == [other.id]


async def test_not_due_and_disabled_are_not_claimed(store: Store) -> None:
    await make_portfolio(
        store, account="f", next_rebalance_at=datetime.now(UTC) + timedelta(hours=1)
    )
    await make_portfolio(
        store, account="d", rebalance_enabled=False, next_rebalance_at=datetime.now(UTC)
    )
    assert await scheduler(store, "a").claim_due(5, []) == []


async def test_manual_trigger_while_running_is_busy(store: Store) -> None:
    p = await make_portfolio(store, next_rebalance_at=datetime.now(UTC))
    s = scheduler(store, "a")
    await s.claim_due(1, [])
    with pytest.raises(PortfolioBusy):
        await s.trigger(p.id)
    with pytest.raises(PortfolioNotFound):
        await s.trigger("no-such-id")


async def test_one_enabled_portfolio_per_account(store: Store) -> None:
    await make_portfolio(store, account="shared")
    with pytest.raises(AccountInUseError):
        await make_portfolio(store, account="shared")
    await make_portfolio(store, account="shared", rebalance_enabled=False)


async def test_wake_times_ignore_running_and_disabled_and_own_leases(store: Store) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    soon = datetime.now(UTC) + timedelta(minutes=3)
    later = soon + timedelta(hours=1)
    await make_portfolio(store, account="r", next_rebalance_at=past)
    await make_portfolio(store, account="a", next_rebalance_at=soon)
    await make_portfolio(store, account="b", next_rebalance_at=later)
    await make_portfolio(store, account="c", rebalance_enabled=False, next_rebalance_at=past)
    assert await store.wake_times("me") == (past, None, None)
    [(run, _)] = await scheduler(store, "other").claim_due(1, [])  # "r" runs now
    assert await store.wake_times("me") == (soon, run.lease_expires_at, None)
    assert await store.wake_times("other") == (soon, None, None)
    assert [r.id for r in await store.open_runs(other_than="me")] == [run.id]
    assert await store.open_runs(other_than="other") == []
