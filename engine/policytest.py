"""Policy test cases: YAML files of inputs and expected decision fields, kept beside the policy.

    base_input: {customer: {...}, invoices: [...]}      # optional, shared by the cases
    cases:
      - note: exposure exactly at the limit is referred
        as_of: 2026-11-22
        order_amount: "50000"                            # optional
        input: {invoices: [...]}                         # merged over base_input (customer merged by key)
        expect:                                          # dotted paths into the decision
          credit.check.outcome: refer
          dunning.actions[0].type: phone_call
        expect_error: E_AMOUNT                           # instead of expect: the input must be refused
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal

import yaml

from .errors import InputInvalid
from .evaluator import evaluate

_MISSING = object()


@dataclass(frozen=True)
class CaseResult:
    file: str
    note: str
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in (override or {}).items():
        if key == "customer" and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _jsonable(value):
    # YAML gives dates and numbers; the engine's input is JSON-shaped (ISO dates, decimal strings)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def _lookup(decision_data, dotted: str):
    from .decision import _split
    node = decision_data
    for part in _split(dotted):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return node


def _same(actual, expected) -> bool:
    if isinstance(expected, (dt.date, dt.datetime)):
        expected = expected.isoformat()
    if isinstance(expected, float):
        expected = Decimal(repr(expected))
    if isinstance(expected, (int, Decimal)) and not isinstance(expected, bool) and isinstance(actual, str):
        try:
            return Decimal(actual) == Decimal(expected)
        except ArithmeticError:
            return False
    return actual == expected


def run_file(policy, path: str) -> list[CaseResult]:
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    base = doc.get("base_input", {})
    results = []
    for i, case in enumerate(doc.get("cases", [])):
        note = case.get("note", f"case {i}")
        results.append(CaseResult(path, note, tuple(_run_case(policy, base, case))))
    return results


def _run_case(policy, base, case) -> list[str]:
    data = _jsonable(_merge(base, case.get("input", {})))
    as_of = case["as_of"]
    if isinstance(as_of, str):
        as_of = dt.date.fromisoformat(as_of)
    order = case.get("order_amount")
    if isinstance(order, float):
        order = Decimal(repr(order))
    try:
        decision = evaluate(policy, data, as_of, order=None if order is None else str(order))
    except InputInvalid as exc:
        wanted = case.get("expect_error")
        codes = {e.code for e in exc.errors}
        if wanted and wanted in codes:
            return []
        return [f"input refused: {exc}" + (f" (expected error {wanted})" if wanted else "")]
    if "expect_error" in case:
        return [f"expected error {case['expect_error']}, got a decision"]
    failures = []
    data_out = decision.data
    for dotted, expected in (case.get("expect") or {}).items():
        actual = _lookup(data_out, dotted)
        if actual is _MISSING:
            failures.append(f"{dotted}: missing from the decision (expected {expected!r})")
        elif not _same(actual, expected):
            failures.append(f"{dotted}: expected {json.dumps(_jsonable(expected), ensure_ascii=False, default=str)}, "
                            f"got {json.dumps(actual, ensure_ascii=False)}")
    return failures
