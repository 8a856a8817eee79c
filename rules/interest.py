"""逾期罚息 / 滞纳金: daily late interest on each overdue invoice beyond the grace days.

interest = open balance × daily_rate × (days overdue − grace days), rounded half-up to
the minor unit per invoice; plus a fixed fee once an invoice is past its grace days;
optionally capped at cap_pct of the open balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from marshmallow import fields, validate

from .money import parse_policy_decimal, round_half_up_minor

from .common import Money, Percent, StrictSchema


class DailyRate(fields.Field):
    def _deserialize(self, value, attr, data, **kw):
        from marshmallow import ValidationError

        try:
            rate = parse_policy_decimal(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if rate < 0 or rate > Decimal("0.01"):
            raise ValidationError(f"a daily rate between 0 and 0.01 (1 % a day), got {value}")
        return rate

    def _jsonschema_type_mapping(self):
        return {"type": ["number", "string"]}


class InterestSchema(StrictSchema):
    grace_days = fields.Integer(strict=True, required=True, validate=validate.Range(min=0, max=365))
    daily_rate = DailyRate(required=True)
    fixed_fee = Money(load_default=0)
    cap_pct = Percent(load_default=None, allow_none=True)
    rounding = fields.String(load_default="half_up", validate=validate.OneOf(["half_up"]))
    exclude_disputed = fields.Boolean(load_default=False)


@dataclass(frozen=True)
class Interest:
    grace_days: int
    daily_rate: Decimal
    fixed_fee: int  # minor units
    cap_pct: int | None  # basis points
    exclude_disputed: bool

    def __post_init__(self):
        # the rate as an exact fraction, and its coefficient (the digits of the Decimal), for interest_minor
        num, den = self.daily_rate.as_integer_ratio()
        coefficient = int("".join(map(str, self.daily_rate.as_tuple().digits)))
        object.__setattr__(self, "_rate", (num, den, coefficient))


def build(ctx, raw: dict, path) -> Interest:
    return Interest(raw["grace_days"], raw["daily_rate"], raw["fixed_fee"], raw["cap_pct"], raw["exclude_disputed"])


class InvoiceInterest(NamedTuple):  # not a frozen dataclass: cheaper to build, one per overdue invoice
    invoice_id: str
    days_overdue: int
    chargeable_days: int
    base: int  # open balance, minor units
    interest: int
    fee: int


def compute(section: Interest, invoices) -> list[InvoiceInterest]:
    out = []
    for inv in invoices:
        days = inv.days_overdue - section.grace_days
        if days <= 0 or inv.open_minor <= 0 or (section.exclude_disputed and inv.disputed):
            continue
        interest = interest_minor(section, inv.open_minor, days)
        if section.cap_pct is not None:
            interest = min(interest, inv.open_minor * section.cap_pct // 10000)
        out.append(InvoiceInterest(inv.id, inv.days_overdue, days, inv.open_minor, interest, section.fixed_fee))
    return out


# Decimal's default context keeps 28 significant digits.
_EXACT_DIGITS = 10**28


def interest_minor(section: Interest, base: int, days: int) -> int:
    """round_half_up(base × daily_rate × days) for base > 0 and days > 0, in integers.

    This is what the Decimal expression `Decimal(base) * daily_rate * days` gives, rounded half-up,
    whenever that expression is exact: when the product of the coefficients has at most 28 digits,
    no step rounds. Otherwise the Decimal expression itself is used, so the same rounding applies.
    """
    num, den, coefficient = section._rate
    if base * coefficient * days < _EXACT_DIGITS:
        whole, rest = divmod(base * days * num, den)
        return whole + (2 * rest >= den)
    return round_half_up_minor(Decimal(base) * section.daily_rate * days)
