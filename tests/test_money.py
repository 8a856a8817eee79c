"""rules.money: the integer formatting of amounts gives exactly the Decimal strings it replaced."""

from __future__ import annotations

import random
from decimal import Decimal, InvalidOperation

import pytest

from rules.fields import show
from rules.money import from_minor, minor_display, minor_str, percent_display


def decimal_str(minor, exponent):
    return str(Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def decimal_display(minor, exponent):
    return f"{Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)):,.{exponent}f}"


def decimal_percent(bp):
    return f"{Decimal(bp).scaleb(-2).normalize():f}"


def samples():
    rnd = random.Random(7)
    values = {
        0,
        1,
        -1,
        9,
        10,
        99,
        100,
        101,
        -100,
        -101,
        999_999,
        1_000_000,
        10**17,
        -(10**17),
        10**28 - 1,
        -(10**28 - 1),
    }
    for digits in range(1, 29):
        for _ in range(40):
            v = rnd.randrange(10 ** (digits - 1), 10**digits)
            values |= {v, -v, v - v % 10, v - v % 100}
    return sorted(values)


@pytest.mark.parametrize("exponent", [1, 2, 3, 4])
def test_minor_str_and_display_match_decimal(exponent):
    for minor in samples():
        assert minor_str(minor, exponent) == decimal_str(minor, exponent), minor
        assert minor_display(minor, exponent) == decimal_display(minor, exponent), minor
        assert str(from_minor(minor, exponent)) == decimal_str(minor, exponent)


def test_percent_display_matches_normalize():
    for bp in samples():
        assert percent_display(bp) == decimal_percent(bp), bp
        assert show("percent", bp) == decimal_percent(bp) + "%"


def test_outside_the_fast_path_behaviour_is_unchanged():
    assert minor_str(5, 0) == decimal_str(5, 0) == "5"
    assert minor_display(-1234, 0) == decimal_display(-1234, 0)
    assert minor_str(True, 2) == decimal_str(True, 2) == "0.01"
    assert minor_str(Decimal("12.5"), 2) == decimal_str(Decimal("12.5"), 2)
    for big in (10**28, -(10**28), 10**30):
        with pytest.raises(InvalidOperation):
            minor_str(big, 2)
        with pytest.raises(InvalidOperation):
            minor_display(big, 2)
        assert percent_display(big + 1) == decimal_percent(big + 1)  # rounded by the context, as before
