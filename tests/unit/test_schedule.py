"""Schedule maths, by table: exact instants for every interval, DST, coalescing, backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from rebalancerd import schedule
from rebalancerd.schedule import (
    ScheduleRule,
    backoff,
    next_check,
    next_slot,
    parse_rule,
    retry_after_failure,
    slot_after_run,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
US = timedelta(microseconds=1)
MIN = timedelta(minutes=1)


def t(text: str) -> datetime:
    """An aware datetime from ISO text ('Z' for UTC)."""
    return datetime.fromisoformat(text)


def series(rule: ScheduleRule, anchor: datetime, after: datetime, count: int) -> list[datetime]:
    """`count` consecutive slots, each asked for strictly after the previous one."""
    slots = []
    for _ in range(count):
        after = next_slot(rule, anchor, after)
        slots.append(after)
    return slots


# --- parse_rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "tz", "kind", "expression", "zone"),
    [
        ("hourly", None, "hourly", "hourly", "UTC"),
        ("daily", None, "daily", "daily", "UTC"),
        ("weekly", None, "weekly", "weekly", "UTC"),
        ("monthly", None, "monthly", "monthly", "UTC"),
        ("  Daily\n", None, "daily", "daily", "UTC"),
        ("MONTHLY", "Europe/Berlin", "monthly", "monthly", "Europe/Berlin"),
        ("0 */6 * * *", None, "cron", "0 */6 * * *", "UTC"),
        ("0  9\t* *   1", "America/New_York", "cron", "0 9 * * 1", "America/New_York"),
        (" 30 2 * * * ", "Europe/Berlin", "cron", "30 2 * * *", "Europe/Berlin"),
        ("0 9 * * mon-fri", "UTC", "cron", "0 9 * * mon-fri", "UTC"),
        ("0 0 L * *", None, "cron", "0 0 L * *", "UTC"),
        ("0 0 29 2 *", None, "cron", "0 0 29 2 *", "UTC"),
        ("hourly", "Asia/Kolkata", "hourly", "hourly", "Asia/Kolkata"),
    ],
)
def test_parse_rule_accepts(
    interval: str, tz: str | None, kind: str, expression: str, zone: str
) -> None:
    assert parse_rule(interval, tz) == ScheduleRule(kind, expression, zone)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("interval", "tz", "message"),
    [
        ("", None, "schedule interval is empty: expected hourly, daily, weekly, monthly or a 5-"),
        ("   \n\t", None, "schedule interval is empty"),
        ("fortnightly", None, "unknown interval 'fortnightly': expected hourly, daily"),
        ("@daily", None, "unknown interval '@daily'"),
        ("every day", None, "cron expression 'every day' has 2 fields, expected 5 (minute hour"),
        ("0 * * *", None, "cron expression '0 * * *' has 4 fields, expected 5"),
        ("0 0 * * * *", None, "cron expression '0 0 * * * *' has 6 fields, expected 5"),
        ("0 0 1 1 * 2026 x", None, "cron expression '0 0 1 1 * 2026 x' has 7 fields, expected 5"),
        ("61 * * * *", None, "invalid cron expression '61 * * * *' (out of range)"),
        ("0 24 * * *", None, "invalid cron expression '0 24 * * *' (out of range)"),
        ("0 0 * * 8", None, "invalid cron expression '0 0 * * 8'"),
        ("*/0 * * * *", None, "invalid cron expression '*/0 * * * *' ("),
        ("a b c d e", None, "invalid cron expression 'a b c d e'"),
        ("H * * * *", None, "invalid cron expression 'H * * * *' (Hashed"),
        ("0 0 31 2 *", None, "invalid cron expression '0 0 31 2 *' (Day(s) [31] can never occur"),
        (
            "0 0 30 2 *",
            None,
            "invalid cron expression '0 0 30 2 *' (Day(s) [30] can never occur in",
        ),
        ("0 0 30W 4 6#5", None, "cron expression '0 0 30W 4 6#5' never fires"),
        ("1 2 3 4 " + "5" * 300, None, "schedule interval is too long (308 characters, max 200)"),
        ("daily", "Mars/Olympus", "unknown time zone 'Mars/Olympus': expected an IANA name"),
        ("daily", "", "unknown time zone ''"),
        ("daily", "utc", "unknown time zone 'utc'"),
        ("daily", "Europe", "unknown time zone 'Europe'"),
        ("daily", "../etc/passwd", "unknown time zone '../etc/passwd'"),
        ("daily", "/etc/localtime", "unknown time zone '/etc/localtime'"),
        ("daily", "Europe/Berlin\x00", "unknown time zone 'Europe/Berlin\\x00'"),
        ("0 9 * * 1", "x" * 500, "unknown time zone '" + "x" * 57 + "...'"),
        (None, None, "schedule interval must be a string, got NoneType"),
        (60, None, "schedule interval must be a string, got int"),
    ],
)
def test_parse_rule_rejects_with_a_clear_line(interval: str, tz: str | None, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_rule(interval, tz)
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text
    assert len(text) < 250


def test_parse_rule_message_shows_a_newline_as_an_escape() -> None:
    with pytest.raises(ValueError, match=r"^unknown time zone 'Europe/\\nBerlin'"):
        parse_rule("daily", "Europe/\nBerlin")


def test_parse_rule_length_limit_is_200_characters() -> None:
    longest = ",".join(["15"] + ["5"] * 95) + " * * * *"
    assert len(longest) == 200
    assert parse_rule(longest).expression == longest
    with pytest.raises(ValueError, match=r"^schedule interval is too long \(201 characters"):
        parse_rule("1" + longest)


@pytest.mark.parametrize(
    ("word", "shown"),
    [
        ("x" * 60, "'" + "x" * 60 + "'"),
        ("x" * 61, "'" + "x" * 57 + "...'"),
        ("y" * 150, "'" + "y" * 57 + "...'"),
    ],
)
def test_long_input_is_cut_in_messages(word: str, shown: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_rule(word)
    assert str(caught.value).startswith(f"unknown interval {shown}: expected")


# --- next_slot: fixed periods --------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "anchor", "after", "expected"),
    [
        # before the first slot: the first slot itself
        ("hourly", "2026-01-01T10:17Z", "2025-06-01T00:00Z", "2026-01-01T10:17Z"),
        ("hourly", "2026-01-01T10:17Z", "2026-01-01T10:16:59.999999Z", "2026-01-01T10:17Z"),
        # at a slot: strictly after, so the next one
        ("hourly", "2026-01-01T10:17Z", "2026-01-01T10:17Z", "2026-01-01T11:17Z"),
        ("hourly", "2026-01-01T10:17Z", "2026-01-01T10:17:00.000001Z", "2026-01-01T11:17Z"),
        ("hourly", "2026-01-01T10:17Z", "2026-01-01T11:16:59.999999Z", "2026-01-01T11:17Z"),
        ("hourly", "2026-01-01T10:17Z", "2026-01-01T11:17Z", "2026-01-01T12:17Z"),
        ("hourly", "2026-01-01T10:17Z", "2026-01-01T23:50Z", "2026-01-02T00:17Z"),
        ("hourly", "2026-01-01T10:17Z", "2031-06-15T12:34:56Z", "2031-06-15T13:17Z"),
        ("hourly", "2026-01-01T10:17Z", "2400-02-29T23:17Z", "2400-03-01T00:17Z"),
        ("hourly", "2026-01-01T10:17:30.25Z", "2026-01-01T10:17:30.25Z", "2026-01-01T11:17:30.25Z"),
        ("daily", "2026-01-01T09:30Z", "2025-12-31T09:30Z", "2026-01-01T09:30Z"),
        ("daily", "2026-01-01T09:30Z", "2026-01-01T09:30Z", "2026-01-02T09:30Z"),
        ("daily", "2026-01-01T09:30Z", "2026-01-02T09:29:59Z", "2026-01-02T09:30Z"),
        ("daily", "2026-01-01T09:30Z", "2026-01-02T09:30:01Z", "2026-01-03T09:30Z"),
        ("daily", "2026-01-01T09:30Z", "2028-02-28T09:30Z", "2028-02-29T09:30Z"),
        ("daily", "2026-01-01T09:30Z", "2029-02-28T09:30Z", "2029-03-01T09:30Z"),
        ("daily", "2026-01-01T09:30Z", "2029-12-31T23:59Z", "2030-01-01T09:30Z"),
        # an anchor given in another zone is the same instant
        ("daily", "2026-01-01T10:30+01:00", "2026-01-05T12:00+03:00", "2026-01-05T09:30Z"),
        # 2026-01-01 is a Thursday
        ("weekly", "2026-01-01T09:30Z", "2025-01-01T00:00Z", "2026-01-01T09:30Z"),
        ("weekly", "2026-01-01T09:30Z", "2026-01-01T09:30Z", "2026-01-08T09:30Z"),
        ("weekly", "2026-01-01T09:30Z", "2026-01-07T09:30Z", "2026-01-08T09:30Z"),
        ("weekly", "2026-01-01T09:30Z", "2026-01-08T09:29:59.999999Z", "2026-01-08T09:30Z"),
        ("weekly", "2026-01-01T09:30Z", "2026-01-08T09:30Z", "2026-01-15T09:30Z"),
        ("weekly", "2026-01-01T09:30Z", "2026-01-09T00:00Z", "2026-01-15T09:30Z"),
        ("weekly", "2026-01-01T09:30Z", "2036-07-04T00:00Z", "2036-07-10T09:30Z"),
    ],
)
def test_next_slot_fixed_periods(interval: str, anchor: str, after: str, expected: str) -> None:
    got = next_slot(parse_rule(interval), t(anchor), t(after))
    assert got == t(expected)
    assert got.tzinfo is UTC


@pytest.mark.timeout(5)
def test_next_slot_years_later_is_computed_not_walked() -> None:
    # Walking an hourly lattice to year 9000 would take ~61 million steps.
    anchor, after = t("2026-01-01T10:17Z"), t("9000-05-05T05:05Z")
    assert next_slot(parse_rule("hourly"), anchor, after) == t("9000-05-05T05:17Z")
    assert next_slot(parse_rule("monthly"), anchor, after) == t("9000-06-01T10:17Z")


@pytest.mark.parametrize(
    ("interval", "tz", "most"),
    [
        ("hourly", None, 1),
        ("daily", None, 1),
        ("weekly", None, 1),
        ("monthly", None, 2),
        ("hourly", "Europe/Berlin", 1),
        ("daily", "America/New_York", 3),
        ("weekly", "Europe/Berlin", 3),
        ("monthly", "Europe/Berlin", 3),
    ],
)
@pytest.mark.parametrize("after", ["2026-01-01T10:17Z", "2899-11-01T05:40Z", "9998-12-30T23:59Z"])
def test_next_slot_examines_a_constant_number_of_lattice_points(
    monkeypatch: pytest.MonkeyPatch, interval: str, tz: str | None, most: int, after: str
) -> None:
    # O(1) however far `after` is from the anchor: count the slots the search looks at.
    seen: list[datetime] = []
    real = schedule._wall_to_utc

    def counting(wall: datetime, zone: tzinfo) -> datetime:
        seen.append(wall)
        return real(wall, zone)

    monkeypatch.setattr(schedule, "_wall_to_utc", counting)
    slot = next_slot(parse_rule(interval, tz), t("0001-03-31T10:17Z"), t(after))
    assert slot > t(after)
    assert 1 <= len(seen) <= most


# --- next_slot: monthly ----------------------------------------------------------------


JAN31_2026 = [
    "2026-02-28T09:00Z",
    "2026-03-31T09:00Z",
    "2026-04-30T09:00Z",
    "2026-05-31T09:00Z",
    "2026-06-30T09:00Z",
    "2026-07-31T09:00Z",
    "2026-08-31T09:00Z",
    "2026-09-30T09:00Z",
    "2026-10-31T09:00Z",
    "2026-11-30T09:00Z",
    "2026-12-31T09:00Z",
    "2027-01-31T09:00Z",
    "2027-02-28T09:00Z",
    "2027-03-31T09:00Z",
]


def test_monthly_from_the_31st_clamps_and_returns_to_the_31st() -> None:
    anchor = t("2026-01-31T09:00Z")
    got = series(parse_rule("monthly"), anchor, anchor, len(JAN31_2026))
    assert got == [t(s) for s in JAN31_2026]


@pytest.mark.parametrize(
    ("anchor", "after", "expected"),
    [
        ("2026-01-31T09:00Z", "2025-12-31T09:00Z", "2026-01-31T09:00Z"),
        ("2026-01-31T09:00Z", "2026-01-31T09:00Z", "2026-02-28T09:00Z"),
        ("2026-01-31T09:00Z", "2026-02-28T08:59:59Z", "2026-02-28T09:00Z"),
        ("2026-01-31T09:00Z", "2026-02-28T09:00Z", "2026-03-31T09:00Z"),
        ("2026-01-31T09:00Z", "2026-03-03T09:00Z", "2026-03-31T09:00Z"),
        ("2026-01-31T09:00Z", "2028-01-31T09:00Z", "2028-02-29T09:00Z"),
        ("2026-01-31T09:00Z", "2028-02-29T09:00Z", "2028-03-31T09:00Z"),
        ("2026-01-31T09:00Z", "2100-02-01T00:00Z", "2100-02-28T09:00Z"),
        ("2026-01-30T12:00Z", "2026-01-30T12:00Z", "2026-02-28T12:00Z"),
        ("2026-01-30T12:00Z", "2026-02-28T12:00Z", "2026-03-30T12:00Z"),
        ("2026-01-30T12:00Z", "2028-02-01T00:00Z", "2028-02-29T12:00Z"),
        ("2026-01-30T12:00Z", "2028-03-01T00:00Z", "2028-03-30T12:00Z"),
        ("2026-01-29T12:00Z", "2027-02-01T00:00Z", "2027-02-28T12:00Z"),
        ("2026-01-29T12:00Z", "2028-02-01T00:00Z", "2028-02-29T12:00Z"),
        ("2026-01-29T12:00Z", "2028-02-29T12:00Z", "2028-03-29T12:00Z"),
        ("2026-01-15T08:00Z", "2026-03-15T07:59Z", "2026-03-15T08:00Z"),
        ("2026-01-15T08:00Z", "2026-03-15T08:00Z", "2026-04-15T08:00Z"),
        ("2026-01-15T08:00Z", "2026-03-15T08:01Z", "2026-04-15T08:00Z"),
        ("2026-01-15T08:00Z", "2026-03-01T00:00Z", "2026-03-15T08:00Z"),
        ("2026-01-15T08:00Z", "2026-12-20T00:00Z", "2027-01-15T08:00Z"),
        ("2026-01-15T08:00Z", "2045-07-16T00:00Z", "2045-08-15T08:00Z"),
        ("2026-12-31T23:59Z", "2026-12-31T23:59Z", "2027-01-31T23:59Z"),
        # after in an earlier month than the anchor but in a later calendar month number
        ("2026-03-10T00:00Z", "2025-11-20T00:00Z", "2026-03-10T00:00Z"),
    ],
)
def test_next_slot_monthly(anchor: str, after: str, expected: str) -> None:
    assert next_slot(parse_rule("monthly"), t(anchor), t(after)) == t(expected)


def test_monthly_leap_year_reaches_feb_29() -> None:
    anchor = t("2027-12-31T06:00Z")
    got = series(parse_rule("monthly"), anchor, anchor, 3)
    assert got == [t("2028-01-31T06:00Z"), t("2028-02-29T06:00Z"), t("2028-03-31T06:00Z")]


def test_monthly_in_a_zone_keeps_the_local_day_and_time() -> None:
    # 00:30 on the 1st in Berlin is still the previous day in UTC.
    anchor = datetime(2026, 1, 31, 0, 30, tzinfo=BERLIN)
    got = series(parse_rule("monthly", "Europe/Berlin"), anchor, anchor, 4)
    assert got == [
        t("2026-02-27T23:30Z"),  # Feb 28 00:30 CET
        t("2026-03-30T22:30Z"),  # Mar 31 00:30 CEST
        t("2026-04-29T22:30Z"),  # Apr 30 00:30 CEST
        t("2026-05-30T22:30Z"),  # May 31 00:30 CEST
    ]


# --- next_slot: cron ---------------------------------------------------------------------


ANCHOR0 = "2020-01-01T00:00Z"


@pytest.mark.parametrize(
    ("expression", "tz", "after", "expected"),
    [
        ("0 */6 * * *", None, "2026-05-04T05:59Z", "2026-05-04T06:00Z"),
        ("0 */6 * * *", None, "2026-05-04T06:00Z", "2026-05-04T12:00Z"),
        ("0 */6 * * *", None, "2026-05-04T06:00:00.000001Z", "2026-05-04T12:00Z"),
        ("0 */6 * * *", None, "2026-05-04T18:00Z", "2026-05-05T00:00Z"),
        ("0 */6 * * *", None, "2026-12-31T23:59:59Z", "2027-01-01T00:00Z"),
        # 2026-05-04 is a Monday
        ("0 9 * * 1", None, "2026-05-03T12:00Z", "2026-05-04T09:00Z"),
        ("0 9 * * 1", None, "2026-05-04T08:59:59Z", "2026-05-04T09:00Z"),
        ("0 9 * * 1", None, "2026-05-04T09:00Z", "2026-05-11T09:00Z"),
        ("0 9 * * 1", None, "2026-05-05T09:00Z", "2026-05-11T09:00Z"),
        ("0 9 * * 1", "Europe/Berlin", "2026-01-05T07:59Z", "2026-01-05T08:00Z"),
        ("0 9 * * 1", "Europe/Berlin", "2026-01-05T08:00Z", "2026-01-12T08:00Z"),
        ("0 9 * * 1", "Europe/Berlin", "2026-05-04T00:00Z", "2026-05-04T07:00Z"),
        ("0 9 * * 1", "America/New_York", "2026-05-04T00:00Z", "2026-05-04T13:00Z"),
        ("*/15 * * * *", None, "2026-05-04T10:00Z", "2026-05-04T10:15Z"),
        ("*/15 * * * *", None, "2026-05-04T10:14:59Z", "2026-05-04T10:15Z"),
        ("0 0 1 * *", None, "2026-01-31T00:00Z", "2026-02-01T00:00Z"),
        ("0 0 L * *", None, "2026-02-01T00:00Z", "2026-02-28T00:00Z"),
        ("0 0 29 2 *", None, "2026-03-01T00:00Z", "2028-02-29T00:00Z"),
        ("30 5 * * *", "Asia/Kolkata", "2026-05-04T00:00Z", "2026-05-05T00:00Z"),
    ],
)
def test_next_slot_cron(expression: str, tz: str | None, after: str, expected: str) -> None:
    got = next_slot(parse_rule(expression, tz), t(ANCHOR0), t(after))
    assert got == t(expected)
    assert got.tzinfo is UTC


@pytest.mark.parametrize(
    ("anchor", "after", "expected"),
    [
        # the series starts at the anchor: no fire before it ...
        ("2026-05-04T12:00Z", "2026-05-01T00:00Z", "2026-05-04T12:00Z"),
        ("2026-05-04T12:00Z", "2026-05-04T11:59:59.999999Z", "2026-05-04T12:00Z"),
        ("2026-05-04T12:00:00.000001Z", "2026-05-01T00:00Z", "2026-05-04T18:00Z"),
        ("2026-05-04T13:00Z", "2026-05-01T00:00Z", "2026-05-04T18:00Z"),
        # ... and after it the anchor plays no part
        ("2026-05-04T12:00Z", "2026-05-04T12:00Z", "2026-05-04T18:00Z"),
        ("2026-05-04T12:00Z", "2026-05-09T01:00Z", "2026-05-09T06:00Z"),
    ],
)
def test_cron_series_starts_at_the_anchor(anchor: str, after: str, expected: str) -> None:
    assert next_slot(parse_rule("0 */6 * * *"), t(anchor), t(after)) == t(expected)


# --- DST: day-by-day across every change -----------------------------------------------


DST_DAYS = [
    # Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist,
    # it runs when the gap ends (03:00 CEST = 01:00Z).
    (
        "Europe/Berlin",
        (2026, 3, 27),
        (2, 30),
        ["03-27T01:30", "03-28T01:30", "03-29T01:00", "03-30T00:30", "03-31T00:30"],
    ),
    (
        "Europe/Berlin",
        (2026, 3, 27),
        (1, 30),
        ["03-27T00:30", "03-28T00:30", "03-29T00:30", "03-29T23:30", "03-30T23:30"],
    ),
    # Berlin falls back 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice, runs once.
    (
        "Europe/Berlin",
        (2026, 10, 23),
        (2, 30),
        ["10-23T00:30", "10-24T00:30", "10-25T00:30", "10-26T01:30", "10-27T01:30"],
    ),
    (
        "Europe/Berlin",
        (2026, 10, 23),
        (1, 30),
        ["10-22T23:30", "10-23T23:30", "10-24T23:30", "10-26T00:30", "10-27T00:30"],
    ),
    # New York springs forward 2026-03-08 02:00 EST -> 03:00 EDT.
    (
        "America/New_York",
        (2026, 3, 6),
        (2, 30),
        ["03-06T07:30", "03-07T07:30", "03-08T07:00", "03-09T06:30", "03-10T06:30"],
    ),
    (
        "America/New_York",
        (2026, 3, 6),
        (1, 30),
        ["03-06T06:30", "03-07T06:30", "03-08T06:30", "03-09T05:30", "03-10T05:30"],
    ),
    # New York falls back 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens twice, runs once.
    (
        "America/New_York",
        (2026, 10, 30),
        (1, 30),
        ["10-30T05:30", "10-31T05:30", "11-01T05:30", "11-02T06:30", "11-03T06:30"],
    ),
    (
        "America/New_York",
        (2026, 10, 30),
        (2, 30),
        ["10-30T06:30", "10-31T06:30", "11-01T07:30", "11-02T07:30", "11-03T07:30"],
    ),
]


def _dst_expected(start: tuple[int, int, int], utc_times: list[str]) -> list[datetime]:
    """The table's 'MM-DDTHH:MM' UTC times, in the start's year."""
    return [t(f"{start[0]}-{hm}Z") for hm in utc_times]


def _check_daily_run(zone: ZoneInfo, runs: list[datetime], start: tuple[int, int, int]) -> None:
    """One run per local day, consecutive days, strictly increasing instants."""
    assert runs == sorted(set(runs))
    days = [run.astimezone(zone).date() for run in runs]
    first = datetime(*start).date()
    assert days == [first + timedelta(days=i) for i in range(len(runs))]


@pytest.mark.parametrize(("tz", "start", "time", "utc_times"), DST_DAYS)
def test_daily_cron_across_dst_runs_every_local_day_once(
    tz: str, start: tuple[int, int, int], time: tuple[int, int], utc_times: list[str]
) -> None:
    zone = ZoneInfo(tz)
    rule = parse_rule(f"{time[1]} {time[0]} * * *", tz)
    after = datetime(*start, tzinfo=zone)
    runs = series(rule, t(ANCHOR0), after, len(utc_times))
    assert runs == _dst_expected(start, utc_times)
    _check_daily_run(zone, runs, start)


@pytest.mark.parametrize(("tz", "start", "time", "utc_times"), DST_DAYS)
def test_daily_interval_in_a_zone_across_dst_runs_every_local_day_once(
    tz: str, start: tuple[int, int, int], time: tuple[int, int], utc_times: list[str]
) -> None:
    zone = ZoneInfo(tz)
    anchor = datetime(*start, *time, tzinfo=zone)
    runs = series(parse_rule("daily", tz), anchor, anchor - US, len(utc_times))
    assert runs == _dst_expected(start, utc_times)
    _check_daily_run(zone, runs, start)


@pytest.mark.parametrize(("tz", "start", "time", "utc_times"), DST_DAYS)
def test_daily_interval_in_a_zone_from_years_back(
    tz: str, start: tuple[int, int, int], time: tuple[int, int], utc_times: list[str]
) -> None:
    zone = ZoneInfo(tz)
    anchor = datetime(2019, 7, 1, *time, tzinfo=zone)
    after = datetime(*start, tzinfo=zone)
    runs = series(parse_rule("daily", tz), anchor, after, len(utc_times))
    assert runs == _dst_expected(start, utc_times)


@pytest.mark.parametrize(
    ("tz", "expression", "after", "expected"),
    [
        # hour 02 does not exist: its slot coincides with 03:00 and runs once
        (
            "Europe/Berlin",
            "0 * * * *",
            "2026-03-28T23:30Z",
            ["03-29T00:00", "03-29T01:00", "03-29T02:00", "03-29T03:00"],
        ),
        # hour 02 happens twice: each wall-clock slot runs once, at its first occurrence
        (
            "Europe/Berlin",
            "0 * * * *",
            "2026-10-24T23:30Z",
            ["10-25T00:00", "10-25T02:00", "10-25T03:00", "10-25T04:00"],
        ),
        (
            "America/New_York",
            "*/30 * * * *",
            "2026-03-08T06:00Z",
            ["03-08T06:30", "03-08T07:00", "03-08T07:30", "03-08T08:00"],
        ),
        (
            "America/New_York",
            "*/30 * * * *",
            "2026-11-01T05:00Z",
            ["11-01T05:30", "11-01T07:00", "11-01T07:30", "11-01T08:00"],
        ),
        # asked from inside the repeated hour, the next slot is past it
        (
            "America/New_York",
            "*/30 * * * *",
            "2026-11-01T06:10Z",
            ["11-01T07:00", "11-01T07:30"],
        ),
        # several slots in one gap collapse into the run at its end
        (
            "America/New_York",
            "15,45 2 * * *",
            "2026-03-07T00:00Z",
            ["03-07T07:15", "03-07T07:45", "03-08T07:00", "03-09T06:15"],
        ),
        # a half-hour DST shift (Lord Howe springs 02:00 -> 02:30 on 2026-10-04)
        (
            "Australia/Lord_Howe",
            "15 2 * * *",
            "2026-10-02T00:00Z",
            ["10-02T15:45", "10-03T15:30", "10-04T15:15"],
        ),
    ],
)
def test_cron_across_dst_neither_repeats_nor_skips(
    tz: str, expression: str, after: str, expected: list[str]
) -> None:
    runs = series(parse_rule(expression, tz), t(ANCHOR0), t(after), len(expected))
    assert runs == [t(f"2026-{hm}Z") for hm in expected]


def test_hourly_in_a_zone_is_still_every_real_hour() -> None:
    # Berlin's 02:00-03:00 happens twice on 2026-10-25: both real hours get a slot.
    anchor = t("2026-10-24T22:00Z")
    runs = series(parse_rule("hourly", "Europe/Berlin"), anchor, anchor, 4)
    assert runs == [t(f"2026-10-2{d}T{h:02}:00Z") for d, h in ((4, 23), (5, 0), (5, 1), (5, 2))]


def test_weekly_in_a_zone_keeps_local_time_across_dst() -> None:
    anchor = datetime(2026, 3, 16, 9, 0, tzinfo=BERLIN)  # a Monday, CET
    runs = series(parse_rule("weekly", "Europe/Berlin"), anchor, anchor, 3)
    assert runs == [t("2026-03-23T08:00Z"), t("2026-03-30T07:00Z"), t("2026-04-06T07:00Z")]


def test_weekly_in_utc_is_a_fixed_168_hours() -> None:
    anchor = datetime(2026, 3, 16, 9, 0, tzinfo=BERLIN)
    runs = series(parse_rule("weekly"), anchor, anchor, 3)
    assert runs == [t("2026-03-23T08:00Z"), t("2026-03-30T08:00Z"), t("2026-04-06T08:00Z")]


def test_monthly_slot_in_a_dst_gap_runs_when_the_gap_ends() -> None:
    anchor = datetime(2026, 1, 29, 2, 30, tzinfo=BERLIN)
    runs = series(parse_rule("monthly", "Europe/Berlin"), anchor, anchor, 3)
    assert runs == [t("2026-02-28T01:30Z"), t("2026-03-29T01:00Z"), t("2026-04-29T00:30Z")]


@pytest.mark.parametrize(
    ("tz", "local", "expected"),
    [
        ("Europe/Berlin", (2, 17, 23, 500000), "2026-03-29T01:00Z"),
        ("Europe/Berlin", (2, 0, 0, 0), "2026-03-29T01:00Z"),
        ("Europe/Berlin", (2, 59, 59, 999999), "2026-03-29T01:00Z"),
        ("America/New_York", (2, 41, 7, 0), "2026-03-08T07:00Z"),
        ("Australia/Lord_Howe", (2, 3, 11, 0), "2026-10-03T15:30Z"),
    ],
)
def test_a_gapped_slot_runs_exactly_when_the_gap_ends(
    tz: str, local: tuple[int, int, int, int], expected: str
) -> None:
    zone = ZoneInfo(tz)
    anchor = datetime(2026, 1, 1, *local, tzinfo=zone)
    runs = series(parse_rule("daily", tz), anchor, t(expected) - timedelta(hours=23), 2)
    assert runs[0] == t(expected)
    assert runs[1].astimezone(zone).time() == datetime(2026, 1, 1, *local).time()


def test_anchor_in_a_repeated_hour_uses_its_first_occurrence() -> None:
    anchor = t("2026-11-01T06:30Z")  # 01:30 EST, the second 01:30 that night
    rule = parse_rule("daily", "America/New_York")
    assert next_slot(rule, anchor, anchor - timedelta(hours=2)) == t("2026-11-01T05:30Z")
    assert next_slot(rule, anchor, anchor) == t("2026-11-02T06:30Z")


# --- coalescing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "slot", "now", "expected"),
    [
        # a 3-day outage of an hourly schedule: one run now, then the next lattice slot
        ("hourly", "2026-03-01T10:00Z", "2026-03-04T10:20Z", "2026-03-04T11:00Z"),
        # a run that took 40 minutes does not push the schedule (no drift)
        ("hourly", "2026-03-01T10:00Z", "2026-03-01T10:40Z", "2026-03-01T11:00Z"),
        ("hourly", "2026-03-01T10:00Z", "2026-03-01T10:59:59.999999Z", "2026-03-01T11:00Z"),
        ("hourly", "2026-03-01T10:00Z", "2026-03-01T11:00Z", "2026-03-01T12:00Z"),
        # a run finishing before its slot (clock skew) still moves past the slot
        ("hourly", "2026-03-01T10:00Z", "2026-03-01T09:59Z", "2026-03-01T11:00Z"),
        ("daily", "2026-03-01T10:00Z", "2026-03-01T10:05Z", "2026-03-02T10:00Z"),
        ("daily", "2026-03-01T10:00Z", "2026-03-09T10:05Z", "2026-03-10T10:00Z"),
        ("weekly", "2026-03-28T10:00Z", "2026-03-30T00:00Z", "2026-04-04T10:00Z"),
        ("monthly", "2026-01-31T10:00Z", "2026-04-02T00:00Z", "2026-04-30T10:00Z"),
        ("monthly", "2026-01-31T10:00Z", "2026-01-31T11:00Z", "2026-02-28T10:00Z"),
        ("0 */6 * * *", "2026-03-01T12:00Z", "2026-03-04T13:00Z", "2026-03-04T18:00Z"),
        ("0 */6 * * *", "2026-03-01T12:00Z", "2026-03-01T12:00:01Z", "2026-03-01T18:00Z"),
    ],
)
def test_slot_after_run_coalesces_missed_slots(
    interval: str, slot: str, now: str, expected: str
) -> None:
    anchor = t("2026-01-31T10:00Z")
    assert slot_after_run(parse_rule(interval), anchor, t(slot), t(now)) == t(expected)


def test_outage_runs_once_then_resumes_the_lattice() -> None:
    rule, anchor = parse_rule("hourly"), t("2026-01-01T00:00Z")
    missed = t("2026-03-01T10:00Z")
    back_at = t("2026-03-04T10:20Z")
    due = slot_after_run(rule, anchor, missed, back_at)
    after_that = slot_after_run(rule, anchor, due, due + timedelta(minutes=3))
    assert [due, after_that] == [t("2026-03-04T11:00Z"), t("2026-03-04T12:00Z")]


# --- next_check ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "now", "expected"),
    [
        ("0 * * * *", "2026-05-04T10:00Z", "2026-05-04T11:00Z"),
        ("0 * * * *", "2026-05-04T10:59:59.999999Z", "2026-05-04T11:00Z"),
        ("0 * * * *", "2026-05-04T10:00:00.000001Z", "2026-05-04T11:00Z"),
        ("0 * * * *", "2026-05-04T23:30Z", "2026-05-05T00:00Z"),
        ("*/5 * * * *", "2026-05-04T10:04Z", "2026-05-04T10:05Z"),
        ("*/5 * * * *", "2026-05-04T10:05Z", "2026-05-04T10:10Z"),
        (" * *  * * * ", "2026-05-04T10:05:30Z", "2026-05-04T10:06Z"),
        # the check interval is UTC, whatever zone `now` is given in
        ("0 9 * * *", "2026-05-04T10:00+02:00", "2026-05-04T09:00Z"),
        ("0 9 * * *", "2026-05-04T11:00+02:00", "2026-05-05T09:00Z"),
    ],
)
def test_next_check(cron: str, now: str, expected: str) -> None:
    got = next_check(cron, t(now))
    assert got == t(expected)
    assert got.tzinfo is UTC


@pytest.mark.parametrize("cron", ["", "hourly", "0 * * *", "0 * * * * *", "99 * * * *"])
def test_next_check_rejects_bad_cron(cron: str) -> None:
    with pytest.raises(ValueError, match=r"interval|cron expression"):
        next_check(cron, t("2026-05-04T10:00Z"))


# --- naive datetimes --------------------------------------------------------------------------


NAIVE = datetime(2026, 5, 4, 10, 0)
AWARE = t("2026-05-04T10:00Z")


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: next_slot(parse_rule("daily"), NAIVE, AWARE), "anchor"),
        (lambda: next_slot(parse_rule("daily"), AWARE, NAIVE), "after"),
        (lambda: next_slot(parse_rule("0 * * * *"), AWARE, NAIVE), "after"),
        (lambda: next_check("0 * * * *", NAIVE), "now"),
        (lambda: slot_after_run(parse_rule("daily"), AWARE, NAIVE, AWARE), "slot"),
        (lambda: retry_after_failure(parse_rule("daily"), AWARE, AWARE, NAIVE, 1), "now"),
    ],
)
def test_naive_datetimes_are_rejected(call: object, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be timezone-aware, got naive 2026"):
        call()  # type: ignore[operator]


class NoOffset(tzinfo):
    """A tzinfo that knows no offset: as unusable as no tzinfo at all."""

    def utcoffset(self, dt: datetime | None) -> None:
        return None

    def dst(self, dt: datetime | None) -> None:
        return None

    def tzname(self, dt: datetime | None) -> None:
        return None


def test_a_tzinfo_without_an_offset_counts_as_naive() -> None:
    with pytest.raises(ValueError, match=r"^after must be timezone-aware"):
        next_slot(parse_rule("daily"), AWARE, datetime(2026, 5, 4, tzinfo=NoOffset()))


# --- backoff -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (0, timedelta(0)),
        (1, MIN),
        (2, 2 * MIN),
        (3, 4 * MIN),
        (4, 8 * MIN),
        (5, 16 * MIN),
        (6, 32 * MIN),
        (7, 60 * MIN),
        (8, 60 * MIN),
        (50, 60 * MIN),
        (10**6, 60 * MIN),
    ],
)
def test_backoff_defaults(failures: int, expected: timedelta) -> None:
    assert backoff(failures) == expected


@pytest.mark.parametrize(
    ("failures", "base", "cap", "expected"),
    [
        (1, timedelta(seconds=30), timedelta(minutes=5), timedelta(seconds=30)),
        (4, timedelta(seconds=30), timedelta(minutes=5), timedelta(minutes=4)),
        (5, timedelta(seconds=30), timedelta(minutes=5), timedelta(minutes=5)),
        (7, MIN, 64 * MIN, 64 * MIN),
        (7, MIN, 63 * MIN, 63 * MIN),
        (6, MIN, 64 * MIN, 32 * MIN),
        (3, MIN, 4 * MIN, 4 * MIN),
        (2, MIN, 3 * MIN, 2 * MIN),
        (3, MIN, 3 * MIN, 3 * MIN),
        (1, MIN, MIN, MIN),
        (9, MIN, MIN, MIN),
        (10**6, timedelta(days=1), timedelta(days=10**6), timedelta(days=10**6)),
    ],
)
def test_backoff_custom(
    failures: int, base: timedelta, cap: timedelta, expected: timedelta
) -> None:
    assert backoff(failures, base, cap) == expected


@pytest.mark.parametrize(
    ("failures", "base", "cap", "message"),
    [
        (-1, MIN, 60 * MIN, "failures must be >= 0, got -1"),
        (1, timedelta(0), 60 * MIN, "backoff needs 0 < base <= cap"),
        (1, -MIN, 60 * MIN, "backoff needs 0 < base <= cap"),
        (1, 2 * MIN, MIN, "backoff needs 0 < base <= cap"),
    ],
)
def test_backoff_rejects(failures: int, base: timedelta, cap: timedelta, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        backoff(failures, base, cap)


# --- retry after failure --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "failures", "now", "expected"),
    [
        ("hourly", 1, "2026-03-01T10:05Z", "2026-03-01T10:06Z"),
        ("hourly", 3, "2026-03-01T10:05Z", "2026-03-01T10:09Z"),
        ("hourly", 6, "2026-03-01T10:05Z", "2026-03-01T10:37Z"),
        # the backoff would reach past the next regular slot: that slot comes first
        ("hourly", 6, "2026-03-01T10:30Z", "2026-03-01T11:00Z"),
        ("hourly", 7, "2026-03-01T10:05Z", "2026-03-01T11:00Z"),
        ("hourly", 7, "2026-03-01T10:00Z", "2026-03-01T11:00Z"),
        ("daily", 7, "2026-03-01T10:05Z", "2026-03-01T11:05Z"),
        ("daily", 500, "2026-03-01T10:05Z", "2026-03-01T11:05Z"),
        ("daily", 1, "2026-03-02T09:59:30Z", "2026-03-02T10:00Z"),
        ("daily", 1, "2026-03-02T09:59Z", "2026-03-02T10:00Z"),
        ("daily", 1, "2026-03-02T09:58:59Z", "2026-03-02T09:59:59Z"),
        ("daily", 2, "2026-03-01T12:00+02:00", "2026-03-01T10:02Z"),
    ],
)
def test_retry_after_failure(interval: str, failures: int, now: str, expected: str) -> None:
    anchor = slot = t("2026-03-01T10:00Z")
    got = retry_after_failure(parse_rule(interval), anchor, slot, t(now), failures)
    assert got == t(expected)
    assert got.tzinfo is UTC


def test_retry_needs_a_failure() -> None:
    anchor = t("2026-03-01T10:00Z")
    with pytest.raises(ValueError, match=r"^a retry follows at least one failure, got failures=0"):
        retry_after_failure(parse_rule("hourly"), anchor, anchor, anchor, 0)


def test_failing_portfolio_retries_a_bounded_number_of_times_per_day() -> None:
    # The predecessor retried every check tick forever; here each retry waits longer.
    rule, anchor = parse_rule("daily"), t("2026-03-01T10:00Z")
    now, attempts = anchor, []
    for failures in range(1, 100):
        now = retry_after_failure(rule, anchor, anchor, now, failures)
        attempts.append(now)
        if now >= t("2026-03-02T10:00Z"):
            break
    assert attempts[:3] == [t("2026-03-01T10:01Z"), t("2026-03-01T10:03Z"), t("2026-03-01T10:07Z")]
    assert attempts[-1] == t("2026-03-02T10:00Z")
    assert len(attempts) == 29  # 6 growing waits, 22 hourly ones, then the next slot


def test_rule_zone_is_the_zoneinfo() -> None:
    assert parse_rule("daily", "Europe/Berlin").zone is BERLIN
    assert parse_rule("daily").zone is ZoneInfo("UTC")
