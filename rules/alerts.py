"""风险预警: alerts raised when their condition holds at evaluation time (never `when: always`:
an alert raised for everybody tells nobody anything)."""

from __future__ import annotations

from marshmallow import fields, validate

from .fields import DECISION

from .common import Rule, RuleSchema, rule_condition

SEVERITIES = ("info", "warning", "critical")


class AlertRuleSchema(RuleSchema):
    WHEN_ALWAYS = False  # (the JSON Schema; the compiler refuses it itself)
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))


def build(ctx, raw: list, path) -> list[Rule]:
    rules = []
    for i, r in enumerate(raw):
        here = path + (i,)
        cond = rule_condition(
            ctx,
            r["when"],
            DECISION,
            here,
            name=f"alert '{r['id']}'",
            refused="an alert raised for every customer would tell nothing",
            optional_before=False,
        )
        if cond is not None:
            rules.append(
                Rule(r["id"], "alerts", DECISION, cond, (), r["message"], here, (("severity", r["severity"]),))
            )
    return rules
