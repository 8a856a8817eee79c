"""Reason messages: a rule's template filled with the actual values and thresholds."""
from __future__ import annotations

import string
from decimal import Decimal

from .fields import BOOL, FIELDS, MONEY, PERCENT
from .money import minor_display


def show(kind: str, value, exponent: int = 2) -> str:
    if kind == MONEY:
        return minor_display(value, exponent)
    if kind == PERCENT:
        return f"{Decimal(value).scaleb(-2).normalize():f}%"
    if kind == BOOL:
        return "true" if value else "false"
    return str(value)


class _Values(dict):
    def __missing__(self, key):          # compile-time checks make this unreachable; never crash a decision
        return "{" + key + "}"


def render(template: str, fact: dict, params: tuple = (), extra: dict | None = None, exponent: int = 2) -> str:
    if not template:
        return ""
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    values = _Values()
    for name in names:
        if extra and name in extra:
            values[name] = extra[name]
        elif any(p[0] == name for p in params):
            key, kind, value = next(p for p in params if p[0] == name)
            values[name] = show(kind, value, exponent)
        elif name in fact and name in FIELDS:
            values[name] = show(FIELDS[name].kind, fact[name], exponent)
    return template.format_map(values)
