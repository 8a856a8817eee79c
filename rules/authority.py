"""审批权限: who may release a referred order, and how long a referral stays open.

`authority:` is optional and evaluates nothing: no rule of it runs in the engine, so adding it
leaves every decision of the policy byte-identical (only the version changes, as with any edit).

    authority:
      referral_expiry_days: 7          # an open referral expires (and frees its hold) after this
      provisional_hold: true           # a referred order checked with reserve holds its amount meanwhile
      levels:                          # ascending; each may release up to its amount over the limit
        - {level: team_lead, over_limit_up_to: "100000"}
        - {level: credit_manager, over_limit_up_to: "1000000"}
        - {level: cfo}                 # no amount: no bound (only the last level)

      four_eyes_above: "200000"        # a limit granted more than this above the policy's needs a second person
      four_eyes_publish: true          # a policy published through the API waits for a second controller

The levels also bound a controller's granted limit (api/service/grants.py): a grant above the policy's limit
needs the level whose `over_limit_up_to` covers the amount above it.

Without the section a referral expires after DEFAULT_EXPIRY_DAYS, holds nothing, and any controller may
release it. provisional_hold is off by default: with it, referred orders take credit that approved orders
would otherwise get, which changes how a book fills up under load (a policy decides to opt in).
"""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import fields, validate

from .common import Money, StrictSchema

DEFAULT_EXPIRY_DAYS = 7
LEVEL_NAME = validate.Regexp(r"^[a-z][a-z0-9_]{0,31}$", error="a level is lower-case letters, digits and _")


class LevelSchema(StrictSchema):
    level = fields.String(required=True, validate=LEVEL_NAME)
    over_limit_up_to = Money(load_default=None)


class AuthoritySchema(StrictSchema):
    referral_expiry_days = fields.Integer(
        strict=True, load_default=DEFAULT_EXPIRY_DAYS, validate=validate.Range(min=1, max=365)
    )
    provisional_hold = fields.Boolean(load_default=False)
    levels = fields.List(fields.Nested(LevelSchema), load_default=list)
    four_eyes_above = Money(load_default=None)
    four_eyes_publish = fields.Boolean(load_default=False)


@dataclass(frozen=True)
class Level:
    name: str
    over_limit_up_to: int | None  # minor units; None: no bound


@dataclass(frozen=True)
class Authority:
    referral_expiry_days: int = DEFAULT_EXPIRY_DAYS
    provisional_hold: bool = False
    levels: tuple[Level, ...] = ()  # ascending; empty: no matrix
    four_eyes_above: int | None = None  # minor units above the policy's limit; None: no second person for grants
    four_eyes_publish: bool = False  # a publish through the API is a proposal a second controller approves

    def rank(self, name: str | None) -> int | None:
        for i, level in enumerate(self.levels):
            if level.name == name:
                return i
        return None

    def needed(self, over_limit_minor: int) -> Level | None:
        """The lowest level that may release `over_limit_minor` over the limit (None: no matrix)."""
        for level in self.levels:
            if level.over_limit_up_to is None or over_limit_minor <= level.over_limit_up_to:
                return level
        return self.levels[-1] if self.levels else None  # unreachable: build() checks the top


def build(ctx, raw: dict | None, path) -> Authority:
    if raw is None:
        return Authority()
    levels, seen, previous = [], set(), -1
    for i, r in enumerate(raw["levels"]):
        here = path + ("levels", i)
        if r["level"] in seen:
            ctx.error("E_DUPLICATE_ID", f"authority level '{r['level']}' is defined twice", here + ("level",))
        seen.add(r["level"])
        bound = r["over_limit_up_to"]
        last = i == len(raw["levels"]) - 1
        if bound is None and not last:
            ctx.error("E_VALUE_TYPE", "only the last (highest) level may have no over_limit_up_to", here)
        if bound is not None and bound <= previous:
            ctx.error("E_VALUE_TYPE", "levels go in ascending order of over_limit_up_to", here + ("over_limit_up_to",))
        previous = bound if bound is not None else previous
        levels.append(Level(r["level"], bound))
    if levels and levels[-1].over_limit_up_to is not None:
        ctx.error(
            "E_MISSING",
            "the last (highest) level must have no over_limit_up_to: someone may release any amount",
            path + ("levels", len(levels) - 1),
        )
    return Authority(
        raw["referral_expiry_days"],
        raw["provisional_hold"],
        tuple(levels),
        raw["four_eyes_above"],
        raw["four_eyes_publish"],
    )
