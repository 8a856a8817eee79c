"""The shape of policies.yaml as one marshmallow schema, assembled from the rule families.

The same schema validates policies (compiler stage 2) and generates the JSON Schema
editors use for completion (`creditctl policy schema`).
"""

from __future__ import annotations

from marshmallow import fields, validate

from rules.alerts import AlertRuleSchema
from rules.authority import AuthoritySchema
from rules.classification import CategoriesSchema, ClassificationSchema
from rules.common import StrictSchema
from rules.credit import CreditSchema
from rules.dunning import DunningSchema
from rules.interest import InterestSchema
from rules.repayment import RepaymentSchema
from rules.review import ReviewRuleSchema
from rules.scorecard import ScorecardSchema
from rules.segments import SegmentRuleSchema


class PolicyHeaderSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.-]+$"))
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    description = fields.String(load_default="")


class PolicySchema(StrictSchema):
    policy = fields.Nested(PolicyHeaderSchema, required=True)
    categories = fields.Nested(CategoriesSchema, required=True)
    classification = fields.Nested(ClassificationSchema, required=True)
    scorecard = fields.Nested(ScorecardSchema, required=True)
    credit = fields.Nested(CreditSchema, required=True)
    dunning = fields.Nested(DunningSchema, required=True)
    interest = fields.Nested(InterestSchema, required=True)
    repayment = fields.Nested(RepaymentSchema, required=True)
    alerts = fields.List(fields.Nested(AlertRuleSchema), load_default=list)
    review = fields.List(fields.Nested(ReviewRuleSchema), required=True, validate=validate.Length(min=1))
    segments = fields.List(fields.Nested(SegmentRuleSchema), load_default=list)
    # optional and without a default: a policy without it keeps its content, hence its version
    authority = fields.Nested(AuthoritySchema)


def json_schema() -> dict:
    """JSON Schema (draft-07) of policies.yaml, generated from PolicySchema."""
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin, resolver

    plugin = MarshmallowPlugin()
    # OpenAPI 3.1 schemas are JSON Schema: nullable fields get type [..., "null"], not `nullable: true`
    APISpec("creditctl policy", "1", "3.1.0", plugins=[plugin])  # registers the plugin: builds its converter
    converter = plugin.converter
    converter.add_attribute_function(_custom_types)
    definitions: dict = {}
    for schema_cls in _all_schemas(PolicySchema):
        # keyed by the name the converter's $refs use (class name without "Schema")
        definition = definitions[resolver(schema_cls)] = converter.schema2jsonschema(schema_cls)
        if "when" in definition.get("properties", {}):
            # required, though marshmallow lets it through so that the compiler can say why
            # (E_MISSING_CONDITION); `always` only where the family allows it
            definition["required"] = sorted({*definition.get("required", ()), "when"})
            if getattr(schema_cls, "WHEN_ALWAYS", True):
                definition["properties"]["when"] = {"anyOf": [{"const": "always"}, {"$ref": "#/definitions/Condition"}]}
            else:
                definition["properties"]["when"] = {"$ref": "#/definitions/Condition"}
    root = definitions.pop(resolver(PolicySchema))
    definitions["Condition"] = CONDITION_JSON_SCHEMA
    out = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "creditctl policies.yaml",
        **root,
        "definitions": definitions,
    }
    import json

    text = json.dumps(out, sort_keys=True).replace("#/components/schemas/", "#/definitions/")
    return json.loads(text)


def _custom_types(self, field, **kwargs):
    mapping = getattr(field, "_jsonschema_type_mapping", None)
    if not mapping:
        return {}
    out = mapping()
    if field.allow_none:  # runs after apispec's own nullable handling, which saw no type yet
        if "$ref" in out:
            out = {"anyOf": [{"$ref": out["$ref"]}, {"type": "null"}]}
        elif "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out = {**out, "type": [*types, "null"]}
    return out


def _all_schemas(root):
    seen, stack = [], [root]
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.append(cls)
        for f in cls._declared_fields.values():
            inner = getattr(f, "inner", None) or getattr(f, "value_field", None)
            for candidate in (f, inner):
                nested = getattr(candidate, "nested", None)
                if isinstance(nested, type):
                    stack.append(nested)
    return seen


_COMPARISON = {
    "type": "object",
    "required": ["field"],
    "additionalProperties": False,
    "properties": {
        "field": {"type": "string"},
        **{op: {} for op in ("eq", "ne", "lt", "lte", "gt", "gte")},
        "in": {"type": "array"},
        "not_in": {"type": "array"},
    },
}
CONDITION_JSON_SCHEMA = {
    "oneOf": [
        _COMPARISON,
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["all"],
            "properties": {"all": {"type": "array", "items": {"$ref": "#/definitions/Condition"}}},
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["any"],
            "properties": {"any": {"type": "array", "items": {"$ref": "#/definitions/Condition"}}},
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["not"],
            "properties": {"not": {"$ref": "#/definitions/Condition"}},
        },
    ]
}
