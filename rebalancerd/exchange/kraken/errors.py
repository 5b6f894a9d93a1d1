"""Kraken's error strings and transport failures, sorted by what the caller must do."""

from __future__ import annotations

import time
from collections.abc import Sequence
from enum import Enum

from rebalancerd.exchange.protocol import ExchangeError, FatalError, RejectedError, RetryableError


class Outcome(Enum):
    """What to do about a failed call."""

    RETRY = "retry"  # nothing happened; back off and try again
    RESIGN = "resign"  # refused before processing for its nonce; sign again with a fresh one
    REJECT = "reject"  # refused; record and skip
    FATAL = "fatal"  # the account cannot be used as configured
    AMBIGUOUS = "ambiguous"  # an order may or may not exist: look it up, never re-send


R, S, J, F, A = Outcome.RETRY, Outcome.RESIGN, Outcome.REJECT, Outcome.FATAL, Outcome.AMBIGUOUS

# (prefix, outcome for a read, outcome for AddOrder); first match wins, so specific first.
RULES: tuple[tuple[str, Outcome, Outcome], ...] = (
    ("EAPI:Invalid nonce", S, S),
    ("EAPI:Rate limit exceeded", R, R),
    ("EAPI:Invalid key", F, F),
    ("EAPI:Invalid signature", F, F),
    ("EAPI:Bad request", F, F),
    ("EGeneral:Too many requests", R, R),
    ("EGeneral:Internal error", R, A),
    ("EGeneral:Invalid arguments", J, J),
    ("EGeneral:Permission denied", F, F),
    ("EGeneral:Temporary lockout", F, F),
    ("EAuth:Rate limit exceeded", R, R),
    ("EAuth:Too many requests", R, R),
    ("EAuth:", F, F),  # Account temporary disabled / unconfirmed
    ("EAccount:Invalid permissions", F, F),
    ("ETrade:User Locked", F, F),
    ("ESession:Invalid session", F, F),
    ("EOrder:Rate limit exceeded", R, R),  # per-pair trading counter: refused, wait for decay
    ("EOrder:Domain rate limit exceeded", R, R),
    ("EOrder:", J, J),  # funds, ordermin, costmin, tick size, orders limit, unknown order...
    ("EService:Market in", J, J),  # cancel_only / post_only / limit_only: market not online
    ("EService:", R, A),  # Unavailable, Busy, Throttled, Deadline elapsed
    ("EDatabase:", R, A),
    ("EQuery:", J, J),
    ("ETrade:", J, J),
    ("EFunding:", J, J),
    ("EBM:", J, J),
)


def normalise(code: str) -> str:
    """Kraken sometimes writes `EService: Throttled: 17...`; drop the spaces after colons."""
    return ":".join(part.strip() for part in code.split(":"))


def outcome_of(code: str, *, placing: bool) -> Outcome:
    """The outcome of one Kraken error string, for a read or for an AddOrder."""
    code = normalise(code)
    for prefix, read, order in RULES:
        if code.startswith(prefix):
            return order if placing else read
    # Unknown: a read is not worth retrying forever; an order might have gone through.
    return Outcome.AMBIGUOUS if placing else Outcome.REJECT


def retry_after(code: str, now: float | None = None) -> float | None:
    """Seconds to wait for `EService:Throttled:<unix time>`, else None."""
    parts = normalise(code).split(":")
    if parts[:2] != ["EService", "Throttled"] or len(parts) < 3:
        return None
    try:
        until = float(parts[2])
    except ValueError:
        return None
    return max(0.0, until - (time.time() if now is None else now))


class KrakenFailure(Exception):
    """A call failed; raised inside the client only, then translated to base.py's tree."""


class ErrorReply(KrakenFailure):
    """Kraken answered with errors in its JSON envelope."""

    def __init__(self, method: str, errors: Sequence[str]) -> None:
        super().__init__(f"{method}: {', '.join(errors)}")
        self.method = method
        self.errors = list(errors)


class NoReply(KrakenFailure):
    """No usable answer: timeout, dropped connection, non-200 status, unreadable body."""

    def __init__(self, method: str, reason: str, *, sent: bool, status: int | None = None) -> None:
        super().__init__(f"{method}: {reason}")
        self.method = method
        self.sent = sent  # False only when the request surely never left (connect failed)
        self.status = status


def outcome_of_failure(failure: KrakenFailure, *, placing: bool) -> Outcome:
    """The outcome of a failed call."""
    if isinstance(failure, ErrorReply):
        return outcome_of(failure.errors[0], placing=placing)
    assert isinstance(failure, NoReply)
    if not failure.sent:
        return Outcome.RETRY
    if placing:
        return Outcome.AMBIGUOUS
    status = failure.status
    # A 4xx other than timeout/too-many means a wrong URL or a blocked client: fix the config.
    if status is not None and 400 <= status < 500 and status not in (408, 425, 429):
        return Outcome.FATAL
    return Outcome.RETRY


def to_error(failure: KrakenFailure, *, placing: bool = False) -> ExchangeError:
    """The base.py exception for a failure (AMBIGUOUS gives a plain ExchangeError)."""
    code = failure.errors[0] if isinstance(failure, ErrorReply) else None
    message = str(failure)
    outcome = outcome_of_failure(failure, placing=placing)
    if outcome in (Outcome.RETRY, Outcome.RESIGN):
        return RetryableError(message, code, retry_after(code) if code else None)
    if outcome is Outcome.REJECT:
        return RejectedError(message, code)
    if outcome is Outcome.FATAL:
        return FatalError(message, code)
    return ExchangeError(message, code)
