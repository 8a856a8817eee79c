"""Checks shared by the use cases: date ranges, text lengths, the policy's categories, the
canonical JSON of what the trail stores."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from marshmallow import ValidationError, fields

from engine.facts import CATEGORY_OF
from rules.money import to_minor

from ..errors import invalid

CUSTOMER_TEXT_LIMITS = {"name": 256, "collector": 128}  # api/store/tables.py Customer columns
# dates the API accepts: the engine adds days and months to them, which overflows near year 1 and 9999
DATE_MIN, DATE_MAX = dt.date(1900, 1, 1), dt.date(2999, 12, 31)
DATE_RANGE_MESSAGE = f"must be between {DATE_MIN} and {DATE_MAX}"

EVENT_TYPES = (
    "invoice_issued",
    "payment_received",
    "credit_note",
    "promise_to_pay",
    "dispute_opened",
    "dispute_resolved",
    "instalment_plan_agreed",
    "arrears_reason_recorded",
    "customer_updated",
)


class StrictBoolean(fields.Boolean):
    """A JSON body's boolean: true or false only; "yes", "true", 1 are a client's mistake, not a guess to make."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("must be a JSON boolean: true or false")
        return value


def dates_out_of_range(value, path: str = "") -> list[str]:
    """Fields of a loaded (marshmallow) value holding a date outside DATE_MIN..DATE_MAX."""
    if isinstance(value, dt.date):
        return [] if DATE_MIN <= value <= DATE_MAX else [path or "_"]
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out += dates_out_of_range(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            out += dates_out_of_range(v, f"{path}[{i}]")
    return out


def check_dates(value, prefix: str = "") -> None:
    bad = dates_out_of_range(value, prefix)
    if bad:
        raise invalid({f: [DATE_RANGE_MESSAGE] for f in bad})


def check_lengths(customer: dict, prefix: str) -> None:
    """What the database columns hold (PostgreSQL refuses longer text)."""
    errors = {
        f"{prefix}{key}": [f"at most {n} characters"]
        for key, n in CUSTOMER_TEXT_LIMITS.items()
        if isinstance(customer.get(key), str) and len(customer[key]) > n
    }
    if errors:
        raise invalid(errors)


def check_categories(policy, customer: dict, prefix: str) -> None:
    cats = policy.content["categories"]
    errors = {}
    for key, category in CATEGORY_OF.items():
        value = customer.get(key)
        if value is not None and value not in cats[category]:
            errors[f"{prefix}{key}"] = [
                f"'{value}' is not a {category} of the policy (one of {', '.join(cats[category])})"
            ]
    if errors:
        raise invalid(errors)


def money_minor(value, exponent: int, field: str) -> int:
    try:
        return to_minor(value, exponent)
    except ValueError as exc:
        raise invalid({field: [str(exc)]}) from None


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_json_default)
