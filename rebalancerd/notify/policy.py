"""When to retry a delivery, and when to stop. Pure: no I/O, no clock, no randomness of its own."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from rebalancerd.backoff import doubling

Verdict = Literal["delivered", "retry", "give_up"]
RETRYABLE_4XX = (408, 429)  # Request Timeout, Too Many Requests: the receiver asks us to retry
JITTER = 0.25  # each delay is spread over ±25 %, so receivers coming back are not stampeded


def verdict(status: int | None) -> Verdict:
    """What an answer means: None is no answer (timeout, refused), to be retried.

    2xx delivered; 3xx given up (redirects are never followed: a webhook URL that moved is a
    configuration to fix, and following one would send the signed body somewhere unchecked);
    4xx given up except 408/429; 5xx and anything else retried.
    """
    if status is None:
        return "retry"
    if 200 <= status < 300:
        return "delivered"
    if 300 <= status < 400:
        return "give_up"
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        return "give_up"
    return "retry"


def retry_delay(
    attempt: int, initial: float, maximum: float, rand: float, retry_after: float | None = None
) -> float:
    """Seconds before the attempt after `attempt` (1-based): `initial`, then doubling up to
    `maximum`, spread by the jitter (`rand` in [0, 1)); at least what Retry-After asked for."""
    base = doubling(max(attempt - 1, 0), initial, maximum)
    delay = min(maximum, base * (1 - JITTER + 2 * JITTER * rand))
    if retry_after is not None:
        delay = max(delay, min(retry_after, maximum))
    return delay


def gives_up(created_at: datetime, now: datetime, delay: float, give_up_after_hours: float) -> bool:
    """True when the next attempt would fall past the event's retry window."""
    return now + timedelta(seconds=delay) > created_at + timedelta(hours=give_up_after_hours)
