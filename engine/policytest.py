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

from .errors import EngineFailure, InputInvalid
from .evaluator import evaluate
from .yamlsource import load_yaml, read_text_file

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
    try:
        for part in _split(dotted):
            node = node[part]
    except (KeyError, IndexError, TypeError, ValueError):  # ValueError: a malformed [index]
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
    """The results of a case file's cases. A file that cannot be read or is not a case file is one
    failed result saying why (with its position), never an exception."""
    try:
        text = read_text_file(path)
    except OSError as exc:
        return [CaseResult(path, "the case file cannot be read", (f"{path}: E_FILE: {exc.strerror}",))]
    # the policy's loader: the same bounds (size, nesting, aliases) and duplicate keys are errors
    loaded, errors = load_yaml(text, path)
    if errors:
        return [CaseResult(path, "the case file is not valid YAML", tuple(e.format() for e in errors))]
    doc = loaded.data if loaded.data is not None else {}
    base, cases = (doc.get("base_input", {}), doc.get("cases", [])) if isinstance(doc, dict) else (None, None)
    if not isinstance(base, dict) or not isinstance(cases, list):
        return [
            CaseResult(
                path,
                "the case file has the wrong shape",
                ("expected a mapping of 'cases' (a list) and an optional 'base_input' (a mapping)",),
            )
        ]
    results = []
    for i, case in enumerate(cases):
        if not isinstance(case, dict):
            results.append(CaseResult(path, f"case {i}", ("a case is a mapping (note, as_of, input, expect)",)))
            continue
        note = str(case.get("note", f"case {i}"))
        results.append(CaseResult(path, note, tuple(_run_case(policy, base, case))))
    return results


def _case_date(value):
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _run_case(policy, base, case) -> list[str]:
    if not isinstance(case.get("input", {}), dict) or not isinstance(case.get("expect") or {}, dict):
        return ["malformed case: 'input' and 'expect' are mappings"]
    data = _jsonable(_merge(base, case.get("input", {})))
    as_of = _case_date(case.get("as_of"))
    if as_of is None:
        return [f"malformed case: as_of {case.get('as_of')!r} is not a date (YYYY-MM-DD)"]
    order = case.get("order_amount")
    if isinstance(order, float):
        order = Decimal(repr(order))
    try:
        decision = evaluate(policy, data, as_of, order=None if order is None else str(order))
    except EngineFailure as exc:  # fails closed: no decision to compare
        return [f"the engine failed: {exc}"]
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
        actual = _lookup(data_out, str(dotted))
        if actual is _MISSING:
            failures.append(f"{dotted}: missing from the decision (expected {expected!r})")
        elif not _same(actual, expected):
            failures.append(
                f"{dotted}: expected {json.dumps(_jsonable(expected), ensure_ascii=False, default=str)}, "
                f"got {json.dumps(actual, ensure_ascii=False)}"
            )
    return failures
