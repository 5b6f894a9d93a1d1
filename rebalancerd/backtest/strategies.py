"""Which rebalance rule a backtest replays: a schedule, a drift band, or buy-and-hold.

`periodic:weekly` (or daily, monthly, hourly, or a cron expression such as
`periodic:0 9 * * 1`) plans only at its slots, as the daemon's schedule does: named intervals
are anchored at the first step, like a portfolio created then. `band:N` (percentage points)
and `band-rel:N` (percent of each target) check the drift at every step and trade when the
planner finds the portfolio out of its band. `hold` buys once and never trades again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

from rebalancerd import schedule

Kind = Literal["periodic", "band", "band-rel", "hold"]
DEFAULTS = ("periodic:weekly", "band:5", "band-rel:25", "hold")
_USAGE = "expected periodic:weekly|daily|monthly|hourly|<cron>, band:N, band-rel:N or hold"


@dataclass(frozen=True)
class Strategy:
    """One rule to replay, by the text it was given as."""

    label: str
    kind: Kind
    rule: schedule.ScheduleRule | None = None
    band: Decimal | None = None

    @property
    def band_abs(self) -> Decimal | None:
        return self.band if self.kind == "band" else None

    @property
    def band_rel(self) -> Decimal | None:
        return self.band if self.kind == "band-rel" else None


def parse_strategy(text: str) -> Strategy:
    """`periodic:weekly`, `periodic:0 9 * * 1`, `band:5`, `band-rel:25` or `hold`."""
    label = " ".join(text.split())
    kind, _, arg = label.partition(":")
    kind = kind.strip().lower()
    if kind == "hold" and not arg:
        return Strategy("hold", "hold")
    if kind == "periodic" and arg:
        try:
            rule = schedule.parse_rule(arg.strip())
        except ValueError as exc:
            raise ValueError(f"strategy {text!r}: {exc}") from None
        return Strategy(f"periodic:{rule.expression}", "periodic", rule=rule)
    if kind in ("band", "band-rel") and arg:
        return Strategy(f"{kind}:{arg.strip()}", kind, band=_band(text, arg))  # type: ignore[arg-type]
    raise ValueError(f"strategy {text!r}: {_USAGE}")


def _band(text: str, arg: str) -> Decimal:
    try:
        band = Decimal(arg.strip().rstrip("%"))
    except InvalidOperation:
        raise ValueError(f"strategy {text!r}: the band must be a number") from None
    if not band.is_finite() or not Decimal(0) < band <= Decimal(100):
        raise ValueError(f"strategy {text!r}: the band must be above 0 and at most 100")
    return band


class Slots:
    """The slots of a periodic strategy: `due(t)` is True once per slot (missed ones coalesce)."""

    def __init__(self, rule: schedule.ScheduleRule, anchor: int) -> None:
        self._rule = rule
        self._anchor = datetime.fromtimestamp(anchor, UTC)
        self._next = self._after(anchor)

    def _after(self, ts: int) -> int:
        slot = schedule.next_slot(self._rule, self._anchor, datetime.fromtimestamp(ts, UTC))
        return int(slot.timestamp())

    def due(self, ts: int) -> bool:
        """True at the first step at or past the next slot; the one after is then counted."""
        if ts < self._next:
            return False
        self._next = self._after(ts)
        return True
