"""风险预警: alerts raised when their condition holds at evaluation time."""
from __future__ import annotations

from marshmallow import fields, validate

from .fields import DECISION

from .common import Rule, RuleSchema, parse_condition

SEVERITIES = ("info", "warning", "critical")


class AlertRuleSchema(RuleSchema):
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))


def build(ctx, raw: list, path) -> list[Rule]:
    rules = []
    for i, r in enumerate(raw):
        here = path + (i,)
        if r["when"] is None:
            ctx.error("E_MISSING", "an alert needs a 'when'", here)
            continue
        cond = parse_condition(ctx, r["when"], DECISION, here + ("when",))
        if cond is not None:
            rules.append(Rule(r["id"], "alerts", DECISION, cond, (), r["message"], here,
                              (("severity", r["severity"]),)))
    return rules
