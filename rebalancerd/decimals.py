"""Decimal as text, one way each: exact for JSON, plain for sentences, EUR for people."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation


def exact(value: Decimal) -> str:
    """Fixed point with every digit the value carries (0.50 stays 0.50), never 5E-7."""
    return format(value, "f")


def plain(value: Decimal) -> str:
    """Fixed point without trailing zeros: 5E-5 reads 0.00005, 100.00 reads 100."""
    return format(value.normalize(), "f")


def eur(value: Decimal) -> str:
    """An EUR amount for people, to the cent: €3.20."""
    return f"€{fixed(value, 2)}"


def fixed(value: Decimal | float | str, places: int) -> str:
    """`value` rounded half up to `places` decimals, for people (9944.1451 -> 9944.15)."""
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:  # not a number: show it as it came
        return str(value)
    try:
        return format(number.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP), "f")
    except InvalidOperation:  # more digits than the context holds: every digit, then
        return exact(number)
