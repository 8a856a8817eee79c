"""The decision's canonical JSON is written by orjson when it is installed (engine/decision.py).
These tests show that it gives the bytes of the stdlib serialiser, `canonical_json_stdlib`, which
defines the canonical form: on every decision body serialised (stored and English) for the inputs of
tests/policy/ and for the property tests' generated customers (shipped policy, and a policy whose
labels need escaping), and on hand-picked edge cases. Where orjson would differ, the stdlib path
must be the one taken.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import random
from decimal import Decimal

import pytest

import engine
from engine import InputInvalid, decision
from engine.decision import _ORJSON_OPTIONS, canonical_json, canonical_json_stdlib, orjson

from helpers import compiled
from reference import random_case, random_order, replace_category
from test_fast_paths import policy_inputs

# labels that need escaping or are outside the BMP (labels may not contain whitespace or braces)
# (YAML text cannot carry DEL; the customer ids below do)
ODD_REGIONS = ["local", "remote", "本地", 'a"b', "x\\y", "ctl\x01\x08", "é", "😀", "true", "1"]


@pytest.fixture
def recorded(monkeypatch):
    """Every body a decision hands to canonical_json, as it was handed over: the stored form (reasons as
    data) and the English rendering (engine/decision.py). `evaluate` below asks a decision for both."""
    bodies = []

    def record(body):
        bodies.append(body)
        return canonical_json(body)

    monkeypatch.setattr(decision, "canonical_json", record)
    return bodies


def evaluate(*args, **kw):
    made = engine.evaluate(*args, **kw)
    assert made.stored and made.json          # each serialised once: the stored form and the English one
    return made


def assert_same_bytes(bodies):
    """orjson itself (not a fallback to the stdlib) writes every body as the stdlib does."""
    assert bodies
    for body in bodies:
        expected = canonical_json_stdlib(body)
        assert orjson.dumps(body, option=_ORJSON_OPTIONS).decode() == expected
        assert canonical_json(body) == expected


def test_orjson_is_installed():
    assert orjson is not None, "orjson is a dependency (pyproject.toml): run make setup"


def test_every_policy_test_decision(policy, recorded):
    for _, data, as_of, order in policy_inputs():
        try:
            evaluate(policy, data, as_of, order=order)
        except InputInvalid:
            pass
    assert len(recorded) >= 100
    assert_same_bytes(recorded)


def test_generated_customers_of_the_shipped_policy(policy, recorded):
    rnd = random.Random(20261122)
    for i in range(300):
        as_of = dt.date(2024, 1, 1) + dt.timedelta(days=rnd.randint(0, 1460))
        evaluate(policy, random_case(rnd, policy, as_of, ident=i), as_of, order=random_order(rnd))
    assert_same_bytes(recorded)


def test_generated_customers_with_labels_and_ids_that_need_escaping(policy_text, recorded):
    rnd = random.Random(7)
    with compiled(replace_category(policy_text, "region", ODD_REGIONS), "odd.yaml") as policy:
        for i in range(300):
            as_of = dt.date(2024, 1, 1) + dt.timedelta(days=rnd.randint(0, 1460))
            case = random_case(rnd, policy, as_of, ident=i)
            case["customer"]["id"] = rnd.choice(["C-\x00\"\\/\x7f\u2028\ud7ff\ue000\uffff", "客户😀", "C\t1"])
            case["customer"]["collector"] = rnd.choice([None, "王\x08芳", "</script>"])
            evaluate(policy, case, as_of, order=random_order(rnd))
    assert {body["classification"]["region"] for body in recorded} == set(ODD_REGIONS)
    assert_same_bytes(recorded)


class _Label(str, enum.Enum):
    A = "a"


class _Count(int):
    pass


@dataclasses.dataclass
class _Record:
    x: int = 1


@pytest.mark.parametrize("value", [
    {"s": "".join(map(chr, range(0x80))) + "\u2028\u2029\ud7ff\ue000\uffff😀本地"},
    {"é": 1, "e": 2, "z": 3, "ä": 4, "😀": 5, "\uffff": 6, "": 7},
    {"n": [0, -1, 2 ** 63 - 1, -2 ** 63, 2 ** 64 - 1, 2 ** 64, -2 ** 63 - 1, 10 ** 40]},
    {"t": (1, "2", None, True, False), "nested": {"b": {"d": [], "c": {}}, "a": [{"z": 1, "y": 2}]}},
    {2: "int keys", 1: "sorted as ints"}, {None: "null key"}, {True: "bool keys", False: "x"},
    {"enum": _Label.A, "int subclass": _Count(3)},
])
def test_edge_cases(value):
    assert canonical_json(value) == canonical_json_stdlib(value)


@pytest.mark.parametrize("value", [{"d": dt.date(2026, 1, 1)}, {"r": _Record()}, {"m": Decimal("1.5")},
                                   {"f": {1, 2}}])
def test_what_the_stdlib_refuses_is_still_refused(value):
    with pytest.raises(TypeError) as stdlib:
        canonical_json_stdlib(value)
    with pytest.raises(TypeError) as ours:
        canonical_json(value)
    assert str(ours.value) == str(stdlib.value)


def test_a_lone_surrogate_gives_what_it_gave():
    value = {"s": "\ud800"}
    assert canonical_json(value) == canonical_json_stdlib(value) == json.dumps(value, ensure_ascii=False,
                                                                               separators=(",", ":"))
