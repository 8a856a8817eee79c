"""Outcomes only (engine/outcomes.py, api/jobs/simulate._side) give what the full decisions give.

- on every input of tests/policy/ (a typed case, as the ledger gives it) and under several policies,
  `_side` (base_outcomes, the facts shared, a full evaluation per reservation) = `outcomes` (two full
  decisions per customer and one per reservation: the definition), refusals included;
- facts built under one policy and reused under another with the same facts_key give the other's
  outcomes, and facts_key covers everything of a policy that build_facts reads.
"""
from __future__ import annotations

import copy

from marshmallow import ValidationError

from api.jobs.simulate import _side, outcomes
from engine.facts import CaseSchema, build_facts, check_case
from engine.outcomes import FACTS_INPUTS, facts_key

from helpers import compiled
from test_fast_paths import policy_inputs

MEDIUM_LIMIT = 'when: {field: reputation, eq: medium}\n      limit: "200000"'
STAGE2 = "when: always\n          min_days_overdue: 31\n"
TOLERANCE = "promise_to_pay: {tolerance_days: 3}"


def _variants(policy_text: str) -> dict[str, str]:
    for old in (MEDIUM_LIMIT, STAGE2, TOLERANCE, "    limit: \"100000\"\n", "deposit_pct: 20\n"):
        assert policy_text.count(old) == 1, old
    return {
        # the same facts (facts_key equal): another limit, stage 2 earlier, segment terms changed
        "limits": policy_text.replace(MEDIUM_LIMIT, MEDIUM_LIMIT.replace("200000", "300000"))
                             .replace(STAGE2, STAGE2.replace("31", "21"))
                             .replace("    limit: \"100000\"\n", "    limit: \"100000\"\n    terms_days: 20\n")
                             .replace("deposit_pct: 20\n", "deposit_pct: 40\n"),
        # other facts: a longer promise tolerance, no pause for disputes
        "facts": policy_text.replace(TOLERANCE, "promise_to_pay: {tolerance_days: 10}")
                            .replace("disputed_invoices: true", "disputed_invoices: false"),
        # a category fewer: the cases with it are refused
        "categories": policy_text.replace("company_size: [large, medium, small]", "company_size: [medium, small]"),
    }


def _typed_inputs():
    """Every input of tests/policy/, and the first 40 again with an approved limit and terms on the credit
    file, with a grant in force and with a lapsed one (what the ledger adds to a case)."""
    out = []
    for i, (name, data, as_of, _order) in enumerate(policy_inputs()):
        variants = [(name, data)]
        if i < 40:
            day = as_of.isoformat()
            approved = copy.deepcopy(data)
            approved["customer"].update(approved_limit="80000.00", approved_terms_days=20)
            variants.append((f"{name}+approved", approved))
            for label, until in (("grant", "2999-12-31"), ("lapsed", "1999-12-31"), ("grant_today", day)):
                granted = copy.deepcopy(approved if label == "lapsed" else data)
                granted["grant"] = {"limit": "700000.00", "until": until, "granted_by": "王芳"}
                variants.append((f"{name}+{label}", granted))
        for label, case in variants:
            try:
                out.append((label, CaseSchema().load(copy.deepcopy(case)), as_of))
            except ValidationError:          # refused by the schema: never a ledger case
                continue
    return out


def test_outcomes_only_equal_the_full_decisions_on_every_policy_test_input(policy, policy_text):
    inputs = _typed_inputs()
    assert len(inputs) >= 100
    texts = _variants(policy_text)
    assert "facts" in texts and texts["categories"] != policy_text
    with compiled(texts["limits"]) as limits, compiled(texts["facts"]) as facts, \
            compiled(texts["categories"]) as categories:
        policies = {"shipped": policy, "limits": limits, "facts": facts, "categories": categories}
        assert facts_key(policy) == facts_key(limits) == facts_key(categories) != facts_key(facts)
        seen = {"refused": 0, "reservations": 0, "stage": 0, "different": 0, "granted": 0, "approved_terms": 0}
        for name, typed, as_of in inputs:
            expected = {label: outcomes(p, copy.deepcopy(typed), as_of) for label, p in policies.items()}
            for label, p in policies.items():
                got, _ = _side(p, copy.deepcopy(typed), as_of)
                assert got == expected[label], (name, label)
            # the facts of the shipped policy, reused under each policy with the same key
            case = copy.deepcopy(typed)
            before, shared = _side(policy, case, as_of)
            for label in ("limits", "categories"):
                after, _ = _side(policies[label], case, as_of, shared)
                assert after == expected[label], (name, label, "shared")
            seen["refused"] += "error" in expected["categories"]
            seen["reservations"] += bool(before.get("checks"))
            seen["stage"] += bool(before.get("dunning_stage"))
            seen["different"] += expected["limits"] != expected["shipped"]
            seen["granted"] += expected["shipped"].get("limit") == "700000.00"
            seen["approved_terms"] += expected["shipped"].get("terms_days") == 20
        # the inputs reach every path compared above
        assert all(seen.values()), seen


class _Recorder:
    """A stand-in for a policy that records the attribute / key paths read from it, past FACTS_INPUTS'."""

    def __init__(self, target, path=(), log=None):
        self._target, self._path, self._log = target, path, log if log is not None else set()

    def _child(self, value, path):
        if path in FACTS_INPUTS:
            return value
        if any(p[:len(path)] == path for p in FACTS_INPUTS):
            return _Recorder(value, path, self._log)
        self._log.add(path)              # read, and not in the key
        return value

    def __getattr__(self, name):
        return self._child(getattr(self._target, name), self._path + (name,))

    def __getitem__(self, key):
        return self._child(self._target[key], self._path + (key,))


def test_facts_key_covers_what_build_facts_reads(policy):
    reads = set()
    recorder = _Recorder(policy, log=reads)
    built = 0
    for name, typed, as_of in _typed_inputs():
        try:
            case = check_case(copy.deepcopy(typed), policy)
        except Exception:                # noqa: BLE001 — refused by the policy: no facts to build
            continue
        recorded = build_facts(copy.deepcopy(case), recorder, as_of)
        assert recorded == build_facts(copy.deepcopy(case), policy, as_of), name
        for r in case["reservations"]:
            build_facts(copy.deepcopy(case), recorder, as_of, r["amount_minor"], r["order_id"])
        built += 1
    assert built > 50
    assert reads == set(), f"build_facts reads {sorted(reads)} of the policy: add them to engine.outcomes.facts_key"
    # and the recorder does see what it is there for: one path of the key, read through it
    probe = _Recorder(policy, log=reads)
    assert probe.dunning.promise_tolerance_days == policy.dunning.promise_tolerance_days
    assert probe.scorecard is policy.scorecard and reads == {("scorecard",)}
