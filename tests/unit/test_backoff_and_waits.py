"""The one backoff formula, and the waits for the first of several things."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebalancerd.aio import any_of, wait_first
from rebalancerd.backoff import doubling

Span = float | timedelta


@pytest.mark.parametrize(
    ("step", "base", "cap", "expected"),
    [
        (0, 1.0, 8.0, 1.0),
        (1, 1.0, 8.0, 2.0),
        (2, 1.0, 8.0, 4.0),
        (3, 1.0, 8.0, 8.0),
        (4, 1.0, 8.0, 8.0),  # capped
        (10_000, 1.0, 8.0, 8.0),  # no overflow after thousands of steps
        (0, 0.2, 2.0, 0.2),
        (3, 0.2, 2.0, 1.6),
        (4, 0.2, 2.0, 2.0),
        (0, timedelta(minutes=1), timedelta(hours=1), timedelta(minutes=1)),
        (5, timedelta(minutes=1), timedelta(hours=1), timedelta(minutes=32)),
        (6, timedelta(minutes=1), timedelta(hours=1), timedelta(hours=1)),
        (3000, timedelta(minutes=1), timedelta(hours=1), timedelta(hours=1)),
        (0, 5.0, 5.0, 5.0),  # base == cap is allowed
    ],
)
def test_doubling(
    step: int, base: float | timedelta, cap: float | timedelta, expected: object
) -> None:
    assert doubling(step, base, cap) == expected


@pytest.mark.parametrize(
    ("step", "base", "cap"),
    [(-1, 1.0, 2.0), (0, 0.0, 2.0), (0, -1.0, 2.0), (0, 3.0, 2.0), (0, timedelta(0), timedelta(1))],
)
def test_doubling_refuses_nonsense(
    step: int, base: float | timedelta, cap: float | timedelta
) -> None:
    with pytest.raises(ValueError, match=r"step|backoff"):
        doubling(step, base, cap)


@given(st.integers(0, 5000), st.integers(1, 10_000), st.integers(1, 10_000))
def test_doubling_grows_and_stays_within_bounds(step: int, base_ms: int, extra_ms: int) -> None:
    base, cap = base_ms / 1000, (base_ms + extra_ms) / 1000
    delay = doubling(step, base, cap)
    assert base <= delay <= cap
    assert doubling(step + 1, base, cap) >= delay
    if delay < cap:
        assert delay == base * 2**step


async def test_wait_first_returns_when_an_event_is_set() -> None:
    first, second = asyncio.Event(), asyncio.Event()
    waiter = asyncio.create_task(wait_first(first, second))
    await asyncio.sleep(0)
    assert not waiter.done()
    second.set()
    assert await asyncio.wait_for(waiter, 5) == set()


async def test_wait_first_reports_the_tasks_that_ended_and_leaves_the_rest() -> None:
    release = asyncio.Event()
    ended = asyncio.create_task(asyncio.sleep(0))
    running = asyncio.create_task(release.wait())
    done = await asyncio.wait_for(wait_first(asyncio.Event(), tasks=[ended, running]), 5)
    assert done == {ended}
    assert not running.done() and not running.cancelled()
    release.set()
    await running


async def test_wait_first_times_out_with_nothing_done() -> None:
    never = asyncio.Event()
    assert await wait_first(never, timeout=0.01) == set()
    assert not never.is_set()


async def test_any_of_follows_its_events_inside_the_block() -> None:
    stopping, lost = asyncio.Event(), asyncio.Event()
    async with any_of(stopping, lost) as either:
        await asyncio.sleep(0)
        assert not either.is_set()
        lost.set()
        await asyncio.wait_for(either.wait(), 5)
    assert either.is_set()
    assert len(asyncio.all_tasks()) == 1  # the watcher is gone with the block
