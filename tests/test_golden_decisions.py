"""The decision a client reads is byte-identical to the one recorded before reasons became structured.

tests/golden/engine_calls.jsonl.gz holds every evaluation the engine tests (tests/test_*.py) made at
commit 883bf6a (before issue 8's structured reasons), and those of a set of API tests: the policy text, the input, and the sha256 of
the decision's canonical JSON, or the refusal's codes (recorded with tests/golden/record.py). Each is
evaluated again here with today's code and its English rendering must hash the same; the Chinese
rendering of each must be a complete decision too (every reason has a message).
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from engine import compile_policy, compiler, evaluator

from golden.record import digest, untag

# engine_calls: tests/test_*.py; api_calls: the API tests of credit checks, decision fields, legal cases,
# applied money, the trail, holds and governance (grants, approved limits) — evaluations made in-process
CORPORA = [Path(__file__).resolve().parent / "golden" / name for name in ("engine_calls.jsonl.gz", "api_calls.jsonl.gz")]


def corpus():
    policies, calls = {}, []
    for path in CORPORA:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            policies.update(json.loads(fh.readline())["policies"])
            calls += [json.loads(line) for line in fh]
    return policies, calls


@pytest.fixture(scope="module")
def recorded():
    policies, calls = corpus()
    with pytest.MonkeyPatch.context() as mp:     # some tests recorded a policy compiled under raised limits
        for name in ("MAX_TESTS_PER_FIELD", "MAX_LEADING_RANGE_TESTS", "MAX_RULES_PER_CONDITION"):
            mp.setattr(compiler, name, 10 ** 6)
        compiled = {key: compile_policy(text, "golden.yaml", legacy_when=True) for key, text in policies.items()}
    yield compiled, calls
    for p in compiled.values():
        p.dispose()


def outcome(policy, call):
    case, as_of, order = untag(call["input"])
    fn = evaluator.evaluate if call["fn"] == "evaluate" else evaluator.evaluate_loaded
    try:
        return fn(policy, case, as_of, order), None
    except Exception as exc:           # noqa: BLE001 — a refusal is recorded by its type and codes
        return None, {"error": type(exc).__name__,
                      "codes": [list(c) for c in sorted((e.field, e.code, e.message)
                                                        for e in getattr(exc, "errors", ()) or ())]}


def test_the_corpus_is_large_and_varied(recorded):
    compiled, calls = recorded
    assert len(calls) >= 3000 and len(compiled) >= 10
    assert sum("sha" in c for c in calls) >= 2700


def test_every_recorded_decision_reads_byte_identical(recorded):
    compiled, calls = recorded
    different = []
    for i, call in enumerate(calls):
        decision, refused = outcome(compiled[call["policy"]], call)
        if "sha" in call:
            if decision is None or digest(decision.json) != call["sha"]:
                different.append((i, call["fn"], refused or decision.json[:300]))
        elif refused != {"error": call["error"], "codes": call["codes"]}:
            different.append((i, call["fn"], refused))
    assert not different, f"{len(different)} of {len(calls)} differ, e.g. {different[:3]}"
