"""Structured conditions: YAML form → checked AST → durable_rules JSON.

YAML form (one of):
    {field: NAME, OP: VALUE}                 OP in eq ne lt lte gt gte in not_in
    {field: NAME, OP: {field: OTHER}}        compare two fact fields
    {all: [COND, ...]} / {any: [COND, ...]} / {not: COND}
    always                                   only as a rule's whole `when` (where its family allows it)

The checked AST uses tuples so a compiled policy is immutable and hashable:
    ("cmp", field, op, value, is_field_ref) | ("all", (..)) | ("any", (..))
Negation is pushed down to the comparisons (durable_rules has no `not` inside a
fact test), and `in` becomes an `any` of equalities.
"""

from __future__ import annotations

from .fields import did_you_mean
from .fields import BOOL, ENUM, FIELDS, INT, MONEY, PERCENT, PROFILE

COMPARISONS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in")
ORDERED = ("lt", "lte", "gt", "gte")
NEGATE = {"eq": "ne", "ne": "eq", "lt": "gte", "lte": "gt", "gt": "lte", "gte": "lt"}
DR_OP = {"ne": "$neq", "lt": "$lt", "lte": "$lte", "gt": "$gt", "gte": "$gte"}
SYMBOL = {"eq": "=", "ne": "≠", "lt": "<", "lte": "≤", "gt": ">", "gte": "≥"}
ALWAYS = ("all", ())
ALWAYS_WORD = "always"


class ConditionProblem(Exception):
    def __init__(self, code: str, message: str, path: tuple):
        super().__init__(message)
        self.code, self.message, self.path = code, message, path


def shape_errors(cond, path=()) -> list[tuple[tuple, str]]:
    """Structural check used by the marshmallow stage: (relative path, message) pairs."""
    if cond == ALWAYS_WORD and path:
        return [(path, "'always' stands alone as a rule's whole condition ('when: always'), not inside all/any/not")]
    if not isinstance(cond, dict):
        return [
            (
                path,
                "a condition is a mapping: {field: ..., eq: ...}, {all: [...]}, {any: [...]} or {not: ...}"
                + ("" if path else ", or the word 'always'"),
            )
        ]
    keys = set(cond)
    if keys & {"all", "any"}:
        if len(keys) != 1:
            return [(path, f"'all'/'any' must stand alone in its mapping, found {sorted(keys)}")]
        key = next(iter(keys))
        items = cond[key]
        if not isinstance(items, list) or not items:
            return [(path + (key,), f"'{key}' takes a non-empty list of conditions")]
        out = []
        for i, item in enumerate(items):
            out += shape_errors(item, path + (key, i))
        return out
    if "not" in keys:
        if len(keys) != 1:
            return [(path, "'not' must stand alone in its mapping")]
        return shape_errors(cond["not"], path + ("not",))
    if "field" not in keys:
        return [(path, "a comparison needs 'field' and one operator (eq, ne, lt, lte, gt, gte, in, not_in)")]
    ops = keys - {"field"}
    unknown = ops - set(COMPARISONS)
    if unknown:
        name = sorted(unknown)[0]
        return [(path + (name,), f"unknown operator '{name}'{did_you_mean(name, COMPARISONS)}")]
    if len(ops) != 1:
        return [(path, "a comparison takes exactly one operator; use 'all' to combine")]
    if not isinstance(cond["field"], str):
        return [(path + ("field",), "'field' must be a field name")]
    return []


def parse(cond, enums: dict[str, tuple], allowed_stage: str, path: tuple):
    """Resolve fields and values; raises ConditionProblem with the YAML-relative path."""
    if cond is None or cond == ALWAYS_WORD:  # None: the text of a stored version (legacy_when)
        return ALWAYS
    if "all" in cond or "any" in cond:
        key = "all" if "all" in cond else "any"
        return (key, tuple(parse(c, enums, allowed_stage, path + (key, i)) for i, c in enumerate(cond[key])))
    if "not" in cond:
        return negate(parse(cond["not"], enums, allowed_stage, path + ("not",)))
    name = cond["field"]
    spec = _field(name, allowed_stage, path + ("field",))
    op = next(k for k in cond if k != "field")
    raw = cond[op]
    vpath = path + (op,)
    if op in ("in", "not_in"):
        if not isinstance(raw, list) or not raw:
            raise ConditionProblem("E_VALUE_TYPE", f"'{op}' takes a non-empty list of values", vpath)
        values = tuple(_value(spec, v, enums, vpath + (i,)) for i, v in enumerate(raw))
        parts = tuple(("cmp", name, "eq" if op == "in" else "ne", v, False) for v in values)
        return ("any", parts) if op == "in" else ("all", parts)
    if isinstance(raw, dict):
        if set(raw) != {"field"}:
            raise ConditionProblem("E_VALUE_TYPE", "compare with a value or with {field: NAME}", vpath)
        other = _field(raw["field"], allowed_stage, vpath + ("field",))
        if other.kind != spec.kind:
            raise ConditionProblem(
                "E_VALUE_TYPE",
                f"cannot compare {spec.kind} field '{name}' with {other.kind} field '{other.name}'",
                vpath,
            )
        if op in ORDERED and spec.kind in (ENUM, BOOL):
            raise ConditionProblem("E_VALUE_TYPE", f"'{op}' needs numbers; '{name}' is {spec.kind}", vpath)
        return ("cmp", name, op, other.name, True)
    if op in ORDERED and spec.kind in (ENUM, BOOL):
        raise ConditionProblem("E_VALUE_TYPE", f"'{op}' needs numbers; '{name}' is {spec.kind}", vpath)
    return ("cmp", name, op, _value(spec, raw, enums, vpath), False)


def _field(name, allowed_stage, path):
    spec = FIELDS.get(name)
    if spec is None:
        raise ConditionProblem("E_UNKNOWN_FIELD", f"unknown fact field '{name}'{did_you_mean(name, FIELDS)}", path)
    if allowed_stage == PROFILE and spec.stage != PROFILE:
        raise ConditionProblem(
            "E_FIELD_STAGE",
            f"'{name}' is only known after credit limits and the dunning stage are resolved; "
            "use it in credit.check or alerts",
            path,
        )
    return spec


def _value(spec, raw, enums, path):
    """YAML value → engine value: money in minor units, percent in basis points."""
    from .money import parse_policy_decimal

    if spec.kind == BOOL:
        if not isinstance(raw, bool):
            raise ConditionProblem("E_VALUE_TYPE", f"'{spec.name}' is true/false, got {raw!r}", path)
        return raw
    if spec.kind == ENUM:
        allowed = enums.get(spec.name, ())
        if not isinstance(raw, str) or raw not in allowed:
            raise ConditionProblem(
                "E_UNKNOWN_VALUE",
                f"'{raw}' is not a value of '{spec.name}' (one of {', '.join(allowed)})"
                f"{did_you_mean(str(raw), allowed)}",
                path,
            )
        return raw
    try:
        number = parse_policy_decimal(raw)
    except ValueError as exc:
        raise ConditionProblem("E_VALUE_TYPE", f"'{spec.name}' compares with a number: {exc}", path) from None
    if spec.nonnegative and number < 0:
        raise ConditionProblem("E_VALUE_SIGN", f"'{spec.name}' is never negative; threshold {raw} makes no sense", path)
    scale = {MONEY: 2, PERCENT: 2, INT: 0}[spec.kind]
    scaled = number.scaleb(scale)
    if scaled != scaled.to_integral_value():
        unit = {MONEY: "0.01", PERCENT: "0.01 %", INT: "1"}[spec.kind]
        raise ConditionProblem("E_VALUE_TYPE", f"'{spec.name}' threshold {raw} is finer than {unit}", path)
    return int(scaled)


def negate(node):
    kind = node[0]
    if kind == "all":
        return ("any", tuple(negate(c) for c in node[1])) if node[1] else ("any", ())
    if kind == "any":
        return ("all", tuple(negate(c) for c in node[1]))
    _, name, op, value, ref = node
    return ("cmp", name, NEGATE[op], value, ref)


def fields_used(node, out=None) -> set:
    out = set() if out is None else out
    if node[0] == "cmp":
        out.add(node[1])
        if node[4]:
            out.add(node[3])
    else:
        for c in node[1]:
            fields_used(c, out)
    return out


def is_contradiction(node) -> bool:
    """True when an `all` can never hold: empty `any`, two different equalities, empty range."""
    if node[0] == "any":
        return all(is_contradiction(c) for c in node[1])
    if node[0] == "cmp":
        return False
    comparisons = [c for c in node[1] if c[0] == "cmp" and not c[4]]
    if any(is_contradiction(c) for c in node[1] if c[0] != "cmp"):
        return True
    by_field: dict[str, list] = {}
    for c in comparisons:
        by_field.setdefault(c[1], []).append(c)
    for items in by_field.values():
        equal = {c[3] for c in items if c[2] == "eq"}
        if len(equal) > 1:
            return True
        low, high = None, None  # integer-valued after scaling, so bounds are exact
        for _, _, op, v, _ in items:
            if isinstance(v, bool) or isinstance(v, str):
                continue
            if op in ("gt", "gte"):
                bound = v + 1 if op == "gt" else v
                low = bound if low is None else max(low, bound)
            elif op in ("lt", "lte"):
                bound = v - 1 if op == "lt" else v
                high = bound if high is None else min(high, bound)
            elif op == "eq":
                low = v if low is None else max(low, v)
                high = v if high is None else min(high, v)
        if low is not None and high is not None and low > high:
            return True
        if equal and any(c[2] == "ne" and c[3] in equal for c in items):
            return True
    return False


def to_durable(node) -> dict:
    """durable_rules JSON expression for the `m` of a rule; equality tests first (see notes:
    an ordering test first multiplies the simultaneously-true tests and hits error 303)."""
    if node[0] == "cmp":
        _, name, op, value, ref = node
        rhs = {"$m": value} if ref else value
        if op == "eq":
            return {name: rhs}
        return {DR_OP[op]: {name: rhs}}
    parts = [to_durable(c) for c in _equalities_first(node[1])]
    if not parts:
        return {"t": 1} if node[0] == "all" else {"t": 0}
    if len(parts) == 1:
        return parts[0]
    return {"$and" if node[0] == "all" else "$or": parts}


def _equalities_first(children):
    return sorted(children, key=lambda c: 0 if (c[0] == "cmp" and c[2] == "eq" and not c[4]) else 1)


def describe(node) -> str:
    """Readable form of a condition for docs and messages."""
    if node[0] == "cmp":
        _, name, op, value, ref = node
        from .fields import show

        shown = value if ref else show(FIELDS[name].kind, value)
        return f"{name} {SYMBOL[op]} {shown}"
    if not node[1]:
        return "always" if node[0] == "all" else "never"
    joiner = " and " if node[0] == "all" else " or "
    return "(" + joiner.join(describe(c) for c in node[1]) + ")"


def comparison_count(node) -> int:
    return 1 if node[0] == "cmp" else sum(comparison_count(c) for c in node[1])
