"""Segment strategies: a named strategy for a combination of classes
(e.g. manufacturing + large → regular visits and flexible instalments), and what it changes.

A segment's `strategy` names are labels; its effects make the strategy take effect, each
named in the decision's reasons by the segment rule that changed the figure:
- `limit` caps the credit limit, `deposit_pct` raises the deposit on new orders to at least
  this, `terms_days` sets the payment terms (longer or shorter than the limit rules');
- `owners` are owner rules tried before the policy's (`dunning.owners`), e.g. every stage-1
  contact automated;
- `instead` replaces a stage action's channel (`{visit: phone}`: a call instead of a visit), the
  matching segments in policy order;
- `cadence_days` sets a stage's cadence (`{2: 7}`: stage 2 actions weekly);
- `instalments` and `deferral_days` offer at least these repayment options.
When several matching segments set the same figure, the most conservative one wins (lowest limit,
highest deposit, shortest terms and cadence, policy order for owners and channels), as for limit
rules; repayment options take the most generous, as repayment rules do.
"""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from .dunning import CHANNELS, OwnerRuleSchema
from .fields import INT, MONEY, PERCENT, PROFILE

from .common import Money, Percent, Rule, RuleSchema, StrictSchema, rule_condition

# the action type a replaced channel takes (a call instead of a visit is a phone call)
CHANNEL_TYPE = {
    "phone": "phone_call",
    "email": "email_reminder",
    "sms": "sms_reminder",
    "visit": "visit",
    "letter": "written_demand",
    "lawyer": "lawyer_letter",
    "legal": "litigation",
    "internal": "review",
}


class SegmentOwnerSchema(StrictSchema):
    owner = OwnerRuleSchema._declared_fields["owner"]
    channels = OwnerRuleSchema._declared_fields["channels"]
    stages = OwnerRuleSchema._declared_fields["stages"]


class SegmentRuleSchema(RuleSchema):
    strategy = fields.List(
        fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_]*$")), required=True, validate=validate.Length(min=1)
    )
    limit = Money(load_default=None)
    terms_days = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=0, max=3650))
    deposit_pct = Percent(load_default=None)
    owners = fields.List(fields.Nested(SegmentOwnerSchema), load_default=None)
    instead = fields.Dict(
        keys=fields.String(validate=validate.OneOf(CHANNELS)),
        values=fields.String(validate=validate.OneOf(CHANNELS)),
        load_default=None,
    )
    cadence_days = fields.Dict(
        keys=fields.Integer(strict=True, validate=validate.Range(min=1, max=9)),
        values=fields.Integer(strict=True, validate=validate.Range(min=1, max=365)),
        load_default=None,
    )
    instalments = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=2, max=120))
    deferral_days = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=365))

    @validates_schema
    def _no_self_replacement(self, data, **kw):
        for old, new in (data.get("instead") or {}).items():
            if old == new:
                raise ValidationError(f"'{old}' instead of itself", "instead")


def build(ctx, raw: list, path) -> list[Rule]:
    rules = []
    for i, r in enumerate(raw):
        here = path + (i,)
        cond = rule_condition(
            ctx, r["when"], PROFILE, here, name=f"segment '{r['id']}'", always="for a segment every customer belongs to"
        )
        if cond is None:
            continue
        params = tuple(
            (k, kind, r[k])
            for k, kind in (
                ("limit", MONEY),
                ("terms_days", INT),
                ("deposit_pct", PERCENT),
                ("instalments", INT),
                ("deferral_days", INT),
            )
            if r[k] is not None
        )
        extra = (("strategy", tuple(r["strategy"])),)
        if r["owners"]:
            extra += (
                (
                    "owners",
                    tuple((o["owner"], tuple(o["channels"] or ()), tuple(o["stages"] or ())) for o in r["owners"]),
                ),
            )
        if r["instead"]:
            extra += (("instead", tuple(sorted(r["instead"].items()))),)
        if r["cadence_days"]:
            extra += (("cadence_days", tuple(sorted(r["cadence_days"].items()))),)
        rules.append(Rule(r["id"], "segments", PROFILE, cond, params, r["message"], here, extra))
    return rules


def owner_rules(fired: list[Rule]) -> list[Rule]:
    """The owner rules of the matching segments, in policy order, to be tried before the policy's."""
    out = []
    for seg in fired:
        for j, (owner, channels, stages) in enumerate(seg.get("owners", ())):
            out.append(
                Rule(
                    seg.id,
                    "dunning.owner",
                    PROFILE,
                    ("all", ()),
                    (),
                    "",
                    seg.path + ("owners", j),
                    (("owner", owner), ("channels", channels), ("stages", stages)),
                )
            )
    return out


def instead(fired: list[Rule], channel: str) -> list[tuple[str, str]]:
    """[(segment id, new channel)]: each matching segment's replacement, applied in policy order to the
    channel as the segments before it left it (a remote large manufacturer: phone → visit → phone)."""
    out = []
    for seg in fired:
        for old, new in seg.get("instead", ()):
            if old == channel:
                out.append((seg.id, new))
                channel = new
                break
    return out


def cadence(fired: list[Rule], stage: int, default: int) -> tuple[int, str | None]:
    """(the stage's cadence, the segment that set it or None): the shortest a matching segment sets."""
    best, by = default, None
    for seg in fired:
        for number, days in seg.get("cadence_days", ()):
            if number == stage and (by is None or days < best):
                best, by = days, seg.id
    return best, by
