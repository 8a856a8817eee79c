"""分阶段催收: reminders before the due date, staged collection, pauses, and who acts.

The customer's stage follows its dunning anchor: the most overdue open invoice whose
collection is not paused (disputed, covered by an open promise to pay, or under a kept
instalment plan). Stage = the highest stage whose entry rule matches; the stage's actions
fall due on the day it is entered and every `cadence_days` after, unless an action says how
often it repeats (`repeat: once`, `repeat: {every_days: N}`, `repeat: until_done`) or from which
day overdue it starts (`from_days_overdue`); see docs/policy-language.md.

Owners, entries and actions each state their `when`; `when: always` is a catch-all owner, an
entry decided by its `min_days_overdue` alone (a stage's floor), or an action the stage always takes.
"""
from __future__ import annotations

from dataclasses import dataclass

from marshmallow import ValidationError, fields, validate

from . import conditions
from .fields import PROFILE

from .common import RULE_ID, Money, Rule, RuleSchema, StrictSchema, rule_condition

MANUAL_CHANNELS = ("phone", "visit", "letter", "lawyer", "legal", "internal")
CHANNELS = ("email", "sms") + MANUAL_CHANNELS
OWNER = validate.Regexp(r"^(automated|dedicated_collector|team:[A-Za-z0-9_.-]+)$",
                        error="owner is automated, dedicated_collector or team:<queue>")


class RemindersSchema(StrictSchema):
    days_before_due = fields.List(fields.Integer(strict=True, validate=validate.Range(min=0, max=365)),
                                  required=True)
    channel = fields.String(load_default="email", validate=validate.OneOf(CHANNELS))
    owner = fields.String(load_default="automated", validate=OWNER)


class PromisePauseSchema(StrictSchema):
    tolerance_days = fields.Integer(strict=True, required=True, validate=validate.Range(min=0, max=365))


class PauseSchema(StrictSchema):
    disputed_invoices = fields.Boolean(load_default=True)
    promise_to_pay = fields.Nested(PromisePauseSchema, load_default=None)
    instalment_plan_kept = fields.Boolean(load_default=True)


class OwnerRuleSchema(RuleSchema):
    owner = fields.String(required=True, validate=OWNER)
    channels = fields.List(fields.String(validate=validate.OneOf(CHANNELS)), load_default=None)
    # the stages the rule owns actions in (all when absent): owners decide per action, not per customer
    stages = fields.List(fields.Integer(strict=True, validate=validate.Range(min=1, max=9)), load_default=None)


REPEAT_WORDS = ("cadence", "once", "until_done")


class RepeatEverySchema(StrictSchema):
    every_days = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=365))
    until_done = fields.Boolean(load_default=False)


class Repeat(fields.Field):
    """How often a stage action falls due in one stage episode: `cadence` (the stage's, the default),
    `once`, `until_done` (on the cadence, but not while the previous one is still open), or
    {every_days: N, until_done: bool}. Loaded as (mode, every_days or None, until_done)."""

    def _deserialize(self, value, attr, data, **kw):
        if value in REPEAT_WORDS:
            return ("once" if value == "once" else "every", None, value == "until_done")
        if isinstance(value, dict):
            loaded = RepeatEverySchema().load(value)
            return ("every", loaded["every_days"], loaded["until_done"])
        raise ValidationError("repeat is once, cadence, until_done or {every_days: N, until_done: true|false}")

    def _jsonschema_type_mapping(self):
        return {"oneOf": [{"type": "string", "enum": list(REPEAT_WORDS)},
                          {"type": "object", "properties": {"every_days": {"type": "integer", "minimum": 1,
                                                                           "maximum": 365},
                                                            "until_done": {"type": "boolean"}},
                           "required": ["every_days"], "additionalProperties": False}]}


class EntrySchema(RuleSchema):
    min_days_overdue = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=36500))
    # a customer moves one stage at a time; an entry marked skip jumps straight to its stage
    skip = fields.Boolean(load_default=False)


class ActionSchema(StrictSchema):
    id = fields.String(load_default=None, validate=RULE_ID)
    type = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]*$"))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    owner = fields.String(load_default=None, validate=OWNER)
    when = RuleSchema._declared_fields["when"]
    message = fields.String(load_default="")
    # the Chinese message (no default: a policy without it keeps its content, and so its version)
    message_zh = fields.String()
    repeat = Repeat(load_default=None)           # absent: the stage's cadence
    # the action starts on the day the anchor invoice is this many days overdue (not before the stage)
    from_days_overdue = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=36500))


class StageSchema(StrictSchema):
    stage = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=9))
    name = fields.String(required=True)
    cadence_days = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=365))
    entry = fields.List(fields.Nested(EntrySchema), required=True, validate=validate.Length(min=1))
    actions = fields.List(fields.Nested(ActionSchema), required=True, validate=validate.Length(min=1))
    # tolerance: the stage is entered only when the collectable overdue amount is at least this (no default)
    min_balance = Money()


class DunningSchema(StrictSchema):
    reminders = fields.Nested(RemindersSchema, required=True)
    pause = fields.Nested(PauseSchema, load_default=lambda: PauseSchema().load({}))
    owners = fields.List(fields.Nested(OwnerRuleSchema), required=True, validate=validate.Length(min=1))
    stages = fields.List(fields.Nested(StageSchema), required=True, validate=validate.Length(min=1))


@dataclass(frozen=True)
class Action:
    id: str
    type: str
    channel: str
    owner: str | None
    conditional: bool
    repeat: str = "every"               # "every" (every_days, or the stage's cadence) or "once"
    every_days: int | None = None       # None: the stage's cadence
    until_done: bool = False            # not created again while the previous one is open
    from_days_overdue: int | None = None


@dataclass(frozen=True)
class Stage:
    number: int
    name: str
    cadence_days: int
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Dunning:
    reminder_days: tuple[int, ...]
    reminder_channel: str
    reminder_owner: str
    pause_disputed: bool
    promise_tolerance_days: int | None
    pause_instalment_plans: bool
    stages: tuple[Stage, ...]


def build(ctx, raw: dict, path) -> tuple[Dunning, list[Rule]]:
    rules: list[Rule] = []
    conds = []
    for i, r in enumerate(raw["owners"]):
        here = path + ("owners", i)
        cond = rule_condition(ctx, r["when"], PROFILE, here, name=f"owner rule '{r['id']}'",
                              always="for a catch-all (of its channels, if it has any)")
        conds.append(cond)
        if cond is not None:
            rules.append(Rule(r["id"], "dunning.owner", PROFILE, cond, (), r["message"], here,
                              (("owner", r["owner"]), ("channels", tuple(r["channels"] or ())),
                               ("stages", tuple(r["stages"] or ())))))
    last = raw["owners"][-1]
    if last["stages"]:
        ctx.error("E_MISSING", "the last owner rule must have no 'stages', so every action has an owner",
                  path + ("owners", len(raw["owners"]) - 1, "stages"))
    if (conds[-1] is not None and conds[-1] != conditions.ALWAYS) or last["channels"]:
        ctx.error("E_MISSING", "the last owner rule must be 'when: always' and have no 'channels', "
                  "so every action has an owner", path + ("owners", len(raw["owners"]) - 1))

    stages = []
    previous_floor = 0
    for i, s in enumerate(raw["stages"]):
        here = path + ("stages", i)
        if s["stage"] != i + 1:
            ctx.error("E_STAGE_ORDER", f"stages are numbered 1, 2, 3… in order; expected {i + 1}, got {s['stage']}",
                      here + ("stage",))
        floors = []
        for j, e in enumerate(s["entry"]):
            ehere = here + ("entry", j)
            cond = rule_condition(ctx, e["when"], PROFILE, ehere, name=f"entry rule '{e['id']}'",
                                  always="when min_days_overdue alone decides (the stage's floor)")
            if cond is None:
                continue
            threshold = ("cmp", "collectable_days_overdue", "gte", e["min_days_overdue"], False)
            full = ("all", (threshold,) + ((cond,) if cond != conditions.ALWAYS else ()))
            if cond == conditions.ALWAYS:
                floors.append(e["min_days_overdue"])
            rules.append(Rule(e["id"], "dunning.stage", PROFILE, full, (("min_days_overdue", "int",
                              e["min_days_overdue"]),), e["message"], ehere,
                              (("stage", s["stage"]), ("entry_day", e["min_days_overdue"]),
                               ("skip", e["skip"]))))
        if floors and min(floors) <= previous_floor:
            ctx.error("E_STAGE_ORDER", f"stage {s['stage']} starts at {min(floors)} days overdue, not after the "
                      f"previous stage ({previous_floor} days)", here + ("entry",))
        previous_floor = min(floors) if floors else previous_floor
        actions = []
        for j, a in enumerate(s["actions"]):
            ahere = here + ("actions", j)
            action_id = a["id"] or f"dunning.stage{s['stage']}.{a['type']}"
            cond = rule_condition(ctx, a["when"], PROFILE, ahere, name=f"action '{action_id}'",
                                  always="for an action the stage always takes")
            # an action for everyone in the stage is part of the stage, not a rule
            conditional = cond is not None and cond != conditions.ALWAYS
            if conditional:
                rules.append(Rule(action_id, "dunning.action", PROFILE, cond, (), a["message"], ahere,
                                  (("stage", s["stage"]),)))
            mode, every, until_done = a["repeat"] or ("every", None, False)
            actions.append(Action(action_id, a["type"], a["channel"], a["owner"], conditional, mode, every,
                                  until_done, a["from_days_overdue"]))
        stages.append(Stage(s["stage"], s["name"], s["cadence_days"], tuple(actions)))

    pause = raw["pause"]
    reminders = raw["reminders"]
    days = reminders["days_before_due"]
    if len(set(days)) != len(days):
        ctx.error("E_DUPLICATE", "a reminder day is listed twice", path + ("reminders", "days_before_due"))
    section = Dunning(tuple(sorted(set(days), reverse=True)), reminders["channel"], reminders["owner"],
                      pause["disputed_invoices"],
                      pause["promise_to_pay"]["tolerance_days"] if pause["promise_to_pay"] else None,
                      pause["instalment_plan_kept"], tuple(stages))
    return section, rules


def resolve_stage(fired: list[Rule]) -> tuple[int, int | None, list[Rule]]:
    """(stage, entry day, the entry rules of that stage that matched)."""
    entries = [r for r in fired if r.family == "dunning.stage"]
    if not entries:
        return 0, None, []
    stage = max(r.get("stage") for r in entries)
    chosen = [r for r in entries if r.get("stage") == stage]
    return stage, min(r.get("entry_day") for r in chosen), chosen


def next_stage(target: int, skip: bool, previous: int | None) -> int:
    """The workflow step: up one stage at a time (or straight to the target when a skip rule
    matched); down at once when the anchor invoice is paid, paused or re-anchored."""
    if previous is None or target <= previous or skip:
        return target
    return previous + 1


def resolve_owner(owner_rules: list[Rule], channel: str, explicit: str | None, collector: str | None,
                  stage: int | None = None) -> str:
    return owner_of(owner_rules, channel, explicit, collector, stage)[0]


def owner_of(owner_rules: list[Rule], channel: str, explicit: str | None, collector: str | None,
             stage: int | None = None) -> tuple[str, str | None]:
    """(owner, the id of the owner rule that decided it; None when the action names its owner):
    the first rule whose channels (if any) include the action's and whose stages (if any) its stage."""
    owner, rule_id = explicit, None
    if owner is None:
        for rule in owner_rules:
            channels, stages = rule.get("channels"), rule.get("stages")
            if (not channels or channel in channels) and (not stages or stage in stages):
                owner, rule_id = rule.get("owner"), rule.id
                break
    if owner == "dedicated_collector":
        return (f"collector:{collector}" if collector else "collector:unassigned"), rule_id
    return owner or "team:unassigned", rule_id


def action_due(action: Action, days_in_stage: int, cadence_days: int, collectable_days_overdue: int,
               taken: tuple | None, kind: str | None = None) -> bool:
    """Whether a stage action falls due today. `taken`: the (type, open) of the actions already created in
    this stage episode before today, or None when not known (a stateless evaluation); `kind`: the type the
    action is created with (another when a segment replaced its channel). Without `taken` a `once` action
    is due on its first day only; with it, a `once` action not yet created is due (late, if a day was
    missed), and an `until_done` one is not created again while its previous one is open."""
    day = days_in_stage
    if action.from_days_overdue is not None:
        day = min(day, collectable_days_overdue - action.from_days_overdue)
    if day < 0:
        return False
    kind = kind or action.type
    mine = None if taken is None else [is_open for done_kind, is_open in taken if done_kind == kind]
    if action.repeat == "once":
        return day == 0 if mine is None else not mine
    if day % (action.every_days or cadence_days):
        return False
    return not (action.until_done and mine and any(mine))
