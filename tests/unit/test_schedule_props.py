"""Schedule maths, by property: slots are after, on the lattice, monotone, gap-free, DST-safe."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rebalancerd.schedule import (
    ScheduleRule,
    backoff,
    next_slot,
    parse_rule,
    retry_after_failure,
    slot_after_run,
)

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Sao_Paulo",  # DST began at midnight until 2019
    "Pacific/Chatham",  # +12:45 / +13:45
    "Europe/Dublin",  # "negative" DST in tzdata
    "Asia/Kolkata",  # no DST, half-hour offset
]
CRONS = [
    "0 * * * *",
    "*/15 * * * *",
    "30 2 * * *",
    "30 1 * * *",
    "0 0 * * *",
    "30 0 * * *",
    "15,45 2 * * *",
    "0 */6 * * *",
    "0 9 * * 1",
    "5 4 * * sun",
    "0 12 * * 1-5",
    "0 0 1 * *",
    "0 0 L * *",
]
FIXED = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(weeks=1)}
US = timedelta(microseconds=1)

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
)
zones = st.sampled_from(ZONES)
named = st.sampled_from(["hourly", "daily", "weekly", "monthly"])
named_rules = st.builds(parse_rule, named, zones)
cron_rules = st.builds(parse_rule, st.sampled_from(CRONS), zones)
rules = named_rules | cron_rules
gaps = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400))


def wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall-clock reading of an instant."""
    return instant.astimezone(zone).replace(tzinfo=None)


def reference_instant(local: datetime, zone: ZoneInfo) -> datetime:
    """The documented meaning of a wall time: its first occurrence, or the end of its gap."""
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if wall(first, zone) == local:
        return first
    # Not a wall time that exists: walk forward, minute by minute, to where the clock passes it.
    instant = local.replace(tzinfo=zone, fold=1).astimezone(UTC).replace(second=0, microsecond=0)
    while wall(instant, zone) < local:
        instant += timedelta(minutes=1)
    return instant


def monthly_slot(anchor: datetime, year: int, month: int) -> datetime:
    """The monthly series' slot in a month, computed from the anchor alone (UTC)."""
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def months_since(anchor: datetime, instant: datetime) -> int:
    """Calendar months from the anchor's month to the instant's."""
    return (instant.year - anchor.year) * 12 + instant.month - anchor.month


# --- every rule -----------------------------------------------------------------------------


@given(rules, instants, instants)
def test_next_slot_is_strictly_after_and_in_utc(
    rule: ScheduleRule, anchor: datetime, after: datetime
) -> None:
    slot = next_slot(rule, anchor, after)
    assert slot > after
    assert slot.tzinfo is UTC
    if rule.kind == "cron" or rule.tz == "UTC":
        assert slot >= anchor


@given(rules, instants, instants, gaps)
def test_next_slot_is_monotone(
    rule: ScheduleRule, anchor: datetime, after: datetime, gap: timedelta
) -> None:
    assert next_slot(rule, anchor, after) <= next_slot(rule, anchor, after + gap)


@given(rules, instants, instants, st.integers(min_value=0))
def test_no_slot_is_skipped(
    rule: ScheduleRule, anchor: datetime, after: datetime, pick: int
) -> None:
    first = next_slot(rule, anchor, after)
    second = next_slot(rule, anchor, first)
    between = first + timedelta(microseconds=pick % ((second - first) // US))
    # Anything from the first slot up to (not including) the second leads to the second,
    # and the first slot is reachable from just before it.
    assert next_slot(rule, anchor, between) == second
    assert next_slot(rule, anchor, first - US) == first


@given(rules, instants, instants, zones, zones)
def test_the_zone_inputs_are_given_in_does_not_matter(
    rule: ScheduleRule, anchor: datetime, after: datetime, zone_a: str, zone_b: str
) -> None:
    moved = next_slot(rule, anchor.astimezone(ZoneInfo(zone_a)), after.astimezone(ZoneInfo(zone_b)))
    assert moved == next_slot(rule, anchor, after)


# --- fixed periods and monthly, in UTC -----------------------------------------------------------


@given(st.sampled_from(sorted(FIXED)), instants, instants)
def test_fixed_periods_land_on_the_first_lattice_point_after(
    interval: str, anchor: datetime, after: datetime
) -> None:
    period = FIXED[interval]
    slot = next_slot(parse_rule(interval), anchor, after)
    assert (slot - anchor) % period == timedelta(0)
    assert slot >= anchor
    assert slot == anchor or slot - period <= after
    assert next_slot(parse_rule(interval), anchor, slot) == slot + period


@given(zones, instants, instants)
def test_hourly_is_a_fixed_hour_in_every_zone(tz: str, anchor: datetime, after: datetime) -> None:
    slot = next_slot(parse_rule("hourly", tz), anchor, after)
    assert (slot - anchor) % timedelta(hours=1) == timedelta(0)
    assert slot == anchor or slot - timedelta(hours=1) <= after


@given(instants, instants)
def test_monthly_keeps_the_anchor_day_clamped_and_time(anchor: datetime, after: datetime) -> None:
    slot = next_slot(parse_rule("monthly"), anchor, after)
    assert slot.day == min(anchor.day, calendar.monthrange(slot.year, slot.month)[1])
    assert slot.timetz() == anchor.timetz()
    assert months_since(anchor, slot) >= 0
    # the first such slot: the previous month's is not after `after`
    year, month = (slot.year, slot.month - 1) if slot.month > 1 else (slot.year - 1, 12)
    assert slot == anchor or monthly_slot(anchor, year, month) <= after
    # and the one after it is next month's
    following = next_slot(parse_rule("monthly"), anchor, slot)
    assert months_since(slot, following) == 1
    assert following == monthly_slot(anchor, following.year, following.month)


# --- wall-clock rules in a zone ---------------------------------------------------------------


@given(st.sampled_from(["daily", "weekly", "monthly"]), zones, instants, instants)
def test_zoned_intervals_keep_the_anchor_wall_time(
    interval: str, tz: str, anchor: datetime, after: datetime
) -> None:
    zone = ZoneInfo(tz)
    slot = next_slot(parse_rule(interval, tz), anchor, after)
    base = wall(anchor, zone)
    local = slot.astimezone(zone)
    assert local.fold == 0  # a repeated wall time runs at its first occurrence
    if interval == "monthly":
        day = min(base.day, calendar.monthrange(local.year, local.month)[1])
        intended = base.replace(year=local.year, month=local.month, day=day)
    else:
        intended = datetime.combine(local.date(), base.time())
    if interval == "weekly":
        assert (intended.date() - base.date()).days % 7 == 0
    # Either the slot shows the anchor's wall time, or that time did not exist that day
    # and the slot is where the clock jumped past it.
    assert slot == reference_instant(intended, zone)


@given(cron_rules, instants, instants)
def test_cron_slots_are_exactly_the_matching_wall_times(
    rule: ScheduleRule, anchor: datetime, after: datetime
) -> None:
    zone = rule.zone
    first = next_slot(rule, anchor, after)
    second = next_slot(rule, anchor, first)
    # Every wall-clock match near the two slots, each read as documented (croniter
    # iterates naive wall time, where there is no DST to get wrong).
    fires = croniter(rule.expression, wall(first, zone) - timedelta(hours=4))
    limit = wall(second, zone) + timedelta(hours=4)
    meant = set()
    while (match := fires.get_next(datetime)) <= limit:
        meant.add(reference_instant(match, zone))
    start = max(after, anchor - US)
    assert first in meant
    assert second in meant
    assert not [m for m in meant if start < m < first or first < m < second]


# --- across DST changes ---------------------------------------------------------------------------


TRANSITIONS = [
    ("Europe/Berlin", datetime(2026, 3, 29, 1, tzinfo=UTC)),
    ("Europe/Berlin", datetime(2026, 10, 25, 1, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 3, 8, 7, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 11, 1, 6, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 10, 3, 15, 30, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, tzinfo=UTC)),
    ("America/Sao_Paulo", datetime(2018, 11, 4, 3, tzinfo=UTC)),
    ("America/Sao_Paulo", datetime(2019, 2, 17, 2, tzinfo=UTC)),
    ("Pacific/Chatham", datetime(2026, 9, 26, 14, tzinfo=UTC)),
    ("Europe/Dublin", datetime(2026, 10, 25, 1, tzinfo=UTC)),
]


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(TRANSITIONS),
    st.sampled_from(CRONS[:8]),
    st.timedeltas(min_value=timedelta(hours=-36), max_value=timedelta(hours=6)),
)
def test_cron_across_dst_runs_each_wall_slot_once_and_misses_none(
    transition: tuple[str, datetime], expression: str, offset: timedelta
) -> None:
    tz, moment = transition
    zone = ZoneInfo(tz)
    rule = parse_rule(expression, tz)
    start = moment + offset
    end = moment + timedelta(hours=30)
    runs, after = [], start
    while (after := next_slot(rule, start, after)) <= end:
        runs.append(after)
    assume(runs)
    assert runs == sorted(set(runs))  # strictly increasing, so no instant twice
    walls = [wall(run, zone) for run in runs]
    assert len(set(walls)) == len(walls)  # no wall-clock slot twice
    assert all(run.astimezone(zone).fold == 0 for run in runs)
    fires = croniter(expression, wall(start, zone) - timedelta(hours=4))
    while (match := fires.get_next(datetime)) <= wall(end, zone):
        meant = reference_instant(match, zone)
        if start < meant <= end:
            assert meant in runs  # every wall-clock slot is run (a gapped one at the gap's end)


# --- coalescing, backoff, retry ------------------------------------------------------------------


@given(rules, instants, instants, instants)
def test_slot_after_run_is_the_first_slot_after_both(
    rule: ScheduleRule, anchor: datetime, slot: datetime, now: datetime
) -> None:
    following = slot_after_run(rule, anchor, slot, now)
    assert following > slot
    assert following > now
    assert following == next_slot(rule, anchor, max(slot, now))


@given(st.integers(min_value=0, max_value=10_000))
def test_backoff_grows_and_is_capped(failures: int) -> None:
    delay = backoff(failures)
    assert delay <= backoff(failures + 1) <= timedelta(hours=1)
    if failures:
        assert delay >= timedelta(minutes=1)
        assert delay == min(timedelta(hours=1), timedelta(minutes=2 ** min(failures - 1, 10)))


@given(rules, instants, instants, st.integers(min_value=1, max_value=200))
def test_retry_is_after_now_and_no_later_than_backoff_or_next_slot(
    rule: ScheduleRule, anchor: datetime, now: datetime, failures: int
) -> None:
    slot = next_slot(rule, anchor, now - timedelta(days=1))
    retry = retry_after_failure(rule, anchor, slot, now, failures)
    regular = slot_after_run(rule, anchor, slot, now)
    assert now < retry
    assert retry == min(now + backoff(failures), regular)


# --- parse_rule on arbitrary input ---------------------------------------------------------------


cron_fields = st.lists(
    st.text(alphabet="0123456789*/,-LW#?HJmonsu", min_size=1, max_size=6), min_size=5, max_size=5
).map(" ".join)


@settings(max_examples=200)
@given(st.text(max_size=40) | cron_fields, instants)
def test_parse_rule_accepts_or_says_why_in_one_line(text: str, after: datetime) -> None:
    try:
        rule = parse_rule(text)
    except ValueError as exc:
        assert "\n" not in str(exc)
        assert str(exc)
        return
    # whatever it accepts, the scheduler can compute
    assert next_slot(rule, datetime(2000, 1, 1, tzinfo=UTC), after) > after
