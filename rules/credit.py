"""信用政策: credit limits and terms by class, deposits, and the credit check of an order.

Limits: every matching rule applies and the most conservative value wins (lowest limit,
shortest terms, highest deposit), so a new-customer cap can never be lifted by another rule.
Check: the most severe outcome of the matching rules wins; no match means approve.
A limit rule may be `when: always` (a default for everyone); a check rule may not: one without a
real condition would decide every order alike (deposits for everyone belong in a limit rule).
"""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import fields, validate

from .fields import DECISION, INT, MONEY, PERCENT, PROFILE

from .common import Money, Percent, Rule, RuleSchema, StrictSchema, rule_condition

OUTCOMES = ("approve", "approve_with_conditions", "refer", "reject")  # ascending severity
CONDITION_TYPES = ("deposit", "prepayment")
_EVERY_ORDER = {
    "approve": "approve every order",
    "approve_with_conditions": "put its condition on every order",
    "refer": "refer every order",
    "reject": "reject every order",
}


class LimitRuleSchema(RuleSchema):
    limit = Money(load_default=None)
    terms_days = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=0, max=3650))
    deposit_pct = Percent(load_default=None)


class CheckRuleSchema(RuleSchema):
    WHEN_ALWAYS = False  # (the JSON Schema; the compiler refuses it itself)
    outcome = fields.String(required=True, validate=validate.OneOf(OUTCOMES))
    condition = fields.String(load_default=None, validate=validate.OneOf(CONDITION_TYPES))


class CreditSchema(StrictSchema):
    limits = fields.List(fields.Nested(LimitRuleSchema), required=True, validate=validate.Length(min=1))
    check = fields.List(fields.Nested(CheckRuleSchema), load_default=list)
    # the longest an approved order's amount is held against the limit (the service's default: 30 days);
    # no load_default, so a policy that does not say it keeps its version
    reservation_days = fields.Integer(strict=True, validate=validate.Range(min=1, max=365))
    # tolerance: an overdue amount below this does not count against an order — the check rules that read
    # an overdue field (OVERDUE_FIELDS) are set aside; no default, so a policy without it keeps its version
    min_overdue_balance = Money()


def build(ctx, raw: dict, path) -> list[Rule]:
    rules = []
    for i, r in enumerate(raw["limits"]):
        here = path + ("limits", i)
        if r["limit"] is None and r["terms_days"] is None and r["deposit_pct"] is None:
            ctx.error("E_MISSING", "a limit rule sets at least one of limit, terms_days, deposit_pct", here)
        cond = rule_condition(
            ctx,
            r["when"],
            PROFILE,
            here,
            name=f"limit rule '{r['id']}'",
            always="for a default that applies to every customer",
        )
        params = tuple(
            (k, kind, r[k])
            for k, kind in (("limit", MONEY), ("terms_days", INT), ("deposit_pct", PERCENT))
            if r[k] is not None
        )
        if cond is not None:
            rules.append(Rule(r["id"], "credit.limit", PROFILE, cond, params, r["message"], here))
    for i, r in enumerate(raw["check"]):
        here = path + ("check", i)
        if r["outcome"] == "approve_with_conditions" and not r["condition"]:
            ctx.error("E_MISSING", "approve_with_conditions needs a 'condition' (deposit or prepayment)", here)
        if r["condition"] and r["outcome"] in ("reject",):
            ctx.error("E_VALUE_TYPE", "a rejected order carries no condition", here + ("condition",))
        cond = rule_condition(
            ctx,
            r["when"],
            DECISION,
            here,
            name=f"credit check rule '{r['id']}'",
            refused=f"a rule that always held would {_EVERY_ORDER[r['outcome']]}",
        )
        if cond is not None:
            rules.append(
                Rule(
                    r["id"],
                    "credit.check",
                    DECISION,
                    cond,
                    (),
                    r["message"],
                    here,
                    (("outcome", r["outcome"]), ("condition", r["condition"])),
                )
            )
    return rules


@dataclass(frozen=True)
class Terms:
    limit: int  # minor units
    terms_days: int
    deposit_pct: int  # basis points
    limit_rules: tuple[str, ...]


def resolve_terms(fired: list[Rule]) -> Terms:
    """Most conservative value over the limit rules that fired. None fired → no credit at all."""
    limits = [r.param("limit") for r in fired if r.param("limit") is not None]
    terms = [r.param("terms_days") for r in fired if r.param("terms_days") is not None]
    deposits = [r.param("deposit_pct") for r in fired if r.param("deposit_pct") is not None]
    return Terms(
        min(limits) if limits else 0,
        min(terms) if terms else 0,
        max(deposits) if deposits else 0,
        tuple(r.id for r in fired),
    )


def check_outcome(fired: list[Rule]) -> tuple[str, list[str]]:
    outcome = max((r.get("outcome") for r in fired), key=OUTCOMES.index, default="approve")
    conditions = [] if outcome == "reject" else sorted({r.get("condition") for r in fired if r.get("condition")})
    if outcome == "approve" and conditions:
        outcome = "approve_with_conditions"
    return outcome, conditions
