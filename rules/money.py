"""Money: Decimal at the edges, integer minor units (e.g. fen) inside the engine."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import get_currency_precision, list_currencies

KNOWN_CURRENCIES = frozenset(list_currencies())


def currency_exponent(currency: str) -> int:
    if currency not in KNOWN_CURRENCIES:
        raise ValueError(f"unknown currency {currency!r}")
    return get_currency_precision(currency)


def parse_decimal(value) -> Decimal:
    """Accepts a decimal string or an int; floats are refused (they are not exact)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("must be a decimal string or an integer, not a float")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip().replace("_", ""))
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    else:
        raise ValueError(f"must be a decimal string, not {type(value).__name__}")
    if not d.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return d


class JsonFloat(Decimal):
    """A JSON number written with a fraction or an exponent (json.loads parse_float=JsonFloat): exact like
    any Decimal, but marked, so an amount can refuse it (docs/money.md: amounts are strings or integers)."""


# An amount as it enters the service (HTTP, CLI, imports): ASCII digits, an optional sign and point, nothing
# else (no spaces, separators, exponents, full-width digits); the currency's exponent bounds the decimals.
AMOUNT_PATTERN = r"-?[0-9]{1,30}(\.[0-9]{1,30})?"
_AMOUNT = re.compile(AMOUNT_PATTERN)


def parse_amount(value) -> Decimal:
    """An amount: a decimal string such as "30000.00", or an integer; never a float (nor a JSON number
    with a fraction or exponent), never a string with an exponent, spaces, separators or non-ASCII digits."""
    if isinstance(value, (bool, float, JsonFloat)):
        raise ValueError(
            'must be a decimal string such as "30000.00" or an integer, not a float (a number '
            "with a fraction or exponent)"
        )
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite number")
        return value
    if isinstance(value, str):
        if not _AMOUNT.fullmatch(value):
            shown = value if len(value) <= 40 else value[:40] + "…"
            raise ValueError(
                f"{shown!r} is not a decimal string: ASCII digits with an optional point, e.g. "
                '"30000.00" (no spaces, separators, exponents or signs other than -)'
            )
        return Decimal(value)
    raise ValueError(f"must be a decimal string, not {type(value).__name__}")


# A policy number becomes an engine integer (minor units, basis points): one of 10^400 or with a
# million decimals would take that long to convert, and past int64 durable_rules saturates silently.
POLICY_MAX_DIGITS = 15  # before the decimal point: below 10^16
POLICY_MAX_DECIMALS = 40  # after it (interest.daily_rate may be finer than a fen)


def parse_policy_decimal(value) -> Decimal:
    """parse_decimal, for a number written in a policy: refused beyond the bounds above."""
    d = parse_decimal(value)
    exponent = d.as_tuple().exponent
    if exponent < -POLICY_MAX_DECIMALS:
        raise ValueError(f"{value} has more than {POLICY_MAX_DECIMALS} decimal places")
    if d.adjusted() >= POLICY_MAX_DIGITS or exponent >= POLICY_MAX_DIGITS:
        raise ValueError(f"{value} is out of range (at most {POLICY_MAX_DIGITS} digits before the decimal point)")
    return d


_TO_MINOR_DIGITS = 30


def to_minor(value, exponent: int = 2) -> int:
    """Exact conversion of an amount (parse_amount); more decimals than the currency allows is an error, never
    rounded, and so is "100.000" for a 2-decimal currency: the decimals written count, not only their value."""
    d = parse_amount(value)
    if d.as_tuple().exponent < -exponent:
        raise ValueError(f"{value} has more than {exponent} decimal places")
    if d.adjusted() > _TO_MINOR_DIGITS:
        # far above any amount the callers accept; int() of 1E+999990 alone would take minutes
        raise ValueError(f"{value} is out of range")
    scaled = d.scaleb(exponent)
    if scaled != scaled.to_integral_value() or (d and not scaled):  # (1E-1000030 underflows to 0)
        raise ValueError(f"{value} has more than {exponent} decimal places")
    return int(scaled)


def from_minor(minor: int, exponent: int = 2) -> Decimal:
    return Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


# A decision formats ~50 amounts, so minor_str / minor_display / percent_display cut the digits of
# the integer instead of going through Decimal (several times faster), giving the same strings as
# the Decimal forms (tests/test_money.py compares them). Beyond 28 digits the default Decimal
# context rounds or raises; such values, non-int input (bool, Decimal) and exponent ≤ 0 keep the
# Decimal path, so that behaviour is unchanged too.
_EXACT_LIMIT = 10**28


def minor_str(minor: int, exponent: int = 2) -> str:
    """Canonical JSON form of an amount: plain decimal string, e.g. '120500.00'."""
    if type(minor) is int and exponent > 0 and -_EXACT_LIMIT < minor < _EXACT_LIMIT:
        sign = ""
        if minor < 0:
            sign, minor = "-", -minor
        digits = str(minor).rjust(exponent + 1, "0")  # at least one digit before the point
        return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"
    return str(from_minor(minor, exponent))


def minor_display(minor: int, exponent: int = 2) -> str:
    """Human form for messages: thousands separators, e.g. '120,500.00'."""
    if type(minor) is int and exponent > 0 and -_EXACT_LIMIT < minor < _EXACT_LIMIT:
        sign = ""
        if minor < 0:
            sign, minor = "-", -minor
        digits = str(minor).rjust(exponent + 1, "0")
        return f"{sign}{minor // 10**exponent:,}.{digits[-exponent:]}"
    return f"{from_minor(minor, exponent):,.{exponent}f}"


def percent_display(basis_points: int) -> str:
    """Basis points as a percentage without trailing zeros, e.g. 9050 → '90.5' (as Decimal.normalize)."""
    if type(basis_points) is int and -_EXACT_LIMIT < basis_points < _EXACT_LIMIT:
        sign = ""
        if basis_points < 0:
            sign, basis_points = "-", -basis_points
        digits = str(basis_points).rjust(3, "0")
        fraction = digits[-2:].rstrip("0")
        return f"{sign}{digits[:-2]}.{fraction}" if fraction else f"{sign}{digits[:-2]}"
    return f"{Decimal(basis_points).scaleb(-2).normalize():f}"


def round_half_up_minor(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
