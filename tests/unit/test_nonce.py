"""Nonces strictly increase per key: bursts within one clock tick, clock steps back, restarts."""

from __future__ import annotations

import time

from rebalancerd.exchange.kraken.nonce import NonceSource


def test_many_nonces_in_one_tick_still_increase() -> None:
    source = NonceSource(clock=lambda: 1_700_000_000_000_000_000)
    nonces = [source.next() for _ in range(10_000)]
    assert nonces == sorted(set(nonces))
    assert nonces[0] == 1_700_000_000_000_000_000


def test_clock_stepping_back_does_not_repeat() -> None:
    ticks = iter([100, 200, 150, 150, 300])
    source = NonceSource(clock=lambda: next(ticks))
    assert [source.next() for _ in range(5)] == [100, 200, 201, 202, 300]


def test_restart_continues_above_the_previous_process() -> None:
    first = NonceSource()
    last = [first.next() for _ in range(1000)][-1]
    # A new process on the same key: time has moved on, so its nonces are higher.
    assert NonceSource().next() > last


def test_floor_carries_the_last_nonce_over_a_restart_with_a_slow_clock() -> None:
    source = NonceSource(clock=lambda: 5, floor=1_000)
    assert source.next() == 1_001
    assert source.last == 1_001


def test_default_is_nanoseconds_and_fits_in_64_bits() -> None:
    before = time.time_ns()
    nonce = NonceSource().next()
    assert before <= nonce <= time.time_ns()
    assert nonce < 2**64
