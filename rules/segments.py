"""Segment strategies: a named strategy for a combination of classes
(e.g. manufacturing + large → regular visits and flexible instalments)."""
from __future__ import annotations

from marshmallow import fields, validate

from .fields import PROFILE

from .common import Rule, RuleSchema, rule_condition


class SegmentRuleSchema(RuleSchema):
    strategy = fields.List(fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_]*$")), required=True,
                           validate=validate.Length(min=1))


def build(ctx, raw: list, path) -> list[Rule]:
    rules = []
    for i, r in enumerate(raw):
        here = path + (i,)
        cond = rule_condition(ctx, r["when"], PROFILE, here, name=f"segment '{r['id']}'",
                              always="for a segment every customer belongs to")
        if cond is not None:
            rules.append(Rule(r["id"], "segments", PROFILE, cond, (), r["message"], here,
                              (("strategy", tuple(r["strategy"])),)))
    return rules
