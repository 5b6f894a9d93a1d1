"""Strictly increasing nonces for one Kraken API key."""

from __future__ import annotations

import time
from collections.abc import Callable


class NonceSource:
    """Strictly increasing nonces: max(last + 1, nanoseconds since the epoch)."""

    # Kraken wants each nonce of a key to exceed the previous one. The time base keeps that
    # true across restarts; `last + 1` keeps it true for bursts within one clock tick and when
    # the clock steps back while running; `floor` carries a persisted last nonce over a restart
    # whose clock stepped back. Nanoseconds fit Kraken's unsigned 64-bit nonce until 2554; once
    # a key has seen them, tools sending millisecond nonces on that key are refused.

    def __init__(self, clock: Callable[[], int] = time.time_ns, floor: int = 0) -> None:
        self._clock = clock
        self._last = floor

    @property
    def last(self) -> int:
        """The last nonce handed out (or the floor)."""
        return self._last

    def next(self) -> int:
        """A nonce greater than every one handed out before."""
        self._last = max(self._last + 1, self._clock())
        return self._last
