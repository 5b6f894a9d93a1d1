"""Retry policy for Kraken reads, and the look-up schedule for ambiguous orders."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from rebalancerd.backoff import doubling
from rebalancerd.exchange.kraken.errors import KrakenFailure, Outcome, outcome_of_failure, to_error
from rebalancerd.exchange.kraken.ratelimit import Sleep
from rebalancerd.exchange.protocol import RetryableError

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter for reads (never for AddOrder)."""

    attempts: int = 4
    base: float = 0.5
    cap: float = 8.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt + 1`."""
        wait = doubling(attempt, self.base, self.cap) * random.uniform(0.5, 1.0)
        return float(max(wait, retry_after or 0.0))


@dataclass(frozen=True)
class LookupPolicy:
    """Waits before each look-up of an ambiguous order (Kraken may list a new order late)."""

    delays: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)


DEFAULT_RETRY = RetryPolicy()
DEFAULT_LOOKUP = LookupPolicy()


async def with_retries(call: Callable[[], Awaitable[T]], policy: RetryPolicy, sleep: Sleep) -> T:
    """Run a read, retrying transient failures with bounded backoff; raise base.py errors."""
    attempt = 0
    resigned = False
    while True:
        try:
            return await call()
        except KrakenFailure as failure:
            outcome = outcome_of_failure(failure, placing=False)
            error = to_error(failure)
            if outcome is Outcome.RESIGN and not resigned:
                # Refused for its nonce, so not carried out (another process on this key was
                # first): sign it once more at once, outside the retry budget.
                resigned = True
                continue
            attempt += 1
            if outcome not in (Outcome.RETRY, Outcome.RESIGN) or attempt >= policy.attempts:
                raise error from None
            retry_after = error.retry_after if isinstance(error, RetryableError) else None
            delay = policy.delay(attempt - 1, retry_after)
            logger.warning("kraken %s; retry %d in %.2fs", failure, attempt, delay)
            await sleep(delay)
