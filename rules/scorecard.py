"""内部信用评分: points per band of payment-history factors, summed and clamped.

A score set by a controller on the credit file (manual assessment) replaces the
scorecard's; the decision says which one was used.
"""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import fields, validate

from .fields import FACTOR_PRESENT, FIELDS, SCORE_FACTORS

from .common import Band, BandSchema, StrictSchema, find_band, read_bands


class PointsBandSchema(BandSchema):
    points = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=100))


class FactorSchema(StrictSchema):
    missing = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=0, max=100))
    bands = fields.List(fields.Nested(PointsBandSchema), required=True, validate=validate.Length(min=1))


class ScorecardSchema(StrictSchema):
    min = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=100))
    max = fields.Integer(strict=True, load_default=100, validate=validate.Range(min=0, max=100))
    factors = fields.Dict(
        keys=fields.String(validate=validate.OneOf(SCORE_FACTORS)),
        values=fields.Nested(FactorSchema),
        required=True,
        validate=validate.Length(min=1),
    )


@dataclass(frozen=True)
class Factor:
    name: str
    bands: tuple[Band, ...]
    missing: int | None


@dataclass(frozen=True)
class Scorecard:
    low: int
    high: int
    factors: tuple[Factor, ...]


def build(ctx, raw: dict, path) -> Scorecard | None:
    if raw["min"] > raw["max"]:
        ctx.error("E_VALUE_TYPE", "scorecard min is above max", path + ("min",))
    factors = []
    best_total = 0
    for name, factor in raw["factors"].items():
        here = path + ("factors", name)
        if name in FACTOR_PRESENT and factor["missing"] is None:
            ctx.error("E_MISSING", f"'{name}' can be absent; give the points for that case as 'missing'", here)
        bands = read_bands(factor["bands"], FIELDS[name].kind, "points", here + ("bands",), ctx.error_at)
        if bands:
            factors.append(Factor(name, bands, factor["missing"]))
            best_total += max([b.value for b in bands] + [factor["missing"] or 0])
    if best_total < raw["max"] and factors and len(factors) == len(raw["factors"]):  # no factor dropped by an error
        ctx.error(
            "E_UNREACHABLE",
            f"the best possible total is {best_total}, so a score of {raw['max']} can never be reached",
            path + ("max",),
        )
    return Scorecard(raw["min"], raw["max"], tuple(factors))


def score(card: Scorecard, fact: dict) -> tuple[int, list[tuple[str, int, str]]]:
    """Total score and (factor, points, why) per factor."""
    parts = []
    total = 0
    for factor in card.factors:
        present_flag = FACTOR_PRESENT.get(factor.name)
        if present_flag and not fact[present_flag]:
            points, why = factor.missing, "no data"
        else:
            points, why = find_band(factor.bands, fact[factor.name]).value, "band"
        parts.append((factor.name, points, why))
        total += points
    return max(card.low, min(card.high, total)), parts
