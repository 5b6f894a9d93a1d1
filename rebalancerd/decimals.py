"""Decimal as text, one way each: exact for JSON, plain for sentences, EUR for people."""

from __future__ import annotations

from decimal import Decimal


def exact(value: Decimal) -> str:
    """Fixed point with every digit the value carries (0.50 stays 0.50), never 5E-7."""
    return format(value, "f")


def plain(value: Decimal) -> str:
    """Fixed point without trailing zeros: 5E-5 reads 0.00005, 100.00 reads 100."""
    return format(value.normalize(), "f")


def eur(value: Decimal) -> str:
    """An EUR amount for people, to the cent: €3.20."""
    return f"€{value:.2f}"
