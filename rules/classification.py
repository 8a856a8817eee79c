"""分类管理: categorical classes declared by the policy, and numeric bands
(amount tier by outstanding, aging bucket by days overdue, reputation by credit score).

Bands are looked up with bisect, not rule tests: a long band table as engine tests can
exceed durable_rules' 64 simultaneously-true tests (docs/durable-rules.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from marshmallow import fields, validate

from .fields import FIELDS

from .common import Band, BandSchema, StrictSchema, find_band, numeric_profile_field, read_bands

CATEGORY_NAMES = ("customer_type", "industry", "region", "company_size", "arrears_reason", "deal_type")
BAND_CLASSES = ("amount_tier", "aging_bucket", "reputation")
# Order of severity, used to tell whether the aging bucket got worse.
LABEL = validate.Regexp(r"^[^\s{}]+$", error="labels are one word (any script), no spaces or braces")


class CategoriesSchema(StrictSchema):
    pass


for _name in CATEGORY_NAMES:
    CategoriesSchema._declared_fields[_name] = fields.List(
        fields.String(validate=LABEL), required=True, validate=validate.Length(min=1)
    )


class LabelBandSchema(BandSchema):
    label = fields.String(required=True, validate=LABEL)


class BandClassSchema(StrictSchema):
    field = fields.String(required=True)
    bands = fields.List(fields.Nested(LabelBandSchema), required=True, validate=validate.Length(min=1))


class ClassificationSchema(StrictSchema):
    amount_tier = fields.Nested(BandClassSchema, required=True)
    aging_bucket = fields.Nested(BandClassSchema, required=True)
    reputation = fields.Nested(BandClassSchema, required=True)


@dataclass(frozen=True)
class BandClass:
    name: str
    field: str
    bands: tuple[Band, ...]

    @cached_property  # read a few times per evaluation; the instance is frozen
    def labels(self) -> tuple[str, ...]:
        return tuple(b.value for b in self.bands)


def enums_of(categories: dict, classification: dict) -> dict[str, tuple]:
    enums = {name: tuple(values) for name, values in categories.items()}
    for name in BAND_CLASSES:
        enums[name] = tuple(b["label"] for b in classification[name]["bands"])
    enums["overdue_amount_tier"] = enums["amount_tier"]  # the same labels, on the overdue amount
    return enums


def check_categories(ctx, categories: dict, path):
    for name, values in categories.items():
        seen = set()
        for i, v in enumerate(values):
            if v in seen:
                ctx.error("E_DUPLICATE", f"'{v}' is listed twice in {name}", path + (name, i))
            seen.add(v)


def build(ctx, classification: dict, path) -> dict[str, BandClass]:
    out = {}
    for name in BAND_CLASSES:
        raw = classification[name]
        here = path + (name,)
        spec = numeric_profile_field(ctx, raw["field"], here + ("field",))
        if spec is None:
            continue
        labels = [b["label"] for b in raw["bands"]]
        for i, label in enumerate(labels):
            if labels.index(label) != i:
                ctx.error("E_DUPLICATE", f"label '{label}' used twice in {name}", here + ("bands", i, "label"))
        bands = read_bands(raw["bands"], spec.kind, "label", here + ("bands",), ctx.error_at)
        if bands:
            out[name] = BandClass(name, raw["field"], bands)
    return out


def classify(band_classes: dict[str, BandClass], fact: dict) -> list[tuple[str, str, Band]]:
    """(class name, label, band) for each band class, in declaration order."""
    out = []
    for name in BAND_CLASSES:
        bc = band_classes[name]
        band = find_band(bc.bands, fact[bc.field])
        out.append((name, band.value, band))
    return out


def rank(band_classes: dict[str, BandClass], name: str, label: str) -> int:
    return band_classes[name].labels.index(label)


# the escalation tier: amount_tier's bands read on overdue_amount (amount_tier stays by outstanding)
OVERDUE_TIER = ("overdue_amount_tier", "amount_tier", "overdue_amount")

assert set(CATEGORY_NAMES + BAND_CLASSES + OVERDUE_TIER) <= set(FIELDS)
