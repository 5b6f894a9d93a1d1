"""Schedule maths: when a portfolio's rebalance slots fall. Pure: no I/O, `now` is an argument.

A portfolio's slots form a series anchored at its first scheduled slot (`anchor`):

* ``hourly`` is a fixed 3600 s lattice from the anchor, whatever the zone.
* ``daily`` / ``weekly`` repeat the anchor's wall-clock time every 1 / 7 days and
  ``monthly`` on the anchor's day of month, clamped to the month's end (Jan 31 ->
  Feb 28/29 -> Mar 31: every month is counted from the anchor, so a short month
  never shifts the later ones). Wall clocks are read in the rule's zone; in UTC
  (the default) daily and weekly are exact 24 h / 168 h steps.
* A 5-field cron expression fires at its matching wall-clock times in the rule's zone,
  none before the anchor. The daemon's check interval (`next_check`) is cron in UTC.

After a run, the next slot comes from the lattice, not from "now + period": slots
missed while down coalesce into one run (`slot_after_run`). After a failure the retry
waits a bounded, growing backoff but never past the next regular slot.

DST, for every wall-clock rule (we map wall times to instants ourselves because
croniter 7 runs a repeated wall time twice on the fall-back night):

* A repeated wall time (fall back) is one slot, at its first occurrence.
* A skipped wall time (spring forward) is not lost: it runs at the instant the
  gap ends (02:30 in Berlin on 2026-03-29 runs at 03:00 CEST), as ISC cron does.
  Slots that fall in one gap collapse into that one run, so the series stays
  increasing and a search for "the first slot after t" stays monotone.
* Hence a local-zone ``0 * * * *`` runs 23 times on a spring-forward day and does
  not rerun the repeated hour; use ``hourly`` or UTC to run every real hour.
* An anchor given as the second reading of a repeated time stands for its first.
"""

from __future__ import annotations

import calendar
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final, Literal
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from rebalancerd.backoff import doubling

Kind = Literal["hourly", "daily", "weekly", "monthly", "cron"]

_FIXED: Final[dict[str, timedelta]] = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(weeks=1),
}
_NAMED: Final[dict[str, Kind]] = {
    "hourly": "hourly",
    "daily": "daily",
    "weekly": "weekly",
    "monthly": "monthly",
}
_EXPECTED: Final = "expected hourly, daily, weekly, monthly or a 5-field cron expression"
_MAX_TEXT: Final = 200
# A fixed start for the "can it ever fire" probe: parsing must not read the clock.
_PROBE_START: Final = datetime(2000, 1, 1)  # naive: croniter iterates wall time
_TICK: Final = timedelta(microseconds=1)
_CRONITER_PREFIX: Final = re.compile(r"^\[.*?\] is not acceptable[.,]?")


@dataclass(frozen=True, slots=True)
class ScheduleRule:
    """A parsed schedule: a named interval or a 5-field cron expression, in one IANA zone."""

    kind: Kind
    expression: str  # the interval name, or the cron expression with single spaces
    tz: str = "UTC"

    @property
    def zone(self) -> ZoneInfo:
        """The rule's time zone (ZoneInfo caches instances, so this is cheap)."""
        return ZoneInfo(self.tz)


def parse_rule(interval: str, tz: str | None = None) -> ScheduleRule:
    """Parse a portfolio's interval and optional zone; a bad one raises a one-line ValueError."""
    zone = _check_zone(tz)
    if not isinstance(interval, str):
        raise ValueError(f"schedule interval must be a string, got {type(interval).__name__}")
    text = " ".join(interval.split())
    if not text:
        raise ValueError(f"schedule interval is empty: {_EXPECTED}")
    kind = _NAMED.get(text.lower())
    if kind is not None:
        return ScheduleRule(kind, kind, zone)
    return ScheduleRule("cron", _check_cron(text), zone)


def next_slot(rule: ScheduleRule, anchor: datetime, after: datetime) -> datetime:
    """The first slot of the series anchored at `anchor` strictly after `after`, in UTC."""
    _require_aware(anchor=anchor, after=after)
    if rule.kind == "cron":
        # The series starts at the anchor: no fire before it, the anchor itself if it fires.
        return _next_cron(rule.expression, rule.zone, max(after, anchor - _TICK))
    if rule.kind == "monthly":
        zone: tzinfo = rule.zone
        first = _month_number(_wall(after, zone)) - _month_number(_wall(anchor, zone))
        return _first_on_lattice(zone, anchor, after, _add_months, first)
    period = _FIXED[rule.kind]
    # An hour is an hour: hourly ignores the zone so DST neither doubles nor drops one.
    zone = UTC if rule.kind == "hourly" else rule.zone
    # Every slot at or before after's wall time is not after it, so start one step past.
    first = (_wall(after, zone) - _wall(anchor, zone)) // period + 1
    return _first_on_lattice(zone, anchor, after, lambda base, k: base + k * period, first)


def slot_after_run(rule: ScheduleRule, anchor: datetime, slot: datetime, now: datetime) -> datetime:
    """The slot after a run of `slot` ending at `now`: missed slots coalesce, no drift."""
    _require_aware(slot=slot, now=now)
    return next_slot(rule, anchor, max(slot, now))


def next_check(cron: str, now: datetime) -> datetime:
    """The daemon's next periodic check (a UTC cron expression) strictly after `now`."""
    _require_aware(now=now)
    return _next_cron(check_cron(cron), UTC, now)


def check_cron(text: str) -> str:
    """The check interval's one validator (config, API and loop): a 5-field cron that fires.

    Returns the expression with its white space folded; raises ValueError saying what is wrong.
    """
    return _check_cron(" ".join(text.split()))


def backoff(
    failures: int,
    base: timedelta = timedelta(minutes=1),
    cap: timedelta = timedelta(hours=1),
) -> timedelta:
    """Delay after `failures` consecutive failed runs: base, 2*base, 4*base, ... up to cap."""
    if failures < 0:
        raise ValueError(f"failures must be >= 0, got {failures}")
    if failures == 0:
        doubling(0, base, cap)  # still refuses a bad base or cap
        return timedelta(0)
    return doubling(failures - 1, base, cap)


def retry_after_failure(
    rule: ScheduleRule, anchor: datetime, slot: datetime, now: datetime, failures: int
) -> datetime:
    """When to retry a failed run: after the backoff, but never later than the next slot."""
    if failures < 1:
        raise ValueError(f"a retry follows at least one failure, got failures={failures}")
    regular = slot_after_run(rule, anchor, slot, now)  # also rejects a naive `now`
    return min((now + backoff(failures)).astimezone(UTC), regular)


def _first_on_lattice(
    zone: tzinfo,
    anchor: datetime,
    after: datetime,
    nth: Callable[[datetime, int], datetime],
    first: int,
) -> datetime:
    """The first lattice slot nth(anchor wall, k), k >= max(first, 0), strictly after `after`."""
    base = _wall(anchor, zone)
    k = max(first, 0)
    # `first` is exact in UTC; DST can push the answer one or two steps further.
    while (slot := _wall_to_utc(nth(base, k), zone)) <= after:
        k += 1
    return slot


def _next_cron(expression: str, zone: tzinfo, after: datetime) -> datetime:
    """The first fire of a cron expression strictly after `after`, matched on `zone`'s clock."""
    # croniter iterates naive wall time (no DST quirks there); we map each match to
    # an instant. No wall time before after's own can map past `after`, so start there.
    fires = croniter(expression, _wall(after, zone))
    while True:
        slot = _wall_to_utc(fires.get_next(datetime), zone)
        if slot > after:
            return slot


def _wall_to_utc(wall: datetime, zone: tzinfo) -> datetime:
    """The instant a naive wall time stands for: its first occurrence, or the end of its gap."""
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(instant, zone) == wall:
        return instant
    return _gap_end(wall, zone)


def _gap_end(wall: datetime, zone: tzinfo) -> datetime:
    """The first instant after the DST gap that swallows `wall` (whole seconds, in UTC)."""
    # zoneinfo lists no transitions. Read with the new offset (fold=1) the wall time
    # lies before the jump, with the old one (fold=0) after it: bisect in between.
    lo = math.floor(wall.replace(tzinfo=zone, fold=1).timestamp())
    hi = math.ceil(wall.replace(tzinfo=zone, fold=0).timestamp())
    new_offset = datetime.fromtimestamp(hi, zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == new_offset:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _add_months(base: datetime, k: int) -> datetime:
    """The wall time `k` months after `base`, its day clamped to that month's length."""
    year, month = divmod(base.month - 1 + k, 12)
    year += base.year
    day = min(base.day, calendar.monthrange(year, month + 1)[1])
    return base.replace(year=year, month=month + 1, day=day)


def _month_number(wall: datetime) -> int:
    """A month count, so that month differences are plain subtraction."""
    return wall.year * 12 + wall.month


def _wall(instant: datetime, zone: tzinfo) -> datetime:
    """The naive wall-clock reading of `instant` in `zone`."""
    return instant.astimezone(zone).replace(tzinfo=None)


def _check_zone(tz: str | None) -> str:
    """The zone name if zoneinfo knows it (None means UTC)."""
    if tz is None:
        return "UTC"
    try:
        ZoneInfo(tz)
    except (KeyError, ValueError, OSError, TypeError):
        # KeyError: unknown key; ValueError/OSError: paths, NUL bytes, directories.
        raise ValueError(
            f"unknown time zone {_shown(tz)}: expected an IANA name such as 'Europe/Berlin'"
        ) from None
    return tz


@functools.lru_cache(maxsize=1024)
def _check_cron(text: str) -> str:
    """`text` if it is a 5-field cron expression that can fire."""
    if len(text) > _MAX_TEXT:
        raise ValueError(f"schedule interval is too long ({len(text)} characters, max {_MAX_TEXT})")
    fields = len(text.split(" "))
    if fields == 1:
        raise ValueError(f"unknown interval {_shown(text)}: {_EXPECTED}")
    if fields != 5:
        raise ValueError(
            f"cron expression {_shown(text)} has {fields} fields, expected 5 "
            "(minute hour day-of-month month day-of-week)"
        )
    try:
        croniter.expand(text, strict=True)  # strict: also rejects Feb 30 and the like
        # Some valid-looking expressions have no fire croniter can find (e.g. "0 0 30W 4 6#5");
        # rejecting them here keeps that failure out of the scheduler loop.
        croniter(text, _PROBE_START).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"cron expression {_shown(text)} never fires") from None
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        # croniter says "[<expr>] is not acceptable, <why>": keep only the why, on one line.
        reason = " ".join(_CRONITER_PREFIX.sub("", str(exc)).split())
        detail = f" ({reason})" if reason else ""
        raise ValueError(f"invalid cron expression {_shown(text)}{detail}") from None
    return text


def _shown(text: str) -> str:
    """User input quoted for a one-line message (repr escapes newlines), cut if long."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _require_aware(**values: datetime) -> None:
    """Reject naive datetimes: a naive time is ambiguous and would silently mean local time."""
    for name, value in values.items():
        if value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
