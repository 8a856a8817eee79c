"""Shared building blocks of the rule families: the Rule record, YAML field types, bands."""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from decimal import Decimal

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from . import conditions
from .fields import FIELDS, INT, MONEY, PERCENT, PROFILE
from .money import parse_policy_decimal

RULE_ID = validate.Regexp(r"^[A-Za-z0-9_.:-]+$", error="rule ids use letters, digits and _ . : -")


@dataclass(frozen=True)
class Rule:
    """One engine rule. `params` are the rule's own values, usable in its message."""
    id: str
    family: str
    phase: str
    condition: tuple
    params: tuple = ()           # ((name, kind, value), ...) with money/percent already scaled
    message: str = ""
    path: tuple = ()
    extra: tuple = ()            # family-specific data ((key, value), ...)

    def param(self, name, default=None):
        for key, _, value in self.params:
            if key == name:
                return value
        return default

    def get(self, name, default=None):
        for key, value in self.extra:
            if key == name:
                return value
        return default


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class ExactNumber(fields.Field):
    """A number written in YAML (int, exact decimal, or decimal string); never a float."""

    def __init__(self, *, scale: int, minimum=None, maximum=None, **kw):
        super().__init__(**kw)
        self.scale, self.minimum, self.maximum = scale, minimum, maximum

    def _deserialize(self, value, attr, data, **kw):
        try:
            number = parse_policy_decimal(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if self.minimum is not None and number < self.minimum:
            raise ValidationError(f"must be at least {self.minimum}, got {value}")
        if self.maximum is not None and number > self.maximum:
            raise ValidationError(f"must be at most {self.maximum}, got {value}")
        scaled = number.scaleb(self.scale)
        if scaled != scaled.to_integral_value():
            raise ValidationError(f"{value} has more than {self.scale} decimal places")
        return int(scaled)

    def _jsonschema_type_mapping(self):
        return {"type": ["number", "string"], "pattern": r"^-?\d+(\.\d+)?$"}


def Money(**kw):
    return ExactNumber(scale=2, minimum=Decimal(0), **kw)


def Percent(**kw):
    return ExactNumber(scale=2, minimum=Decimal(0), maximum=Decimal(100), **kw)


class Condition(fields.Field):
    """A structured condition, or `always`; shape checked here, fields and values in the resolve stage."""

    def _deserialize(self, value, attr, data, **kw):
        if value == conditions.ALWAYS_WORD:
            return value
        problems = conditions.shape_errors(value)
        if problems:
            nested: dict = {}
            for path, message in problems:
                node = nested
                for part in path:
                    node = node.setdefault(part, {})
                node.setdefault("_schema", []).append(message)
            raise ValidationError(_collapse(nested))
        return value

    def _jsonschema_type_mapping(self):
        return {"$ref": "#/definitions/Condition"}      # json_schema() adds `always` where it is allowed


def _collapse(nested):
    # marshmallow nests dict messages; a leaf keeps its list under '_schema'
    if set(nested) == {"_schema"}:
        return nested["_schema"]
    return {k: (_collapse(v) if isinstance(v, dict) else v) for k, v in nested.items()}


class RuleSchema(StrictSchema):
    id = fields.String(required=True, validate=RULE_ID)
    when = Condition(load_default=None)      # required, but reported in the resolve stage (rule_condition)
    message = fields.String(load_default="")
    # the Chinese message (no default: a policy without it keeps its content, and so its version)
    message_zh = fields.String()


# ---------------------------------------------------------------- bands
@dataclass(frozen=True)
class Band:
    value: object         # a label or a number of points
    low: int | None       # inclusive, scaled; None = unbounded
    high: int | None


class BandSchema(StrictSchema):
    min = fields.Raw(load_default=None)
    max = fields.Raw(load_default=None)


def unit_scale(kind: str) -> int:
    return {MONEY: 2, PERCENT: 2, INT: 0}[kind]


def read_bands(raw_bands, kind, value_key, path, error) -> tuple[Band, ...]:
    """Check that bands are ascending, cover every value once (no gap, no overlap)."""
    scale = unit_scale(kind)
    bands: list[Band] = []
    for i, raw in enumerate(raw_bands):
        bounds = []
        for key in ("min", "max"):
            v = raw.get(key)
            if v is None:
                bounds.append(None)
                continue
            try:
                number = parse_policy_decimal(v)
            except ValueError as exc:
                error("E_VALUE_TYPE", f"band {key}: {exc}", path + (i, key))
                return ()
            scaled = number.scaleb(scale)
            if scaled != scaled.to_integral_value():
                error("E_VALUE_TYPE", f"band {key} {v} is finer than the field's unit", path + (i, key))
                return ()
            bounds.append(int(scaled))
        bands.append(Band(raw[value_key], bounds[0], bounds[1]))
    ok = True
    for i, band in enumerate(bands):
        if band.low is not None and band.high is not None and band.low > band.high:
            error("E_BAND_EMPTY", f"band '{band.value}' has min above max", path + (i,))
            ok = False
        if i == 0:
            if band.low is not None:
                error("E_BAND_GAP", f"the first band '{band.value}' must have no min so every value has a band",
                      path + (i, "min"))
                ok = False
            continue
        prev = bands[i - 1]
        if prev.high is None or band.low is None:
            error("E_BAND_OVERLAP", f"band '{band.value}' overlaps the unbounded band '{prev.value}'", path + (i,))
            ok = False
        elif band.low > prev.high + 1:
            error("E_BAND_GAP", f"gap between '{prev.value}' (max {_show(prev.high, scale)}) and "
                  f"'{band.value}' (min {_show(band.low, scale)})", path + (i, "min"))
            ok = False
        elif band.low <= prev.high:
            error("E_BAND_OVERLAP", f"'{band.value}' (min {_show(band.low, scale)}) overlaps "
                  f"'{prev.value}' (max {_show(prev.high, scale)})", path + (i, "min"))
            ok = False
    if bands and bands[-1].high is not None:
        error("E_BAND_GAP", f"the last band '{bands[-1].value}' must have no max so every value has a band",
              path + (len(bands) - 1, "max"))
        ok = False
    return Bands(bands) if ok else ()


def _show(scaled: int, scale: int) -> str:
    return str(Decimal(scaled).scaleb(-scale))


class Bands(tuple):
    """A checked band table (what read_bands returns), with the lower bounds find_band bisects
    over worked out once: a decision looks up ~20 bands."""

    def __new__(cls, bands=()):
        self = super().__new__(cls, bands)
        self.lows = _lows(self)
        return self


def _lows(bands) -> list[int]:
    return [b.low if b.low is not None else -(2 ** 63) for b in bands]


def find_band(bands: tuple[Band, ...], value: int) -> Band:
    lows = bands.lows if type(bands) is Bands else _lows(bands)
    return bands[bisect.bisect_right(lows, value) - 1]


def rule_condition(ctx, when, phase, path, *, name: str, always: str = "", refused: str = "",
                   optional_before: bool = True):
    """The resolved `when` of the rule at `path`, or None after reporting why there is none.

    Every rule states its condition, so that a `when` deleted by mistake cannot turn a rule into
    one for everybody (E_MISSING_CONDITION). Where a family can mean that, `when: always` says so
    and `always` tells what it is for; where it cannot, `refused` says why and `always` is refused
    too. `name` names the rule in the message ("rule 'check.over_limit'").
    The text of a stored version (ctx.legacy_when) is read as it was accepted: no `when` = always,
    in the families where `when` was optional then (optional_before).
    """
    if when is None:
        if ctx.legacy_when and optional_before:
            return conditions.ALWAYS
        hint = f"it needs one: {refused}" if refused else f"write its condition, or 'when: always' {always}"
        ctx.error("E_MISSING_CONDITION", f"{name} has no 'when'; {hint}", path)
        return None
    if when == conditions.ALWAYS_WORD and refused:
        ctx.error("E_MISSING_CONDITION", f"{name} cannot be 'when: always': {refused}", path + ("when",))
        return None
    return parse_condition(ctx, when, phase, path + ("when",))


def parse_condition(ctx, cond, phase, path):
    """Resolve a YAML condition, reporting problems to the compile context."""
    try:
        return conditions.parse(cond, ctx.enums, phase, ())
    except conditions.ConditionProblem as problem:
        ctx.error(problem.code, problem.message, path + problem.path)
        return None


def numeric_profile_field(ctx, name, path):
    spec = FIELDS.get(name)
    if spec is None:
        from .fields import did_you_mean
        ctx.error("E_UNKNOWN_FIELD", f"unknown fact field '{name}'{did_you_mean(name, FIELDS)}", path)
        return None
    if spec.kind not in (MONEY, INT, PERCENT) or spec.stage != PROFILE:
        ctx.error("E_VALUE_TYPE", f"'{name}' is not a numeric ledger field", path)
        return None
    return spec
