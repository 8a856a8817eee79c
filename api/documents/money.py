"""The few money and message helpers documents and delivery need, on Decimal. Kept here rather than
imported from the core, whose money module is moving (engine/ → rules/) while this lands."""

from __future__ import annotations

import difflib
from decimal import Decimal, InvalidOperation

from babel.numbers import get_currency_precision, list_currencies

_CURRENCIES = frozenset(list_currencies())


def currency_exponent(currency: str) -> int:
    """Minor-unit digits: CNY 2, JPY 0. An unknown code is an error, not a guess."""
    if currency not in _CURRENCIES:
        raise ValueError(f"unknown currency {currency!r}")
    return get_currency_precision(currency)


def to_minor(value: str | int, exponent: int) -> int:
    """'20500.50' → 2050050, exactly; floats and extra decimals are refused, never rounded."""
    if isinstance(value, (bool, float)) or not isinstance(value, (str, int)):
        raise ValueError(f"{value!r}: an amount is a decimal string or an integer")
    try:
        scaled = Decimal(value).scaleb(exponent)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {exponent} decimal places")
    return int(scaled)


def minor_str(minor: int, exponent: int) -> str:
    """2050050 → '20500.50': the decimal string JSON carries."""
    return f"{Decimal(minor).scaleb(-exponent):.{exponent}f}"


def did_you_mean(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
