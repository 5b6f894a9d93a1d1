"""Exponential backoff, the one formula every retry uses. Pure: no I/O, no clock."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

Span = TypeVar("Span", float, timedelta)  # seconds, or a duration


def doubling(step: int, base: Span, cap: Span) -> Span:
    """`base * 2**step`, never more than `cap`: step 0 waits `base`, step 1 twice that."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if not base * 0 < base <= cap:  # base * 0: zero of either kind
        raise ValueError(f"backoff needs 0 < base <= cap, got base={base}, cap={cap}")
    # Past log2(cap/base) doublings the cap wins anyway; bounding the exponent keeps
    # base * 2**step from overflowing after thousands of steps.
    doublings = min(step, int(cap / base).bit_length())
    return min(cap, base * (1 << doublings))
