"""Property tests: the durable_rules engine against a plain-Python reference (tests/reference.py).

- shipped policy: random facts over each phase's fields (enum values from the policy, numbers
  around every threshold, both sides of a field comparison often equal or off by one) give
  exactly the reference's rule ids, in definition order;
- generated policies: random alerts and segments (all/any/not, in/not_in, field references,
  non-ASCII enum labels) compiled through compile_policy; the engine, the reference on the
  compiled AST and the reference on the YAML form all agree;
- full evaluations: the same case evaluated twice (with other cases in between, and with a
  second compilation of the same policy) gives byte-identical JSON, whose rule-driven parts
  agree with the reference.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from engine import build_facts, compile_policy, evaluate, load_case
from engine.errors import PolicyInvalid
from engine.evaluator import SEVERITY_ORDER, parse_order
from rules.fields import BOOL, DECISION, ENUM, FIELDS, INT, MONEY, OVERDUE_FIELDS, PERCENT, PROFILE
from rules.money import to_minor
from rules import conditions, dunning, repayment
from rules.alerts import SEVERITIES
from rules.classification import BAND_CLASSES, rank
from rules.common import find_band

sys.path.insert(0, os.path.dirname(__file__))  # tests/ is not a package: make `reference` importable
from reference import (
    BIG,
    field_domains,
    holds,
    holds_yaml,
    matching_rule_ids,  # noqa: E402
    random_case,
    random_fact,
    random_order,
    replace_category,
    replace_section,
)

POLICY_PATH = Path(__file__).resolve().parent.parent / "policies.yaml"
SHIPPED_TEXT = POLICY_PATH.read_text(encoding="utf-8")
# Extra region labels for generated policies: strings compare as raw JSON text inside the engine.
REGIONS = ["local", "remote", "本地", "外地", 'a"b', "x\\y", "1", "true", "é"]
GENERATED_BASE = replace_category(SHIPPED_TEXT, "region", REGIONS)

SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def shipped():
    policy = compile_policy(SHIPPED_TEXT, str(POLICY_PATH))
    yield policy
    policy.dispose()


@pytest.fixture(scope="module")
def twin():
    """The same policy text compiled a second time: same version, separate C rulesets."""
    policy = compile_policy(SHIPPED_TEXT, str(POLICY_PATH))
    yield policy
    policy.dispose()


# ---------------------------------------------------------------- strategies
def value_strategy(domain):
    if domain.kind == BOOL:
        return st.booleans()
    if domain.kind == ENUM:
        return st.sampled_from(domain.enum)
    return st.one_of(st.sampled_from(domain.edges), st.integers(domain.lo, domain.hi), st.integers(-BIG, BIG))


def facts_strategy(domains, refs):
    """Facts over `domains`; each field comparison's left side is often set to meet the right."""

    @st.composite
    def fact(draw):
        out = {"t": 1}
        out.update(draw(st.fixed_dictionaries({n: value_strategy(d) for n, d in domains.items()})))
        for left, right in refs:
            numeric = domains[left].kind not in (BOOL, ENUM)
            nudge = draw(st.sampled_from((None, -1, 0, 1) if numeric else (None, 0)))
            if nudge is not None:
                out[left] = out[right] + nudge if numeric else out[right]
        return out

    return fact()


PROFILE_POOL = (
    "industry",
    "region",
    "amount_tier",
    "reputation",
    "customer_age_days",
    "collectable_days_overdue",
    "score_drop",
    "outstanding",
    "overdue_amount",
    "on_time_ratio",
    "has_collector",
    "manual_score",
)
DECISION_POOL = PROFILE_POOL + (
    "credit_limit",
    "exposure_after_order",
    "utilisation",
    "utilisation_after_order",
    "dunning_stage",
    "aging_bucket",
    "aging_worsened",
)
ENUMS = {
    "industry": ("manufacturing", "services", "engineering_project", "manufacturer", "retail_mall", "trading", "other"),
    "region": tuple(REGIONS),
    "amount_tier": ("small", "medium", "large"),
    "reputation": ("low", "medium", "high"),
    "aging_bucket": ("current", "short", "medium", "long"),
}
CONSTANTS = {
    INT: (0, 1, 2, 3, 10, 15, 30, 31, 90, 91, 180),
    MONEY: ("0", "0.01", "123.45", "9999.99", "10000", "100000", "500000"),
    PERCENT: ("0", "0.01", "50", "90", "90.01", "100"),
}
ORDERED_OPS = ("eq", "ne", "lt", "lte", "gt", "gte")


def constants(name):
    spec = FIELDS[name]
    if spec.kind == BOOL:
        return st.booleans()
    if spec.kind == ENUM:
        return st.sampled_from(ENUMS[name])
    values = CONSTANTS[spec.kind] + ((-10, -1) if not spec.nonnegative else ())
    return st.sampled_from(values)


def leaf(pool):
    @st.composite
    def comparison(draw):
        name = draw(st.sampled_from(pool))
        kind = FIELDS[name].kind
        ops = ORDERED_OPS if kind in (INT, MONEY, PERCENT) else ("eq", "ne")
        form = draw(st.sampled_from(("value", "value", "list", "field")))
        if form == "list":
            values = draw(st.lists(constants(name), min_size=1, max_size=3))  # duplicates on purpose
            return {"field": name, draw(st.sampled_from(("in", "not_in"))): values}
        if form == "field":
            other = draw(st.sampled_from([n for n in pool if FIELDS[n].kind == kind]))  # itself included
            return {"field": name, draw(st.sampled_from(ops)): {"field": other}}
        return {"field": name, draw(st.sampled_from(ops)): draw(constants(name))}

    return comparison()


def condition(pool):
    return st.recursive(
        leaf(pool),
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda xs: {"all": xs}),
            st.lists(children, min_size=1, max_size=3).map(lambda xs: {"any": xs}),
            children.map(lambda c: {"not": c}),
        ),
        max_leaves=6,
    )


@st.composite
def policy_variant(draw):
    """(alerts, segments) sections; ids numbered in a random order so definition ≠ sorted order."""
    n_alerts, n_segments = draw(st.integers(0, 7)), draw(st.integers(0, 5))
    alert_names = draw(st.permutations(range(n_alerts)))
    segment_names = draw(st.permutations(range(n_segments)))
    alerts = [
        {
            "id": f"alert.g{alert_names[i]}",
            "when": draw(condition(DECISION_POOL)),
            "severity": draw(st.sampled_from(SEVERITIES)),
            "message": "",
        }
        for i in range(n_alerts)
    ]
    segments = [
        {
            "id": f"segment.g{segment_names[i]}",
            "when": draw(st.just("always") | condition(PROFILE_POOL)),
            "strategy": ["generated"],
        }
        for i in range(n_segments)
    ]
    return alerts, segments


# ---------------------------------------------------------------- the reference itself
def test_reference_evaluates_conditions_by_hand():
    fact = {"n": 5, "m": 7, "s": "本地", "b": True}
    assert holds(("cmp", "n", "lte", 5, False), fact)
    assert not holds(("cmp", "n", "lt", 5, False), fact)
    assert holds(("cmp", "n", "lt", "m", True), fact)
    assert not holds(("cmp", "m", "eq", "n", True), fact)
    assert holds(("cmp", "s", "ne", "外地", False), fact)
    assert holds(("all", ()), fact) and not holds(("any", ()), fact)
    assert holds(("any", (("cmp", "b", "eq", False, False), ("cmp", "n", "gte", 5, False))), fact)
    assert not holds(("all", (("cmp", "b", "eq", True, False), ("cmp", "n", "gt", 5, False))), fact)
    with pytest.raises(TypeError):  # a bool never silently equals 1
        holds(("cmp", "b", "eq", 1, False), fact)
    money = {"outstanding": 999_999, "customer_age_days": 179, "region": "本地"}
    assert holds_yaml({"field": "outstanding", "lte": "9999.99"}, money)
    assert not holds_yaml({"field": "outstanding", "gte": "10000"}, money)
    assert holds_yaml({"not": {"field": "region", "in": ["local", "remote"]}}, money)
    assert holds_yaml(
        {
            "all": [
                {"field": "customer_age_days", "lt": 180},
                {"any": [{"field": "region", "eq": "本地"}, {"field": "outstanding", "eq": 0}]},
            ]
        },
        money,
    )


def test_shipped_profile_rules_by_hand(shipped):
    fact = {
        "t": 1,
        "amount_tier": "large",
        "arrears_reason": "none",
        "collectable_days_overdue": 40,
        "customer_age_days": 1000,
        "industry": "manufacturing",
        "region": "local",
        "reputation": "high",
        "overdue_amount_tier": "large",
        "customer_type": "enterprise",
        "deal_type": "standard",
    }
    expected = [
        "credit.limit.high",
        "owner.dedicated",
        "owner.messages",
        "owner.team",
        "dunning.stage1",
        "dunning.stage2",
        "dunning.stage2.large",
        "dunning.stage2.visit",
        "dunning.stage2.lawyer",
        "repayment.instalments.manufacturing",
        "repayment.instalments.default",
        "repayment.deferral.high",
        "review.high",
        "segment.manufacturing_large",
    ]
    assert matching_rule_ids(shipped, PROFILE, fact) == expected
    assert shipped.matchers[PROFILE].match(fact) == expected


# ---------------------------------------------------------------- shipped policy
@pytest.mark.parametrize("phase", [PROFILE, DECISION])
def test_random_facts_exercise_every_shipped_rule(shipped, phase):
    """The fact generator straddles every threshold: each rule is seen both matching and not."""
    domains, refs = field_domains(shipped, phase)
    rnd = random.Random(20261122)
    seen_match, seen_miss = set(), set()
    ids = [r.id for r in shipped.rules if r.phase == phase]
    for _ in range(3000):
        fact = random_fact(rnd, domains, refs)
        expected = matching_rule_ids(shipped, phase, fact)
        assert shipped.matchers[phase].match(fact) == expected, fact
        seen_match.update(expected)
        seen_miss.update(set(ids) - set(expected))
    assert seen_match == set(ids)
    always = {r.id for r in shipped.rules if r.phase == phase and r.condition == ("all", ())}  # e.g. owner.team
    assert seen_miss == set(ids) - always


@pytest.mark.parametrize("phase", [PROFILE, DECISION])
@settings(max_examples=150, **SETTINGS)
@given(data=st.data())
def test_shipped_policy_matches_reference(shipped, phase, data):
    domains, refs = field_domains(shipped, phase)
    facts = data.draw(st.lists(facts_strategy(domains, refs), min_size=1, max_size=10), label="facts")
    for fact in facts:
        assert shipped.matchers[phase].match(fact) == matching_rule_ids(shipped, phase, fact)


# ---------------------------------------------------------------- generated policies
def test_overlapping_any_reports_a_rule_once():
    """`any`/`in` compile to $or, which durable_rules fires once per true branch."""
    alerts = [
        {
            "id": "alert.both",
            "severity": "info",
            "message": "",
            "when": {"any": [{"field": "dunning_stage", "gte": 1}, {"field": "dunning_stage", "gte": 2}]},
        },
        {
            "id": "alert.dup",
            "severity": "info",
            "message": "",
            "when": {"field": "aging_bucket", "in": ["long", "long"]},
        },
        {
            "id": "alert.not_all",
            "severity": "info",
            "message": "",
            "when": {"not": {"all": [{"field": "dunning_stage", "eq": 0}, {"field": "aging_worsened", "eq": True}]}},
        },
    ]
    policy = compile_policy(replace_section(SHIPPED_TEXT, "alerts", alerts), "overlap.yaml")
    try:
        domains, refs = field_domains(policy, DECISION)
        fact = random_fact(random.Random(1), domains, refs)
        fact.update(dunning_stage=3, aging_bucket="long", aging_worsened=False)
        got = policy.matchers[DECISION].match(fact)
        assert got == matching_rule_ids(policy, DECISION, fact)
        assert got[-3:] == ["alert.both", "alert.dup", "alert.not_all"]
    finally:
        policy.dispose()


@settings(max_examples=70, **SETTINGS)
@given(variant=policy_variant(), data=st.data())
def test_generated_policies_match_reference(variant, data):
    alerts, segments = variant
    text = replace_section(replace_section(GENERATED_BASE, "alerts", alerts), "segments", segments)
    try:
        policy = compile_policy(text, "generated.yaml")
    except PolicyInvalid as exc:
        assert {e.code for e in exc.errors} == {"E_UNREACHABLE"}, exc  # contradictions are refused
        reject()
    try:
        written = {r["id"]: r["when"] for r in alerts + segments}
        matched, missed = set(), set()
        for phase in (PROFILE, DECISION):
            domains, refs = field_domains(policy, phase)
            facts = data.draw(st.lists(facts_strategy(domains, refs), min_size=1, max_size=12), label=phase)
            for fact in facts:
                expected = matching_rule_ids(policy, phase, fact)
                assert policy.matchers[phase].match(fact) == expected
                matched.update(set(written) & set(expected))
                missed.update(set(written) - set(expected))
                for rule in policy.rules:  # the compiled AST means what the YAML says
                    if rule.phase == phase and rule.id in written:
                        assert holds(rule.condition, fact) == holds_yaml(written[rule.id], fact), rule.id
        if written:
            event(
                f"generated rules seen matching: {'all' if matched == set(written) else 'some' if matched else 'none'}"
            )
            event(
                f"generated rules seen not matching: {'all' if missed == set(written) else 'some' if missed else 'none'}"
            )
    finally:
        policy.dispose()


# ---------------------------------------------------------------- full evaluations
def _reference_facts(policy, case, as_of, order, decision):
    """The profile and decision facts of an evaluation, rebuilt outside the evaluator."""
    order_minor, order_id = parse_order(order, policy)
    facts = build_facts(load_case(case, policy), policy, as_of, order_minor, order_id)
    fact = dict(facts.fields)
    for name in BAND_CLASSES:
        fact[name] = decision["classification"][name]
    # the escalation tier: the amount tier's bands on the overdue amount
    fact["overdue_amount_tier"] = find_band(policy.band_classes["amount_tier"].bands, fact["overdue_amount"]).value
    fact["credit_score"] = decision["score"]["value"]
    labels = policy.band_classes["aging_bucket"].labels
    fact["aging_worsened"] = facts.previous_bucket in labels and rank(
        policy.band_classes, "aging_bucket", fact["aging_bucket"]
    ) > rank(policy.band_classes, "aging_bucket", facts.previous_bucket)
    fact["score_drop"] = facts.previous_score - fact["credit_score"] if facts.previous_score is not None else 0
    profile = {k: fact[k] for k in policy.phase_fields[PROFILE]}
    credit = decision["credit"]
    check = credit.get("check")
    fact.update(
        {
            "credit_limit": to_minor(credit["limit"]),
            "terms_days": credit["terms_days"],
            "deposit_pct": to_minor(credit["deposit_pct"]),
            "dunning_stage": decision["dunning"]["stage"],
            "exposure_after_order": fact["exposure"] + fact["order_amount"],
            "available_credit": to_minor(credit["available"]),
            "utilisation": to_minor(credit["utilisation_pct"]),
            "utilisation_after_order": to_minor(
                check["utilisation_after_order_pct"] if check else credit["utilisation_pct"]
            ),
        }
    )
    # terms enforcement (issue 11): open invoices due later after their issue than the resolved terms
    beyond = [s for s in facts.invoices if s.open_minor > 0 and (s.due_on - s.issued_on).days > credit["terms_days"]]
    fact["invoices_beyond_terms"], fact["invoice_terms_exceeded"] = len(beyond), bool(beyond)
    return profile, {k: fact[k] for k in policy.phase_fields[DECISION]}, fact


def _tolerated_stage(policy, fired, profile_fact) -> int:
    """The stage by the entry rules, lowered past each stage whose min_balance (tolerance, issue 11) the
    collectable overdue amount does not reach."""
    stage = dunning.resolve_stage(fired)[0]
    amount = profile_fact["collectable_overdue_amount"]
    while stage and amount < policy.content["dunning"]["stages"][stage - 1].get("min_balance", 0):
        stage = dunning.resolve_stage([r for r in fired if r.family == "dunning.stage" and r.get("stage") < stage])[0]
    return stage


def _tolerated_checks(policy, later, decision_fact) -> list:
    """The check rules that matched, less those credit.min_overdue_balance sets aside (issue 11)."""
    minimum = policy.content["credit"].get("min_overdue_balance")
    checks = [r for r in later if r.family == "credit.check"]
    if minimum is None or not 0 < decision_fact["overdue_amount"] < minimum:
        return checks
    return [r for r in checks if not conditions.fields_used(r.condition) & OVERDUE_FIELDS]


@settings(max_examples=100, **SETTINGS)
@given(seed=st.integers(0, 2**32 - 1), as_of=st.dates(dt.date(2024, 1, 1), dt.date(2027, 12, 31)))
def test_evaluation_is_deterministic_and_agrees_with_reference(shipped, twin, seed, as_of):
    rnd = random.Random(seed)
    case, order = random_case(rnd, shipped, as_of, ident=seed), random_order(rnd)
    other, other_order = random_case(rnd, shipped, as_of, ident=seed + 1), random_order(rnd)
    first = evaluate(shipped, case, as_of, order=order)
    evaluate(shipped, other, as_of, order=other_order)  # something else in between
    second = evaluate(shipped, case, as_of, order=order)
    assert second.json == first.json
    assert twin.version == shipped.version
    assert evaluate(twin, case, as_of, order=order).json == first.json

    decision = first.data
    profile, decision_fact, whole = _reference_facts(shipped, case, as_of, order, decision)
    fired = [shipped.rules_by_id[i] for i in matching_rule_ids(shipped, PROFILE, profile)]
    segments_fired = [r for r in fired if r.family == "segments"]
    limit_rules = decision["credit"]["limit_rules"]  # the limit rules, then segments that changed a figure
    base = [r.id for r in fired if r.family == "credit.limit"]
    assert limit_rules[: len(base)] == base and set(limit_rules[len(base) :]) <= {r.id for r in segments_fired}
    assert [s["id"] for s in decision["classification"]["segments"]] == [r.id for r in fired if r.family == "segments"]
    assert decision["dunning"]["stage"] == _tolerated_stage(shipped, fired, whole)
    options = repayment.options(fired, shipped.waiver_mode)
    for option, key, param in (("instalments", "max_count", "instalments"), ("deferral", "max_days", "deferral_days")):
        best = max([options[option][key]] + [r.param(param) for r in segments_fired if r.param(param) is not None])
        options[option] = {"allowed": best > 0, key: best}
    assert decision["repayment"] == options
    later = [shipped.rules_by_id[i] for i in matching_rule_ids(shipped, DECISION, decision_fact)]
    alerts = sorted((r for r in later if r.family == "alerts"), key=lambda r: SEVERITY_ORDER[r.get("severity")])
    assert [a["id"] for a in decision["alerts"]] == [r.id for r in alerts]
    if order is not None:
        from rules import credit

        checks = _tolerated_checks(shipped, later, whole)
        outcome, _ = credit.check_outcome(checks)
        if outcome == "reject":  # a reject lists no condition (a deposit) that only an approval has
            checks = [r for r in checks if not (r.get("condition") and r.get("outcome") != "reject")]
        assert decision["credit"]["check"]["outcome"] == outcome
        assert decision["credit"]["check"]["rules"] == [r.id for r in checks]
