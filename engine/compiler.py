"""policies.yaml → CompiledPolicy, in named, ordered stages.

    parse     safe YAML with positions (duplicate keys are errors)
    shape     marshmallow schema of the whole file (unknown keys rejected)
    resolve   categories and bands; each rule family resolves its fields and values
    check     duplicate ids, unreachable rules, message placeholders, engine limits
    build     one durable_rules ruleset per phase

Errors accumulate within a stage (up to MAX_ERRORS); a stage with errors stops the
pipeline, since later stages depend on its results.
"""
from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass, field
from decimal import Decimal

from marshmallow import ValidationError

from rules import alerts, authority, classification, credit, dunning, interest, repayment, review, scorecard, segments
from rules.common import Rule

from rules import conditions
from rules.fields import did_you_mean

from .errors import PolicyError, PolicyInvalid
from rules.fields import DECISION, FIELDS, PROFILE
from .matcher import Matcher
from .messages import Template
from rules.money import currency_exponent
from .policy_schema import PolicySchema
from .yamlsource import LoadedYaml, load_yaml, read_text_file

MAX_ERRORS = 50
STAGES = ("parse", "shape", "resolve", "check", "build")
# durable_rules freezes with ~512 distinct tests under one node and fails (error 303) with
# more than 64 tests true at once: stay well inside both (docs/durable-rules.md).
MAX_TESTS_PER_FIELD = 256
MAX_LEADING_RANGE_TESTS = 64
# More rules than this with one condition and durable_rules refuses the ruleset (its error 108).
MAX_RULES_PER_CONDITION = 256
# Placeholders a family offers besides fact fields and the rule's own params.
EXTRA_PLACEHOLDERS = {"dunning.stage": {"anchor_invoice"}, "dunning.action": {"anchor_invoice"}}


class _TooMany(Exception):
    pass


class CompileContext:
    def __init__(self, source: LoadedYaml, legacy_when: bool = False):
        self.source = source
        self.legacy_when = legacy_when
        self.errors: list[PolicyError] = []
        self.enums: dict[str, tuple] = {}

    def error(self, code: str, message: str, path: tuple) -> None:
        self.errors.append(self.source.error(code, message, tuple(path)))
        if len(self.errors) >= MAX_ERRORS:
            raise _TooMany()

    error_at = error   # the signature bands use


@dataclass(frozen=True)
class CompiledPolicy:
    version: str                  # sha256 of the canonical content
    name: str
    currency: str
    exponent: int
    source: str
    text: str
    content: dict = field(repr=False, compare=False)
    band_classes: dict = field(repr=False, compare=False)
    scorecard: scorecard.Scorecard = field(repr=False, compare=False)
    dunning: dunning.Dunning = field(repr=False, compare=False)
    interest: interest.Interest = field(repr=False, compare=False)
    waiver_mode: str = "refer"
    rules: tuple[Rule, ...] = field(default=(), repr=False, compare=False)
    rules_by_id: dict = field(default_factory=dict, repr=False, compare=False)
    matchers: dict = field(default_factory=dict, repr=False, compare=False)
    phase_fields: dict = field(default_factory=dict, repr=False, compare=False)
    messages: dict = field(default_factory=dict, repr=False, compare=False)   # rule id → Template
    # rule id → the Chinese Template (`message_zh`; the English one where the rule has none)
    messages_zh: dict = field(default_factory=dict, repr=False, compare=False)
    # rule id → (fact fields its reason keeps: those its condition and templates use, whether it shows the anchor)
    reason_fields: dict = field(default_factory=dict, repr=False, compare=False)
    authority: authority.Authority = field(default=authority.Authority(), repr=False, compare=False)

    @property
    def short_version(self) -> str:
        return self.version[:12]

    def dispose(self) -> None:
        """Free the durable_rules rulesets (when a version is retired)."""
        for matcher in self.matchers.values():
            matcher.dispose()


def canonical_content(data) -> str:
    # key order is kept (not sorted): rule and factor order shows in the decision's reasons
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"),
                      default=lambda v: str(v) if isinstance(v, Decimal) else None)


def compile_policy(text: str | bytes, source: str = "policies.yaml", *, legacy_when: bool = False) -> CompiledPolicy:
    """Compile or raise PolicyInvalid with every error found (up to MAX_ERRORS).

    `text` may be the file's bytes (they must be UTF-8: E_ENCODING otherwise). `legacy_when` is for
    the text of a version stored before every rule had to state its `when`: a rule without one is
    read as `when: always`, as it was then, so that version (and its hash) still compiles.
    """
    loaded, errors = load_yaml(text, source)
    if errors:
        raise PolicyInvalid(errors[:MAX_ERRORS])
    text = loaded.text
    if not isinstance(loaded.data, dict):
        raise PolicyInvalid([loaded.error("E_SHAPE", "the policy file must be a mapping of sections", ())])
    ctx = CompileContext(loaded, legacy_when)
    try:
        data = _shape(ctx, loaded)
        if ctx.errors:
            raise PolicyInvalid(ctx.errors)
        parts = _resolve(ctx, data)
        if ctx.errors:
            raise PolicyInvalid(ctx.errors)
        parts["messages_zh"] = [_message_zh(data, rule) for rule in parts["rules"]]
        _check(ctx, parts["rules"], parts["messages_zh"])
        if ctx.errors:
            raise PolicyInvalid(ctx.errors)
    except _TooMany:
        raise PolicyInvalid(ctx.errors) from None
    return _build(loaded, text, data, parts)


def _shape(ctx: CompileContext, loaded: LoadedYaml) -> dict:
    try:
        return PolicySchema().load(loaded.data)
    except ValidationError as exc:
        for path, message in _flatten(exc.messages, ()):
            code = "E_UNKNOWN_KEY" if message == "Unknown field." else (
                "E_MISSING" if message == "Missing data for required field." else "E_SHAPE")
            if code == "E_UNKNOWN_KEY":
                message = f"unknown key '{path[-1]}'{_suggest_key(path)}"
            elif code == "E_MISSING":
                message = f"'{path[-1]}' is required"
            ctx.error(code, message, path)
        return {}


def _suggest_key(path) -> str:
    schema = PolicySchema
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        f = schema._declared_fields.get(part)
        nested = getattr(f, "nested", None) or getattr(getattr(f, "inner", None), "nested", None)
        if not isinstance(nested, type):
            return ""
        schema = nested
    return did_you_mean(str(path[-1]), schema._declared_fields)


def _flatten(messages, path):
    if isinstance(messages, dict):
        for key, value in sorted(messages.items(), key=lambda kv: str(kv[0])):
            sub = path if key == "_schema" else path + (key,)
            yield from _flatten(value, sub)
    elif isinstance(messages, list):
        for m in messages:
            if isinstance(m, (dict, list)):
                yield from _flatten(m, path)
            else:
                yield path, str(m)
    else:
        yield path, str(messages)


def _resolve(ctx: CompileContext, data: dict) -> dict:
    header = data["policy"]
    try:
        if currency_exponent(header["currency"]) != 2:
            ctx.error("E_UNKNOWN_CURRENCY", f"{header['currency']} does not have 2 decimal places; policies read "
                      "money with 2 decimals, so only such currencies are supported", ("policy", "currency"))
    except ValueError as exc:
        ctx.error("E_UNKNOWN_CURRENCY", str(exc), ("policy", "currency"))
    classification.check_categories(ctx, data["categories"], ("categories",))
    ctx.enums = classification.enums_of(data["categories"], data["classification"])
    bands = classification.build(ctx, data["classification"], ("classification",))
    card = scorecard.build(ctx, data["scorecard"], ("scorecard",))
    dun, dunning_rules = dunning.build(ctx, data["dunning"], ("dunning",))
    rules = (credit.build(ctx, data["credit"], ("credit",)) + dunning_rules
             + repayment.build(ctx, data["repayment"], ("repayment",))
             + review.build(ctx, data["review"], ("review",))
             + segments.build(ctx, data["segments"], ("segments",))
             + alerts.build(ctx, data["alerts"], ("alerts",)))
    return {"bands": bands, "scorecard": card, "dunning": dun,
            "interest": interest.build(ctx, data["interest"], ("interest",)),
            "waiver": data["repayment"]["waiver"], "rules": rules,
            "authority": authority.build(ctx, data.get("authority"), ("authority",))}


def _message_zh(data: dict, rule: Rule) -> str:
    """The rule's `message_zh` (its Chinese message; "" when it has none), found at the rule's path."""
    node = data
    for part in rule.path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return ""
    return node.get("message_zh") or "" if isinstance(node, dict) else ""


def _check(ctx: CompileContext, rules: list[Rule], messages_zh: list[str]) -> None:
    seen: dict[str, Rule] = {}
    for rule, zh in zip(rules, messages_zh):
        if rule.id in seen:
            first = ctx.source.locate(seen[rule.id].path)
            ctx.error("E_DUPLICATE_ID", f"rule id '{rule.id}' is already used at line {first[0]}", rule.path)
        seen.setdefault(rule.id, rule)
        if conditions.is_contradiction(rule.condition):
            ctx.error("E_UNREACHABLE", f"rule '{rule.id}' can never match: "
                      f"{conditions.describe(rule.condition)}", rule.path + ("when",))
        _check_message(ctx, rule, rule.message, "message")
        if zh:
            _check_message(ctx, rule, zh, "message_zh")
    for phase in (PROFILE, DECISION):
        _check_engine_limits(ctx, [r for r in rules if r.phase == phase], phase)


def _check_message(ctx: CompileContext, rule: Rule, text: str, key: str) -> None:
    allowed = {n for n, f in FIELDS.items() if rule.phase == DECISION or f.stage == PROFILE}
    allowed |= {p[0] for p in rule.params} | EXTRA_PLACEHOLDERS.get(rule.family, set())
    try:
        names = [name for _, name, spec, conv in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        ctx.error("E_MESSAGE", f"{key} template: {exc}", rule.path + (key,))
        return
    for name in names:
        if name not in allowed:
            hint = did_you_mean(name, allowed)
            if name in FIELDS:
                hint = " (only known after limits are resolved: usable in credit.check and alerts)"
            ctx.error("E_MESSAGE", f"{key} uses unknown placeholder '{{{name}}}'{hint}", rule.path + (key,))


def _leading_range_tests(node, out: dict, gate=None) -> None:
    """Range tests the engine evaluates for every fact that passes `gate` (an equality
    (field, value) placed first in the conjunction), collected as out[gate] = {tests}."""
    if node[0] == "cmp":
        if node[2] != "eq" or node[4]:
            out.setdefault(gate, set()).add((node[1], node[2], node[3]))
    elif node[0] == "any":
        for child in node[1]:
            _leading_range_tests(child, out, gate)
    elif node[1]:
        equalities = [c for c in node[1] if c[0] == "cmp" and c[2] == "eq" and not c[4]]
        others = [c for c in node[1] if not (c[0] == "cmp" and c[2] == "eq" and not c[4])]
        if equalities and gate is None:
            gate = (equalities[0][1], equalities[0][3])
        if others:
            _leading_range_tests(others[0], out, gate)


def _check_engine_limits(ctx, rules, phase) -> None:
    per_field: dict[str, set] = {}
    first_rule: dict[str, Rule] = {}
    for rule in rules:
        stack = [rule.condition]
        while stack:
            node = stack.pop()
            if node[0] == "cmp":
                per_field.setdefault(node[1], set()).add(node[2:])
                first_rule.setdefault(node[1], rule)
            else:
                stack.extend(node[1])
    for name, tests in per_field.items():
        if len(tests) > MAX_TESTS_PER_FIELD:
            ctx.error("E_ENGINE_LIMIT", f"{len(tests)} distinct tests on '{name}' in the {phase} rules; the engine "
                      f"allows {MAX_TESTS_PER_FIELD}: use a classification band instead",
                      first_rule[name].path + ("when",))
    # Tests that could be true at once: the ungated ones, plus for each gate field the largest group
    # behind one of its values (a fact has one value per field); kept up to date rule by rule.
    leading: dict = {}
    largest: dict[str, int] = {}
    for rule in rules:
        added: dict = {}
        _leading_range_tests(rule.condition, added)
        for gate, tests in added.items():
            group = leading.setdefault(gate, set())
            group |= tests
            if gate is not None:
                largest[gate[0]] = max(largest.get(gate[0], 0), len(group))
        after = len(leading.get(None, ())) + sum(largest.values())
        if after > MAX_LEADING_RANGE_TESTS:
            ctx.error("E_ENGINE_LIMIT", f"more than {MAX_LEADING_RANGE_TESTS} range tests in the {phase} rules "
                      f"could hold at once (this rule brings it to {after}): gate each rule with a distinct "
                      "equality test or use classification bands", rule.path + ("when",))
            break          # once, at the rule that goes over: the bound never decreases
    same: dict[str, int] = {}
    for rule in rules:
        if rule.condition == conditions.ALWAYS:       # matched in Python (engine/matcher.py), not by the engine
            continue
        key = json.dumps(conditions.to_durable(rule.condition), sort_keys=True)
        same[key] = same.get(key, 0) + 1
        if same[key] == MAX_RULES_PER_CONDITION + 1:
            ctx.error("E_ENGINE_LIMIT", f"more than {MAX_RULES_PER_CONDITION} {phase} rules have this same "
                      f"condition ({conditions.describe(rule.condition)}); the engine allows "
                      f"{MAX_RULES_PER_CONDITION}: merge them, or tell them apart", rule.path + ("when",))


def _build(loaded: LoadedYaml, text: str, data: dict, parts: dict) -> CompiledPolicy:
    content = canonical_content(data)
    version = hashlib.sha256(content.encode("utf-8")).hexdigest()
    rules = tuple(parts["rules"])
    matchers, phase_fields = {}, {}
    for phase in (PROFILE, DECISION):
        phase_rules = [r for r in rules if r.phase == phase]
        used = {"t"}
        for r in phase_rules:
            used |= conditions.fields_used(r.condition)
        phase_fields[phase] = tuple(sorted(used))
        definition = {r.id: {"all": [{"m": conditions.to_durable(r.condition)}]} for r in phase_rules}
        try:
            matchers[phase] = Matcher(f"{data['policy']['name']}.{version[:12]}.{phase}", definition,
                                      phase_fields[phase])
        except Exception as exc:     # noqa: BLE001 — durable_rules' own limits, past the checks above
            for built in matchers.values():
                built.dispose()
            where = phase_rules[0].path if phase_rules else ()
            raise PolicyInvalid([loaded.error(
                "E_ENGINE_LIMIT", f"durable_rules refused the {phase} rules as a whole ({exc}): fewer rules, "
                "or fewer rules that share a test, may fit", where)]) from None
    currency = data["policy"]["currency"]
    exponent = currency_exponent(currency)
    # Templates are parsed here, once per policy, not for every message of every decision.
    # A rule without a message explains itself with its condition.
    messages = {r.id: Template(r.message, r.params, exponent, f"{r.id}: {conditions.describe(r.condition)}")
                for r in rules}
    messages_zh = {r.id: Template(zh, r.params, exponent) if zh else messages[r.id]
                   for r, zh in zip(rules, parts["messages_zh"])}
    reason_fields = {}
    for r in rules:
        shown = {name for t in (messages[r.id], messages_zh[r.id]) for name, kind in t.live}
        used = (conditions.fields_used(r.condition) | shown) & FIELDS.keys()
        reason_fields[r.id] = (tuple(sorted(used)), any("anchor_invoice" in t.names
                                                        for t in (messages[r.id], messages_zh[r.id])))
    return CompiledPolicy(
        version=version, name=data["policy"]["name"], currency=currency,
        exponent=exponent, source=loaded.file, text=text,
        content=json.loads(content), band_classes=parts["bands"], scorecard=parts["scorecard"],
        dunning=parts["dunning"], interest=parts["interest"], waiver_mode=parts["waiver"], rules=rules,
        rules_by_id={r.id: r for r in rules}, matchers=matchers, phase_fields=phase_fields, messages=messages,
        messages_zh=messages_zh, reason_fields=reason_fields,
        authority=parts["authority"])


def compile_file(path: str) -> CompiledPolicy:
    """Compile a policy file (OSError when it cannot be read)."""
    return compile_policy(read_text_file(path), path)
