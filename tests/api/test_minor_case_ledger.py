"""The ledger's typed cases (api/store/ledger.py: engine.facts.MinorCase) take check_case's fast path, and give
what the full conversion gives on a generated book (bench/sweep_bench.py's generator, bulk-inserted): every
evaluation, every refusal, the simulation's outcomes; `plain=False` builds the same typed cases."""
from __future__ import annotations

import copy
import datetime as dt
import sys

import pytest
from sqlalchemy import insert, select

from api.jobs.simulate import _side
from api.store.ledger import load_cases
from api.store.tables import Base, Customer
from api_harness import ROOT, Api
from engine import InputInvalid, evaluate_loaded
from engine.facts import MinorCase, check_case

AS_OF = dt.date(2026, 11, 30)
N = 150


@pytest.fixture(scope="module")
def ledger(backend):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from sweep_bench import TABLE_ORDER, generate_book
    finally:
        sys.path.remove(str(ROOT / "bench"))
    api = Api(backend.name, backend.new_url())
    try:
        with api.engine.begin() as conn:
            for batch in generate_book(N, AS_OF, 8, N):
                for name in TABLE_ORDER:
                    if batch.get(name):
                        conn.execute(insert(Base.metadata.tables[name]), batch[name])
            # a grant and an approved limit on some: the case's other amounts
            for i in range(0, N, 7):
                conn.execute(insert(Base.metadata.tables["limit_grants"]), [{
                    "customer_id": f"C{i:07d}", "limit_minor": 70000000 + i, "policy_limit_minor": 20000000,
                    "until": None if i % 2 else AS_OF, "reason": "r", "granted_by": "王芳",
                    "granted_at": dt.datetime(2026, 1, 1), "decision_id": f"{i:032x}"}])
            conn.execute(Base.metadata.tables["customers"].update()
                         .where(Base.metadata.tables["customers"].c.id.in_([f"C{i:07d}" for i in range(0, N, 5)]))
                         .values(approved_limit_minor=8000000, approved_terms_days=20))
        yield api
    finally:
        api.close()


def _outcome(fn):
    try:
        return fn().json
    except InputInvalid as exc:
        return [(e.field, e.code, e.message) for e in exc.errors]


def _full(case: MinorCase) -> dict:
    """The same case as a plain dict: check_case converts every amount."""
    return dict(copy.deepcopy(case))


def test_ledger_cases_give_the_full_paths_results(ledger):
    with ledger.service.tx() as s:
        policy = ledger.service.registry.active(s)
        customers = s.execute(select(Customer).order_by(Customer.id)).scalars().all()
        both = load_cases(s, customers, policy.exponent, AS_OF)
        typed_only = load_cases(s, customers, policy.exponent, AS_OF, plain=False)
    assert len(customers) == N
    seen = {"reservations": 0, "plans": 0, "grants": 0, "promises": 0}
    for c in customers:
        typed = both[c.id].typed
        assert type(typed) is MinorCase and typed.minor_exponent == policy.exponent
        assert typed_only[c.id].plain is None and typed_only[c.id].typed == typed
        assert type(typed_only[c.id].typed) is MinorCase
        full = _full(typed)
        assert check_case(copy.deepcopy(typed), policy) == check_case(full, policy), c.id
        orders = [None] + [{"amount": r["amount"], "order_id": r["order_id"]} for r in typed["reservations"]]
        for order in orders:
            assert (_outcome(lambda: evaluate_loaded(policy, copy.deepcopy(typed), AS_OF, order=order))
                    == _outcome(lambda: evaluate_loaded(policy, _full(typed), AS_OF, order=order))), (c.id, order)
        assert _side(policy, copy.deepcopy(typed), AS_OF)[0] == _side(policy, _full(typed), AS_OF)[0], c.id
        seen["reservations"] += bool(typed["reservations"])
        seen["plans"] += bool(typed["instalment_plans"])
        seen["grants"] += typed.get("grant") is not None
        seen["promises"] += bool(typed["promises"])
    assert all(seen.values()), seen


@pytest.mark.parametrize("exponent", [0, 3])
def test_ledger_cases_in_another_exponent_are_checked_in_full(ledger, exponent):
    """The same rows read in another exponent than the policy's (a ledger kept in another currency's minor units):
    every amount is converted again, refused or scaled exactly as for a plain dict."""
    with ledger.service.tx() as s:
        policy = ledger.service.registry.active(s)
        customers = s.execute(select(Customer).order_by(Customer.id)).scalars().all()
        cases = load_cases(s, customers, exponent, AS_OF, plain=False)
    assert policy.exponent == 2
    refused = accepted = 0
    for c in customers:
        typed = cases[c.id].typed
        assert typed.minor_exponent == exponent
        got = _outcome(lambda: evaluate_loaded(policy, copy.deepcopy(typed), AS_OF))
        assert got == _outcome(lambda: evaluate_loaded(policy, _full(typed), AS_OF)), c.id
        refused += isinstance(got, list)
        accepted += not isinstance(got, list)
    # 3 decimals: every invoice is refused ("…50.000 has more than 2 decimal places"); 0: accepted, 100 × larger
    assert (refused, accepted) == ((N, 0) if exponent == 3 else (0, N))
