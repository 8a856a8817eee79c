"""Builders for customer cases and policy variants used by the engine's unit tests.

Dates may be given as an ISO string or as an int: days relative to AS_OF
(`due=-10` is an invoice ten days overdue on AS_OF, `due=0` is due on AS_OF).
Amounts are decimal strings, as the JSON input carries them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import pathlib

import pytest

from engine import PolicyInvalid, build_facts, compile_policy, load_case

AS_OF = dt.date(2026, 11, 22)
ROOT = pathlib.Path(__file__).resolve().parent.parent  # the repository: run `python -m engine.cli` here


def day(when) -> str:
    """ISO date: `when` is a date, an ISO string, or days relative to AS_OF."""
    if isinstance(when, int):
        return (AS_OF + dt.timedelta(days=when)).isoformat()
    if isinstance(when, dt.date):
        return when.isoformat()
    return when


def customer(**overrides) -> dict:
    """An established (since 2019) medium-sized local manufacturer, scored by the scorecard."""
    base = {
        "id": "C-1",
        "name": "华东精密制造有限公司",
        "type": "enterprise",
        "industry": "manufacturing",
        "region": "local",
        "size": "medium",
        "since": "2019-03-01",
    }
    base.update(overrides)
    return base


def invoice(id, amount, *, due, issued=None, currency="CNY") -> dict:
    due_on = day(due)
    if issued is None:  # by default issued 30 days before it falls due
        issued_on = (dt.date.fromisoformat(due_on) - dt.timedelta(days=30)).isoformat()
    else:
        issued_on = day(issued)
    return {"id": id, "amount": amount, "currency": currency, "issued_on": issued_on, "due_on": due_on}


def payment(amount, *, on, invoice_id=None, **extra) -> dict:
    return {"invoice_id": invoice_id, "amount": amount, "paid_on": day(on), **extra}


def credit_note(invoice_id, amount, *, on) -> dict:
    return {"invoice_id": invoice_id, "amount": amount, "issued_on": day(on)}


def promise(amount, *, made, promised, invoice_id=None, id=None) -> dict:
    return {"id": id, "invoice_id": invoice_id, "amount": amount, "made_on": day(made), "promised_on": day(promised)}


def dispute(invoice_id, *, opened, resolved=None) -> dict:
    return {
        "invoice_id": invoice_id,
        "opened_on": day(opened),
        "resolved_on": None if resolved is None else day(resolved),
    }


def instalment_plan(id, invoice_ids, *, agreed, instalments) -> dict:
    """instalments: [(due, amount), ...]"""
    return {
        "id": id,
        "invoice_ids": list(invoice_ids),
        "agreed_on": day(agreed),
        "instalments": [{"due_on": day(d), "amount": a} for d, a in instalments],
    }


def make_case(customer_=None, **lists) -> dict:
    """A case dict: the customer (default `customer()`) plus any of invoices, payments, credit_notes,
    promises, disputes, instalment_plans, reservations, previous, arrears_reason."""
    case = {"customer": customer_ if customer_ is not None else customer()}
    for key, value in lists.items():
        case[key] = list(value) if isinstance(value, tuple) else value
    return case


def facts_for(policy, case: dict, as_of: dt.date = AS_OF, order_minor: int | None = None):
    """Validated input → Facts, as the evaluator builds them."""
    return build_facts(load_case(case, policy), policy, as_of, order_minor)


# ---------------------------------------------------------------- policy variants
@contextlib.contextmanager
def compiled(text: str, source: str = "variant.yaml", **options):
    """Compile a policy variant (options: compile_policy's) and dispose of its rulesets afterwards."""
    policy = compile_policy(text, source, **options)
    try:
        yield policy
    finally:
        policy.dispose()


def edit(text: str, old: str, new: str, count: int = 1) -> str:
    """text.replace that fails loudly when the shipped policy no longer contains `old`."""
    assert text.count(old) >= count, f"the shipped policy no longer contains {old!r}"
    return text.replace(old, new, count)


def policy_errors(text: str, source: str = "bad.yaml") -> list:
    """The PolicyError list of a policy that must not compile."""
    with pytest.raises(PolicyInvalid) as info:
        compile_policy(text, source).dispose()
    return info.value.errors


def only_error(text: str, source: str = "bad.yaml"):
    errors = policy_errors(text, source)
    assert len(errors) == 1, [e.format() for e in errors]
    return errors[0]


def position(text: str, needle: str, after: str | None = None) -> tuple[int, int]:
    """1-based (line, column) of the first `needle` in `text` (after the first `after`, when given)."""
    start = text.index(after) + len(after) if after else 0
    offset = text.index(needle, start)
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column
