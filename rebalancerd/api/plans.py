"""The plan preview's `plan` as the API shows it: Plan.as_dict() with its Decimals as exact text.

Amounts stay strings here (unlike the EUR figures of other replies): a plan carries volumes to
the pair's lot decimals and a JSON number would lose them in most clients.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class PlanPart(BaseModel):
    """A part of the plan JSON; a key the model does not know is an error, not dropped."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        extra="forbid",
        frozen=True,
        json_schema_serialization_defaults_required=True,
    )


class PlannedOrderJson(PlanPart):
    """One market order the run would place."""

    symbol: str
    pair: str
    side: Literal["buy", "sell"]
    volume: str
    price: str
    value: str
    fee: str
    deviation: str


class SkipJson(PlanPart):
    """An order the plan wanted but will not send, and why."""

    symbol: str
    side: Literal["buy", "sell"]
    value: str
    reason: str


class PlanJson(PlanPart):
    """What a run would trade now; `aborted` says why nothing may be traded."""

    value: str
    current_weights: dict[str, str]
    target_weights: dict[str, str]
    expected_weights: dict[str, str]
    orders: list[PlannedOrderJson]
    skipped: list[SkipJson]
    estimated_fees: str
    cash_reserve: str
    aborted: str | None
    traded_value: str
    notes: list[str] = []  # e.g. the plan was scaled down to a trade cap (safety controls)
