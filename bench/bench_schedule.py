"""How long the schedule maths takes per call: `python bench/bench_schedule.py`."""

from __future__ import annotations

import timeit
from datetime import UTC, datetime

from rebalancerd.schedule import next_check, next_slot, parse_rule

ANCHOR = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
CASES = [
    ("hourly, 1 day later", "hourly", None, datetime(2026, 2, 1, 9, 30, tzinfo=UTC)),
    ("hourly, 500 years later", "hourly", None, datetime(2526, 2, 1, 9, 30, tzinfo=UTC)),
    ("daily, Europe/Berlin", "daily", "Europe/Berlin", datetime(2026, 3, 29, 0, 0, tzinfo=UTC)),
    ("weekly, 30 years later", "weekly", None, datetime(2056, 2, 1, 9, 30, tzinfo=UTC)),
    ("monthly, 500 years later", "monthly", None, datetime(2526, 2, 1, 9, 30, tzinfo=UTC)),
    ("cron 0 */6 * * *, UTC", "0 */6 * * *", None, datetime(2026, 5, 4, 5, 0, tzinfo=UTC)),
    (
        "cron 30 2 * * *, Berlin gap",
        "30 2 * * *",
        "Europe/Berlin",
        datetime(2026, 3, 28, 3, tzinfo=UTC),
    ),
    (
        "cron 0 9 * * 1, New York",
        "0 9 * * 1",
        "America/New_York",
        datetime(2026, 11, 1, tzinfo=UTC),
    ),
]


def main() -> None:
    """Print microseconds per call for each case."""
    for label, interval, tz, after in CASES:
        rule = parse_rule(interval, tz)
        number, seconds = timeit.Timer(lambda r=rule, a=after: next_slot(r, ANCHOR, a)).autorange()
        print(f"next_slot  {label:32} {seconds / number * 1e6:8.1f} µs")
    now = datetime(2026, 5, 4, 10, 17, tzinfo=UTC)
    number, seconds = timeit.Timer(lambda: next_check("0 * * * *", now)).autorange()
    print(f"next_check {'0 * * * * (parses each call)':32} {seconds / number * 1e6:8.1f} µs")
    number, seconds = timeit.Timer(lambda: parse_rule("0 9 * * 1", "Europe/Berlin")).autorange()
    print(f"parse_rule {'0 9 * * 1, Europe/Berlin':32} {seconds / number * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
