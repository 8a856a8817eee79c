"""One customer decided from the ledger: evaluate, record in the trail, persist the actions.

Every request path that decides about a stored customer (credit check, event, evaluate, review)
goes through `decide`; the sweep decides in groups with the same pieces (api/jobs/sweep.py).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, delete, exists, insert, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from engine.errors import EngineFailure
from engine.evaluator import evaluate_loaded
from rules.money import to_minor

from ..errors import engine_failed, not_found
from ..store import trail
from ..store.database import insert_ignoring_duplicates, write
from ..store.ledger import load_cases
from ..store.policy_store import with_retry
from ..store.tables import Action, Customer, CustomerSegment
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
         .values(last_as_of=bindparam("b_as_of"), last_bucket=bindparam("b_bucket"), last_score=bindparam("b_score"),
                 last_tier=bindparam("b_tier"), last_reputation=bindparam("b_reputation"),
                 last_stage=bindparam("b_stage"), last_outstanding_minor=bindparam("b_outstanding"),
                 last_segments=bindparam("b_segments", type_=Customer.__table__.c.last_segments.type)))
# the segment rows follow the update above: rewritten only where it applied (the customer's last_as_of is now
# this day's), so a batch needs no read of which customers a later day's decision had already taken
_SG = CustomerSegment.__table__.c
_APPLIED = exists().where(_C.id == bindparam("b_id"), _C.last_as_of == bindparam("b_as_of"))
_CLEAR_SEGMENTS = delete(CustomerSegment.__table__).where(_SG.customer_id == bindparam("b_id"), _APPLIED)
_ADD_SEGMENT = insert(CustomerSegment.__table__).from_select(
    ["segment", "customer_id"],
    select(bindparam("b_segment", type_=_SG.segment.type), bindparam("b_cid", type_=_SG.customer_id.type))
    .where(exists().where(_C.id == bindparam("b_cid"), _C.last_as_of == bindparam("b_day"))))
# where the caller knows the customer's rows (remember_last_evaluations' `previous`): no EXISTS per row
_DELETE_SEGMENTS = delete(CustomerSegment.__table__).where(_SG.customer_id == bindparam("b_id"))
_INSERT_SEGMENTS = insert(CustomerSegment.__table__)
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
           persist_actions=True, outcome_of=None, remember=True, context=None):
    """Evaluate the customer from the ledger, record the decision, persist its actions. `remember`: the
    decision becomes the customer's last evaluation (customers.last_*), which a what-if never does.
    `context`: more of what the service decided on, kept (and hashed) in the record's facts beside the case
    (a group's hold: groups.hold_context); a replay evaluates the case alone, so the result is unchanged."""
    policy, case, decision = evaluate(ctx, s, customer, as_of, order=order)
    return record(ctx, s, customer, as_of, policy, case, decision, kind=kind, actor=actor, request_id=request_id,
                  order=order, persist_actions=persist_actions, outcome_of=outcome_of, remember=remember,
                  context=context)


def evaluate(ctx, s, customer: Customer, as_of: dt.date, *, order=None, case=None):
    """(policy in force on as_of, the plain case, decision) of the customer from the ledger; `case` (a
    ledger.LedgerCase) when the caller has read it. Writes nothing: a credit check on SQLite runs it
    before it takes the write lock (api/service/credit_checks.py)."""
    def run():
        policy = ctx.registry.active(s, as_of)        # the version in force on as_of (effective dates)
        # typed rows go straight to evaluate_loaded (they were validated when written); the plain
        # form is the snapshot the trail keeps, which a replay validates and evaluates in full
        loaded = case or load_cases(s, [customer], policy.exponent, as_of)[customer.id]
        return policy, loaded.plain, evaluate_loaded(policy, loaded.typed, as_of, order=order)
    try:
        return with_retry(run)
    except EngineFailure as exc:
        raise engine_failed(exc) from None


UNREAD = object()       # record's `head` when the caller has not read the chain head


def record(ctx, s, customer: Customer, as_of: dt.date, policy, case: dict, decision, *, kind, actor, request_id,
           order=None, persist_actions=True, outcome_of=None, remember=True, context=None, head=UNREAD):
    """decide's writes: the decision (from evaluate) in the customer's chain, last_*, its actions. `head`: the
    customer's chain head as this transaction read it (trail.append_at), which spares the head's lock
    statement; `customer`'s row is then taken as it stands in this transaction (no segment rows rewritten
    where its segments stay the same)."""
    data = decision.body         # what follows reads figures, not reasons: nothing to render
    outcome = outcome_of(data) if outcome_of else decision.outcome    # hashed into the trail: decide it first
    facts = canonical({"case": case, "as_of": as_of, "order": order, **(context or {})})
    values = dict(subject=customer.id, kind=kind, actor=actor, request_id=request_id, as_of=as_of, facts=facts,
                  policy_version=policy.version, result=decision.stored, outcome=outcome, created_at=ctx.clock())
    rec = trail.append(s, **values) if head is UNREAD else trail.append_at(s, head, **values)
    if remember:
        summary = summary_of(data, policy.exponent)
        remember_last_evaluations(s, [(customer.id, summary)], as_of,
                                  None if head is UNREAD else {customer.id: (customer.last_as_of, customer.last_segments)})
        if customer.last_as_of is None or as_of >= customer.last_as_of:     # the session's copy: as written
            for field, value in (("last_as_of", as_of), ("last_bucket", summary["bucket"]),
                                 ("last_score", summary["score"]), ("last_tier", summary["tier"]),
                                 ("last_reputation", summary["reputation"]), ("last_stage", summary["stage"]),
                                 ("last_outstanding_minor", summary["outstanding"]),
                                 ("last_segments", summary["segments"])):
                set_committed_value(customer, field, value)
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


def summary_of(data: dict, exponent: int) -> dict:
    """What a decision leaves on the customer (customers.last_*): small, so an importer's worker process
    sends it back instead of the decision."""
    c = data["classification"]
    return {"bucket": c["aging_bucket"], "score": data["score"]["value"], "tier": c["amount_tier"],
            "reputation": c["reputation"], "stage": data["dunning"]["stage"],
            "outstanding": to_minor(data["credit"]["outstanding"], exponent),
            "segments": [seg["id"] for seg in c["segments"]]}


def remember_last_evaluations(s, decided: list[tuple[str, dict]], as_of: dt.date,
                              previous: dict | None = None) -> None:
    """customers.last_* and customer_segments from each (customer id, summary_of(decision)) of a batch, unless
    a later day's is there: what the next evaluation's "since the last evaluation" alerts compare with, and
    what the customer list filters on. The one writer of them: the request path's decide, the sweep and the
    importer all come here, in the transaction that records the decision. `previous` ({customer id: (last_as_of,
    last_segments)} as the rows stand in this transaction, e.g. the sweep's customers whose chain has not moved
    since it read them) spares the segment rows' rewrite where the segments stay the same, and the per-row
    EXISTS checks where they change."""
    rows = [{"b_id": cid, "b_as_of": as_of, "b_bucket": m["bucket"], "b_score": m["score"], "b_tier": m["tier"],
             "b_reputation": m["reputation"], "b_stage": m["stage"], "b_outstanding": m["outstanding"],
             "b_segments": m["segments"]} for cid, m in decided]
    if not rows:
        return
    s.flush()                   # an ORM change of the same customer first: the statements below see it
    conn = s.connection()
    previous = previous or {}
    if len(rows) == 1 and decided[0][0] in previous:
        write(s, _LAST, rows[0])        # may go with the transaction's other writes (database.collect_writes)
    else:                               # the segment rows' EXISTS below reads what this wrote
        conn.execute(_LAST, rows)
    unknown, rewrite, fresh = [], [], []        # by what this transaction knows of the customer's rows
    for cid, m in decided:
        before = previous.get(cid)
        if before is None:
            unknown.append((cid, m))
            continue
        last_as_of, last_segments = before
        if last_as_of is not None and last_as_of > as_of:
            continue                        # a later day's evaluation stays
        if list(last_segments or ()) == list(m["segments"]):
            continue                        # the rows are these already
        (rewrite if last_segments else fresh).append((cid, m))
    if unknown:
        conn.execute(_CLEAR_SEGMENTS, [{"b_id": cid, "b_as_of": as_of} for cid, _ in unknown])
        adds = [{"b_segment": seg, "b_cid": cid, "b_day": as_of}
                for cid, m in unknown for seg in dict.fromkeys(m["segments"])]
        if adds:
            conn.execute(_ADD_SEGMENT, adds)
    if rewrite:
        conn.execute(_DELETE_SEGMENTS, [{"b_id": cid} for cid, _ in rewrite])
    adds = [{"segment": seg, "customer_id": cid} for cid, m in rewrite + fresh for seg in dict.fromkeys(m["segments"])]
    if adds:
        conn.execute(_INSERT_SEGMENTS, adds)

