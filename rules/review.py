"""定期评估: review cadence by risk class; the most frequent matching cadence applies."""

from __future__ import annotations

import calendar
import datetime as dt

from marshmallow import fields, validate

from .fields import PROFILE

from .common import Rule, RuleSchema, rule_condition


class ReviewRuleSchema(RuleSchema):
    every_months = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=60))


def build(ctx, raw: list, path) -> list[Rule]:
    rules = []
    for i, r in enumerate(raw):
        here = path + (i,)
        cond = rule_condition(
            ctx,
            r["when"],
            PROFILE,
            here,
            name=f"review rule '{r['id']}'",
            always="for a cadence that applies to every customer",
        )
        if cond is not None:
            rules.append(
                Rule(
                    r["id"], "review", PROFILE, cond, (("every_months", "int", r["every_months"]),), r["message"], here
                )
            )
    return rules


def add_months(day: dt.date, months: int) -> dt.date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def schedule(fired: list[Rule], last_reviewed_on: dt.date, as_of: dt.date) -> dict | None:
    months = [r.param("every_months") for r in fired if r.family == "review"]
    if not months:
        return None
    every = min(months)
    next_on = add_months(last_reviewed_on, every)
    return {
        "every_months": every,
        "last_reviewed_on": last_reviewed_on.isoformat(),
        "next_review_on": next_on.isoformat(),
        "due": next_on <= as_of,
    }
