"""Field types of the HTTP API: clean text, exact numbers, UTC times, schedules, target weights."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StrictInt, WithJsonSchema
from pydantic_core import PydanticCustomError

from rebalancerd import schedule
from rebalancerd.exchange.names import ALIASES, LEGACY_IDS

CASH = "EUR"
WEIGHT_TOLERANCE = Decimal("0.01")
SYMBOL = re.compile(r"[A-Z0-9]{1,10}")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # exactly Unicode's category Cc
CONTROL_CHARACTERS = "control_characters"  # the error type: answered 422, not 400
# Kraken's own ids and altnames (XXBT, ZEUR, XBT, XDG): they look like tickers but name another
# asset's plain symbol, so storing them would make the planner look up a market that does not
# exist (or, for XBT/XDG, two names for one holding). The plain symbol is what the API stores.
KRAKEN_NAMES: Mapping[str, str] = {
    **{kid: ALIASES.get(alt, alt) for kid, alt in LEGACY_IDS.items()},
    **ALIASES,
}
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _clean(value: str) -> str:
    # Control characters (NUL, CR, LF, ESC, ... : Unicode category Cc) would forge log lines or
    # terminal output wherever the text is shown, and PostgreSQL text cannot hold NUL at all.
    # Lone surrogates cannot be encoded: refuse them here rather than fail in the driver.
    if CONTROL.search(value):
        raise PydanticCustomError(
            CONTROL_CHARACTERS, "must not contain control characters (line breaks, tabs, NUL, ...)"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text") from None
    return value


def _number(value: object) -> Decimal:
    """A JSON number as a Decimal; strings, booleans, NaN and infinities are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a number")
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise ValueError("must be a finite number")
    return number


def _parse_time(value: object) -> datetime:
    """An ISO 8601 time with a UTC offset, or a bare date (midnight UTC); naive is refused."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time such as 2025-10-27T10:00:00Z") from None
    if len(value) == 10:  # a bare date
        parsed = datetime.combine(date.fromisoformat(value), time(), UTC)
    if parsed.tzinfo is None:
        raise ValueError("must include a UTC offset, e.g. 2025-10-27T10:00:00Z")
    return parsed


def _in_utc(parsed: datetime) -> datetime | None:
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # year 1 at +01:00 has no UTC time in datetime's range
        return None


def _instant(value: object) -> datetime:
    """A time to schedule at, in UTC, between 1970 and 9000."""
    moment = _in_utc(_parse_time(value))
    if moment is None or not EARLIEST <= moment < LATEST:
        raise ValueError("must lie between 1970 and 9000")
    return moment


def _bound(value: object) -> datetime:
    """A filter bound, in UTC; one beyond 1970-9000 is clamped (nothing lies out there)."""
    parsed = _parse_time(value)
    moment = _in_utc(parsed)
    if moment is None:
        return EARLIEST if parsed.year < 1970 else LATEST
    return min(max(moment, EARLIEST), LATEST)


def _interval(value: str) -> str:
    return schedule.parse_rule(value).expression


def _zone(value: str) -> str:
    return schedule.parse_rule("daily", value).tz


def _check_interval(value: str) -> str:
    return schedule.check_cron(value)  # the loop's cron: named intervals refused


def _schema(**schema: Any) -> WithJsonSchema:
    return WithJsonSchema(schema)


def check_weights(raw: Mapping[str, Any]) -> dict[str, int | float]:
    """Plain tickers to numbers >= 0 that sum to 100, at least one not EUR; JSON-ready."""
    if not raw:
        raise ValueError("must name at least one asset")
    if len(raw) > 50:
        raise ValueError("must name at most 50 assets")
    weights = {_symbol(symbol): _weight(symbol, value) for symbol, value in raw.items()}
    total = sum(weights.values(), Decimal(0))
    if abs(total - 100) > WEIGHT_TOLERANCE:
        raise ValueError(f"weights must sum to 100 (+/- {WEIGHT_TOLERANCE}), not {total}")
    if all(symbol == CASH for symbol in weights):
        raise ValueError(f"must name at least one asset other than {CASH}")
    # jsonb keeps the number as written; int where whole so 40 reads back as 40, not 40.0.
    return {s: int(w) if w == w.to_integral_value() else float(w) for s, w in weights.items()}


def _symbol(symbol: str) -> str:
    if symbol in KRAKEN_NAMES:
        plain = KRAKEN_NAMES[symbol]
        raise ValueError(f"{symbol} is Kraken's own name; use the plain ticker {plain}")
    if not SYMBOL.fullmatch(symbol):
        shown = repr(symbol[:20])
        raise ValueError(f"{shown} is not a plain ticker (1-10 characters A-Z, 0-9, e.g. BTC)")
    return symbol


def _weight(symbol: str, value: object) -> Decimal:
    try:
        weight = _number(value)
    except ValueError as exc:
        raise ValueError(f"weight of {symbol} {exc}") from None
    if weight < 0:
        raise ValueError(f"weight of {symbol} must be >= 0, not {weight}")
    return weight


NO_CONTROL = {"pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}  # documents CONTROL
Text = Annotated[
    str, Field(min_length=1, max_length=200, json_schema_extra=NO_CONTROL), AfterValidator(_clean)
]
Account = Annotated[
    str, Field(min_length=1, max_length=64, json_schema_extra=NO_CONTROL), AfterValidator(_clean)
]
Number = Annotated[Decimal, BeforeValidator(_number)]
Money = Annotated[
    Number, Field(ge=0, le=10**12, decimal_places=8), _schema(type="number", minimum=0)
]
Percent = Annotated[
    Number,
    Field(ge=0, le=100, decimal_places=8),
    _schema(type="number", minimum=0, maximum=100),
]
Instant = Annotated[datetime, BeforeValidator(_instant), _schema(type="string", format="date-time")]
Bound = Annotated[datetime, BeforeValidator(_bound), _schema(type="string", format="date-time")]
Interval = Annotated[
    Text,
    AfterValidator(_interval),
    _schema(type="string", description="hourly, daily, weekly, monthly or a 5-field cron"),
]
Zone = Annotated[Text, AfterValidator(_zone), _schema(type="string", example="Europe/Berlin")]
MaxOrders = Annotated[StrictInt, Field(ge=1, le=1000)]
CheckInterval = Annotated[Text, AfterValidator(_check_interval)]
Weights = Annotated[
    dict[str, Any],
    AfterValidator(check_weights),
    _schema(
        type="object",
        description="plain ticker -> percent; numbers >= 0 summing to 100 (+/- 0.01)",
        additionalProperties={"type": "number", "minimum": 0},
        propertyNames={"pattern": "^[A-Z0-9]{1,10}$"},
        minProperties=1,
        maxProperties=50,
    ),
]

# ----- safety controls (issue 19) -----
TtlSeconds = Annotated[StrictInt, Field(ge=1, le=604800)]  # up to a week
TradePercent = Annotated[  # all of a run's orders, both sides: a full turnover is 200 %
    Number,
    Field(gt=0, le=200, decimal_places=8),
    _schema(type="number", exclusiveMinimum=0, maximum=200),
]
GuardPercent = Annotated[
    Number,
    Field(gt=0, le=1000, decimal_places=8),
    _schema(type="number", exclusiveMinimum=0, maximum=1000),
]
