"""The engine's fast paths give exactly what the plain paths give.

- evaluate_loaded (a case that is already typed) = evaluate (a JSON-shaped case), on every
  input of tests/policy/, for decisions and refusals alike;
- a rule without a condition, applied by Matcher in Python, is reported where the engine
  reported it (definition order), in both phases;
- the matcher's fact document, built from a template with only the fields the rules use, is what
  the JSON encoder wrote, and sending only those fields changes no result;
- message templates parsed once at compile time render what the per-call renderer rendered;
- the libyaml loader gives the same data and positions as the pure-Python one, and errors are
  still reported by the pure-Python one;
- late interest computed in integers is the Decimal expression it replaces.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import string
from decimal import Decimal

import pytest
import yaml
from marshmallow import ValidationError

from engine import InputInvalid, compile_policy, evaluate, evaluate_loaded, load_case
from engine import yamlsource
from engine.facts import CaseSchema
from rules.fields import DECISION, FIELDS, PROFILE
from rules.conditions import to_durable
from engine.matcher import Matcher, dumps as json_dumps
from engine.messages import Template, show
from rules.money import round_half_up_minor
from engine.policytest import _jsonable, _merge
from rules.interest import Interest, interest_minor

from helpers import ROOT, compiled
from reference import field_domains, matching_rule_ids, random_fact, replace_section

CASE_DIR = ROOT / "tests" / "policy"


def policy_inputs():
    """(id, input, as_of, order) for every case of tests/policy/, as `creditctl policy test` builds them."""
    out = []
    for path in sorted(CASE_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        base = doc.get("base_input", {})
        for i, case in enumerate(doc.get("cases", [])):
            as_of = case["as_of"]
            as_of = dt.date.fromisoformat(as_of) if isinstance(as_of, str) else as_of
            order = case.get("order_amount")
            order = None if order is None else str(Decimal(repr(order)) if isinstance(order, float) else order)
            out.append((f"{path.name}#{i}", _jsonable(_merge(base, case.get("input", {}))), as_of, order))
    return out


def outcome(fn):
    try:
        return fn().json
    except InputInvalid as exc:
        return [(e.field, e.code, e.message) for e in exc.errors]


# ---------------------------------------------------------------- evaluate_loaded
def test_evaluate_loaded_equals_evaluate_on_every_policy_test_input(policy):
    inputs = policy_inputs()
    assert len(inputs) >= 100
    compared = refused_by_schema = 0
    for name, data, as_of, order in inputs:
        expected = outcome(lambda: evaluate(policy, copy.deepcopy(data), as_of, order=order))
        try:
            typed = CaseSchema().load(copy.deepcopy(data))  # typed, not checked against the policy
        except ValidationError:  # refused before any policy check
            refused_by_schema += 1
            assert isinstance(expected, list), name
            continue
        assert outcome(lambda: evaluate_loaded(policy, typed, as_of, order=order)) == expected, name
        # what load_case returns (already checked) can be evaluated again and again
        if not isinstance(expected, list):
            loaded = load_case(copy.deepcopy(data), policy)
            for _ in range(2):
                assert evaluate_loaded(policy, loaded, as_of, order=order).json == expected, name
        compared += 1
    assert compared > refused_by_schema


def test_evaluate_loaded_refuses_like_evaluate(policy):
    name, data, as_of, _ = policy_inputs()[0]
    typed = CaseSchema().load(copy.deepcopy(data))
    for bad_as_of, bad_order in ((dt.datetime(2026, 1, 1), None), (as_of, "-5"), (as_of, "1.001")):
        assert outcome(lambda: evaluate_loaded(policy, typed, bad_as_of, order=bad_order)) == outcome(
            lambda: evaluate(policy, copy.deepcopy(data), bad_as_of, order=bad_order)
        )
    unknown = copy.deepcopy(typed)
    unknown["customer"]["industry"] = "mining"  # not a category of the policy
    data_unknown = copy.deepcopy(data)
    data_unknown["customer"]["industry"] = "mining"
    refusal = outcome(lambda: evaluate_loaded(policy, unknown, as_of))
    assert isinstance(refusal, list) and refusal == outcome(lambda: evaluate(policy, data_unknown, as_of))


# ---------------------------------------------------------------- rules without a condition
def always_policy_text(policy_text):
    """The shipped policy plus rules without a condition: first, in the middle and last, in both phases.
    The credit check rules have no `when`, which only the text of a stored version may have: compile
    it with legacy_when=True (a new text cannot have an unconditional decision-phase rule)."""
    data = yaml.safe_load(policy_text)
    data["segments"] = (
        [{"id": "segment.always_first", "when": "always", "strategy": ["everyone"]}]
        + data["segments"]
        + [{"id": "segment.always_last", "when": "always", "strategy": ["last"]}]
    )
    data["review"].insert(1, {"id": "review.always", "when": "always", "every_months": 7})
    data["credit"]["check"].insert(1, {"id": "check.always", "outcome": "refer"})
    data["credit"]["check"].append({"id": "check.always_last", "outcome": "approve"})
    text = policy_text
    for key in ("segments", "review", "credit"):
        text = replace_section(text, key, data[key])
    return text


def test_rules_without_a_condition_keep_their_definition_position(policy_text):
    rnd = random.Random(5)
    with compiled(always_policy_text(policy_text), "always.yaml", legacy_when=True) as policy:
        always = {r.id for r in policy.rules if r.condition == ("all", ())}
        assert {
            "segment.always_first",
            "segment.always_last",
            "review.always",
            "check.always",
            "check.always_last",
            "owner.team",
        } <= always
        for phase in (PROFILE, DECISION):
            matcher = policy.matchers[phase]
            assert not set(matcher._always) - always and set(matcher._always)
            assert not set(matcher._always) & set(matcher._by_key.values())  # not in the C ruleset
            domains, refs = field_domains(policy, phase)
            for _ in range(500):
                fact = random_fact(rnd, domains, refs)
                assert matcher.match(fact) == matching_rule_ids(policy, phase, fact)


# ---------------------------------------------------------------- the matcher's fact document
ODD_VALUES = [
    "本地",
    'a"b',
    "x\\y",
    "\x00\x01\x1f",
    "\x7f\u2028",
    "😀",
    "",
    "{}",
    "1",
    "true",
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    10**30,
]


def engine_definition(policy, phase):
    return {r.id: {"all": [{"m": to_durable(r.condition)}]} for r in policy.rules if r.phase == phase}


def test_the_document_is_what_the_json_encoder_writes(policy):
    """The template gives byte for byte what the encoder gave for the same fields, odd values
    included; a value it does not write itself (or a missing field) sends the fact to the encoder."""
    rnd = random.Random(11)
    for phase in (PROFILE, DECISION):
        matcher = policy.matchers[phase]
        assert matcher._fields and set(matcher._fields) <= set(policy.phase_fields[phase])
        domains, refs = field_domains(policy, phase)
        for n in range(500):
            fact = random_fact(rnd, domains, refs)
            for name in rnd.sample(sorted(fact), 3):
                fact[name] = rnd.choice(ODD_VALUES)
            sent = {name: fact[name] for name in matcher._fields}
            assert matcher._document(fact, n) == f'{{"sid":"s","id":"f{n}",{json_dumps(sent)[1:]}'
        fact = random_fact(rnd, domains, refs)
        for odd in (Decimal(1), 1.5, IntSubclass(3), StrSubclass("x"), [1], {}):
            assert matcher._document(dict(fact, **{matcher._fields[0]: odd}), 1) is None
        assert matcher._document({k: v for k, v in fact.items() if k != matcher._fields[-1]}, 1) is None


class IntSubclass(int):
    pass


class StrSubclass(str):
    pass


def test_sending_only_the_rules_fields_changes_no_result(policy):
    """A Matcher told its fields answers as one sent the whole fact, whatever else the fact carries,
    with fields missing, or with values it leaves to the JSON encoder."""
    rnd = random.Random(12)
    for phase in (PROFILE, DECISION):
        definition = engine_definition(policy, phase)
        domains, refs = field_domains(policy, phase, extra_fields=list(FIELDS))
        narrow = Matcher(f"narrow.{phase}", definition, policy.phase_fields[phase])
        whole = Matcher(f"whole.{phase}", definition)
        try:
            assert narrow._fields is not None and whole._fields is None
            for _ in range(600):
                fact = random_fact(rnd, domains, refs)
                if rnd.random() < 0.2:
                    del fact[rnd.choice(narrow._fields)]
                if rnd.random() < 0.2:
                    fact[rnd.choice(narrow._fields)] = rnd.choice([IntSubclass(5), StrSubclass("local"), None])
                got = narrow.match(fact)
                assert got == whole.match(fact)
                if all(type(fact.get(name)) in (int, bool, str) for name in narrow._fields):
                    assert got == matching_rule_ids(policy, phase, fact)
        finally:
            narrow.dispose()
            whole.dispose()


def test_a_ruleset_of_only_unconditional_rules_needs_no_engine():
    matcher = Matcher("only-always", {"a": {"all": [{"m": {"t": 1}}]}, "b": {"all": [{"m": {"t": 1}}]}})
    try:
        assert matcher.match({"t": 1, "x": 3}) == ["a", "b"]
    finally:
        matcher.dispose()


# ---------------------------------------------------------------- message templates
class _Values(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def render_per_call(template, fact, params=(), extra=None, exponent=2):
    """The renderer before templates were compiled (engine/messages.py until 2026-11): the reference."""
    if not template:
        return ""
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    values = _Values()
    for name in names:
        if extra and name in extra:
            values[name] = extra[name]
        elif any(p[0] == name for p in params):
            key, kind, value = next(p for p in params if p[0] == name)
            values[name] = show(kind, value, exponent)
        elif name in fact and name in FIELDS:
            values[name] = show(FIELDS[name].kind, fact[name], exponent)
    return template.format_map(values)


@pytest.mark.parametrize(
    "template",
    [
        "",
        "no placeholders",
        "{{escaped}} braces",
        "limit {limit}, score {credit_score}, {outstanding:>14}",
        "{deposit_pct} deposit, {utilisation} used, {score_drop} drop, {manual_score} {reputation!r}",
        "{anchor_invoice} {limit} {anchor_invoice} {unknown_name} {exposure:^20}",
    ],
)
def test_a_compiled_template_renders_what_the_per_call_renderer_did(template):
    params = (("limit", "money", 5_000_000), ("anchor_invoice", "int", 3), ("terms_days", "int", 30))
    fact = {
        "credit_score": 71,
        "outstanding": 123_456_789,
        "deposit_pct": 3050,
        "utilisation": 9000,
        "score_drop": -12,
        "manual_score": True,
        "reputation": "medium",
        "exposure": -1_000_001,
        "unknown_name": 5,
    }
    for extra in (None, {}, {"anchor_invoice": "INV-9"}):
        assert Template(template, params, 2, "fallback" if not template else "").render(fact, extra) == (
            render_per_call(template, fact, params, extra) or ("fallback" if not template else "")
        )


def test_every_message_of_the_shipped_policy_renders_as_before(policy):
    fact = {name: 0 for name in FIELDS}
    fact.update(
        {
            "outstanding": 98_765_432,
            "utilisation": 9123,
            "reputation": "high",
            "credit_score": 83,
            "score_drop": -4,
            "aging_worsened": True,
        }
    )
    extra = {"anchor_invoice": "INV-1"}
    for rule in policy.rules:
        expected = render_per_call(rule.message, fact, rule.params, extra) if rule.message else None
        got = policy.messages[rule.id].render(fact, extra)
        assert got == expected if rule.message else got.startswith(f"{rule.id}: ")


# ---------------------------------------------------------------- YAML
def parse_with(loader_class, text):
    node, data = yamlsource._compose_and_construct(loader_class, text)
    positions, errors = {}, []
    yamlsource._walk(node, (), positions, errors, "f")
    return repr(data), positions, [e.format() for e in errors]


@pytest.mark.skipif(yamlsource._FastExactLoader is None, reason="this PyYAML has no libyaml")
def test_libyaml_gives_the_same_data_and_positions_as_pure_python(policy_text):
    generated = replace_section(
        policy_text,
        "segments",
        [
            {
                "id": f"segment.g{i}",
                "strategy": ["s"],
                "message": "é «x» {region}: 50% off",
                "when": {"all": [{"field": "region", "eq": "remote"}, {"field": "customer_age_days", "gte": i}]},
            }
            for i in range(20)
        ],
        block=True,
    )
    duplicate = policy_text.replace("  currency: CNY\n", "  currency: CNY\n  currency: USD\n")
    texts = [
        t
        for t in (policy_text, generated, duplicate, always_policy_text(policy_text))
        if t.endswith("\n") and not yamlsource._LIBYAML_DIFFERS.search(t)
    ]  # what load_yaml gives libyaml
    assert generated in texts
    for text in texts:
        assert parse_with(yamlsource._FastExactLoader, text) == parse_with(yamlsource._ExactLoader, text)


def test_yaml_errors_are_reported_by_the_pure_python_loader(monkeypatch):
    texts = [
        "policy: [\n",
        "a: 1\n\tb: 2\n",
        "a: .nan\n",
        "a: {b: c?d}\n",
        "a: >#\n x\n",
        "%YAML 1.1\n---\n",
        "a: 1\n---\nb: 2\n",
        "---",
    ]
    fast = [yamlsource.load_yaml(t, "f.yaml") for t in texts]
    monkeypatch.setattr(yamlsource, "_FastExactLoader", None)
    pure = [yamlsource.load_yaml(t, "f.yaml") for t in texts]
    for (fl, fe), (pl, pe) in zip(fast, pure):
        assert fe == pe
        assert (fl is None) == (pl is None)
        if fl is not None:
            assert (repr(fl.data), fl.positions) == (repr(pl.data), pl.positions)


def test_compiling_through_libyaml_gives_the_same_policy(policy_text, monkeypatch):
    fast = compile_policy(policy_text, "p.yaml")
    monkeypatch.setattr(yamlsource, "_FastExactLoader", None)
    pure = compile_policy(policy_text, "p.yaml")
    try:
        assert fast.version == pure.version and fast.rules == pure.rules
    finally:
        fast.dispose()
        pure.dispose()


# ---------------------------------------------------------------- interest in integers
@pytest.mark.parametrize(
    "rate",
    [
        "0",
        "0.0005",
        "0.01",
        "0.00033",
        "5E-4",
        "0.00050",
        "1E-7",
        "0.0099999999999",
        "0.000123456789012345678901234567",
    ],
)
def test_interest_in_integers_is_the_decimal_expression(rate):
    """interest_minor = round_half_up(Decimal(base) × rate × days), including where Decimal's 28
    digits round the product (the integer path is not taken there) and the halves."""
    section = Interest(5, Decimal(rate), 0, None, False)
    rnd = random.Random(rate)

    def decimal_way(base, days):
        try:
            return round_half_up_minor(Decimal(base) * Decimal(rate) * days)
        except ArithmeticError as exc:
            return type(exc)

    def integer_way(base, days):
        try:
            return interest_minor(section, base, days)
        except ArithmeticError as exc:
            return type(exc)

    for _ in range(4000):
        base = rnd.choice(
            [rnd.randint(1, 10**4), rnd.randint(1, 10**9), rnd.randint(1, 10**17), 10**17, rnd.randint(10**20, 10**30)]
        )
        days = rnd.choice([1, 2, rnd.randint(1, 5000), 10**6])
        assert integer_way(base, days) == decimal_way(base, days), (base, days)
    for base in range(1, 3000):  # x.5 minor units come up often at 0.0005
        assert integer_way(base, 1) == decimal_way(base, 1)
