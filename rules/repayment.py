"""灵活还款: instalments and deferral by class; waivers are never automatic.

For each option the most generous matching rule applies (a customer eligible for six
instalments is not limited to three by a broader rule).
"""

from __future__ import annotations

from marshmallow import fields, validate

from .fields import PROFILE

from .common import Rule, RuleSchema, StrictSchema, rule_condition


class InstalmentRuleSchema(RuleSchema):
    max_count = fields.Integer(strict=True, required=True, validate=validate.Range(min=2, max=120))


class DeferralRuleSchema(RuleSchema):
    max_days = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=365))


class RepaymentSchema(StrictSchema):
    instalments = fields.List(fields.Nested(InstalmentRuleSchema), load_default=list)
    deferral = fields.List(fields.Nested(DeferralRuleSchema), load_default=list)
    waiver = fields.String(
        load_default="refer",
        validate=validate.OneOf(["refer"], error="waivers are assessed by a controller: the only mode is 'refer'"),
    )


def build(ctx, raw: dict, path) -> list[Rule]:
    rules = []
    for key, param, family in (
        ("instalments", "max_count", "repayment.instalments"),
        ("deferral", "max_days", "repayment.deferral"),
    ):
        for i, r in enumerate(raw[key]):
            here = path + (key, i)
            cond = rule_condition(
                ctx, r["when"], PROFILE, here, name=f"{key} rule '{r['id']}'", always="for an option every customer has"
            )
            if cond is not None:
                rules.append(Rule(r["id"], family, PROFILE, cond, ((param, "int", r[param]),), r["message"], here))
    return rules


def options(fired: list[Rule], waiver_mode: str) -> dict:
    def best(family, param):
        values = [r.param(param) for r in fired if r.family == family]
        return max(values) if values else 0

    count, days = best("repayment.instalments", "max_count"), best("repayment.deferral", "max_days")
    return {
        "instalments": {"allowed": count > 0, "max_count": count},
        "deferral": {"allowed": days > 0, "max_days": days},
        "waiver": {"mode": waiver_mode},
    }
