"""One customer decided from the ledger: evaluate, record in the trail, persist the actions.

Every request path that decides about a stored customer (credit check, event, evaluate, review)
goes through `decide`; the sweep decides in groups with the same pieces (api/jobs/sweep.py).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, inspect, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from engine.errors import EngineFailure
from engine.evaluator import evaluate_loaded
from rules.money import to_minor

from ..errors import engine_failed, not_found
from ..store import trail
from ..store.database import insert_ignoring_duplicates
from ..store.ledger import load_cases
from ..store.policy_store import with_retry
from ..store.tables import Action, Customer
from . import legal_cases
from .validation import canonical

# built once: building a statement costs more than running it for one customer
_ACTIONS = Action.__table__.c
_CLOSE_SETTLED = (update(Action.__table__)
                  .where(_ACTIONS.customer_id == bindparam("b_customer_id"), _ACTIONS.status == "open",
                         _ACTIONS.due_on <= bindparam("b_as_of"),
                         _ACTIONS.invoice_id.not_in(bindparam("b_still_open", expanding=True)))
                  .values(status="closed", outcome="invoice_settled"))
_C = Customer.__table__.c
_LAST = (update(Customer.__table__)
         .where(_C.id == bindparam("b_id"), or_(_C.last_as_of.is_(None), _C.last_as_of <= bindparam("b_as_of")))
         .values(last_as_of=bindparam("b_as_of"), last_bucket=bindparam("b_bucket"), last_score=bindparam("b_score")))
_REMEMBER = update(Customer.__table__).where(_C.id == bindparam("b_id"))    # last_* given at execution
_LOCK_CUSTOMER = select(Customer).where(Customer.id == bindparam("customer_id")).with_for_update()


def lock_customer(s, customer_id: str) -> Customer:
    c = s.execute(_LOCK_CUSTOMER, {"customer_id": customer_id}).scalar_one_or_none()
    if c is None:
        raise not_found("customer", customer_id)
    return c


def action_rows(customer_id: str, data: dict, decision_id: str, exponent: int) -> list[dict]:
    """A decision's actions as rows of `actions`; each is created once (uq_actions_once)."""
    return [{"customer_id": customer_id, "invoice_id": a["invoice_id"], "type": a["type"], "channel": a["channel"],
             "owner": a["owner"], "stage": a["stage"], "due_on": dt.date.fromisoformat(a["due_on"]),
             "amount_minor": to_minor(a["amount"], exponent), "status": "open", "decision_id": decision_id}
            for a in data["dunning"]["actions"]]


def decide(ctx, s, customer: Customer, as_of: dt.date, *, kind, actor, request_id, order=None,
           persist_actions=True, outcome_of=None, remember=True):
    """Evaluate the customer from the ledger, record the decision, persist its actions. `remember`: the
    decision becomes the customer's last evaluation (customers.last_*), which a what-if never does."""
    def run():
        policy = ctx.registry.active(s, as_of)        # the version in force on as_of (effective dates)
        # typed rows go straight to evaluate_loaded (they were validated when written); the plain
        # form is the snapshot the trail keeps, which a replay validates and evaluates in full
        case = load_cases(s, [customer], policy.exponent, as_of)[customer.id]
        return policy, case.plain, evaluate_loaded(policy, case.typed, as_of, order=order)
    try:
        policy, case, decision = with_retry(run)
    except EngineFailure as exc:
        raise engine_failed(exc) from None
    data = decision.data
    outcome = outcome_of(data) if outcome_of else decision.outcome    # hashed into the trail: decide it first
    facts = canonical({"case": case, "as_of": as_of, "order": order})
    rec = trail.append(s, subject=customer.id, kind=kind, actor=actor, request_id=request_id, as_of=as_of,
                       facts=facts, policy_version=policy.version, result=decision.json, outcome=outcome,
                       created_at=ctx.clock())
    if remember and (customer.last_as_of is None or as_of >= customer.last_as_of):
        last = {"last_as_of": as_of, "last_bucket": data["classification"]["aging_bucket"],
                "last_score": data["score"]["value"]}
        if inspect(customer).persistent:       # its row is written: Core, the object told the values are stored
            s.connection().execute(_REMEMBER, {"b_id": customer.id, **last})
            for name, value in last.items():
                set_committed_value(customer, name, value)
        else:
            for name, value in last.items():
                setattr(customer, name, value)
    if persist_actions:
        rows = action_rows(customer.id, data, rec.id, policy.exponent)
        if rows:
            s.execute(insert_ignoring_duplicates(s, Action, rows))
        close_settled_actions(s, customer.id, data, as_of)
        legal_cases.open_on_referral(s, customer.id, data, rec.id, policy.exponent, actor=actor,
                                     request_id=request_id, policy_version=policy.version, now=ctx.clock())
    return rec, decision


def close_settled_actions(s, customer_id, data, as_of):
    """Payment in full (or a credit note) closes the open actions of that invoice."""
    still_open = [i["invoice_id"] for i in data["dunning"]["open_invoices"]]
    s.execute(_CLOSE_SETTLED, {"b_customer_id": customer_id, "b_as_of": as_of, "b_still_open": still_open})


def remember_last_evaluations(s, decided: list[tuple[str, dict]], as_of: dt.date) -> None:
    """customers.last_* from each (customer id, decision data) of a batch, unless a later day's is there:
    what the next evaluation's "since the last evaluation" alerts compare with."""
    rows = [{"b_id": cid, "b_as_of": as_of, "b_bucket": data["classification"]["aging_bucket"],
             "b_score": data["score"]["value"]} for cid, data in decided]
    if rows:
        s.connection().execute(_LAST, rows)
