"""定期评估: periodic credit review.

For each customer whose review is due (cadence by risk class, from the policy), the review
evaluates the customer and compares the policy's limit and terms with those approved on the
credit file. Lower or equal values (and a first assessment) apply at once — a limit cut is
the safe direction; higher ones wait as a proposal until a controller approves them. Every
review is a decision in the trail (kind `review`, outcome `applied` or `pending`).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from rules.money import minor_str, to_minor

from ..errors import conflict, not_found
from ..service.decide import decide
from ..store.tables import Customer


def _proposal(decision: dict) -> tuple[int, int]:
    credit = decision["credit"]
    return to_minor(credit["policy_limit"], 2), credit["policy_terms_days"]


class NotDue(Exception):
    """Raised inside a customer's transaction to record nothing when no review is due."""


def review_customer(service, s, c: Customer, day: dt.date, actor: str, force: bool = False) -> dict:
    def outcome_of(data):
        if not force and c.last_reviewed_on is not None and not (data["review"] or {}).get("due"):
            raise NotDue(c.id)
        limit, terms = _proposal(data)
        raises = (c.approved_limit_minor is not None and limit > c.approved_limit_minor) or (
            c.approved_terms_days is not None and terms > c.approved_terms_days)
        return "pending" if raises else "applied"

    rec, decision = decide(service, s, c, day, kind="review", actor=actor, request_id=f"review:{day}",
                                    persist_actions=False, outcome_of=outcome_of)
    limit, terms = _proposal(decision.body)
    if rec.outcome == "pending":
        c.proposed_limit_minor, c.proposed_terms_days, c.proposal_decision_id = limit, terms, rec.id
    else:
        c.approved_limit_minor, c.approved_terms_days = limit, terms
        c.proposed_limit_minor = c.proposed_terms_days = c.proposal_decision_id = None
    c.last_reviewed_on = day
    return {"customer_id": c.id, "decision_id": rec.id, "outcome": rec.outcome,
            "proposed_limit": minor_str(limit, 2), "proposed_terms_days": terms}


def run_reviews(service, day: dt.date, actor: str, batch: int = 200) -> dict:
    """Review every customer whose review is due; one transaction per customer."""
    counts = {"reviewed": 0, "applied": 0, "pending": 0, "not_due": 0}
    last = ""
    while True:
        with service.tx() as s:
            ids = s.execute(select(Customer.id).where(Customer.id > last).order_by(Customer.id)
                            .limit(batch)).scalars().all()
        if not ids:
            return counts
        for cid in ids:
            try:
                with service.tx() as s:
                    c = s.execute(select(Customer).where(Customer.id == cid).with_for_update()).scalar_one()
                    result = review_customer(service, s, c, day, actor)
            except NotDue:
                counts["not_due"] += 1
                continue
            counts["reviewed"] += 1
            counts[result["outcome"]] += 1
        last = ids[-1]


def approve(service, customer_id: str, actor: str) -> dict:
    """A controller approves the pending proposal: it becomes the approved limit and terms."""
    with service.tx() as s:
        c = s.execute(select(Customer).where(Customer.id == customer_id).with_for_update()).scalar_one_or_none()
        if c is None:
            raise not_found("customer", customer_id)
        if c.proposal_decision_id is None:
            raise conflict(f"customer '{customer_id}' has no pending review proposal")
        proposal = c.proposal_decision_id
        c.approved_limit_minor, c.approved_terms_days = c.proposed_limit_minor, c.proposed_terms_days
        c.proposed_limit_minor = c.proposed_terms_days = c.proposal_decision_id = None
        s.flush()
        rec, decision = decide(service, s, c, service.today(), kind="review_approval", actor=actor,
                                        request_id=f"approve:{proposal}", persist_actions=False,
                                        outcome_of=lambda data: "approved")
        return {"customer_id": c.id, "decision_id": rec.id, "proposal_decision_id": proposal,
                "approved_limit": minor_str(c.approved_limit_minor, 2), "approved_terms_days": c.approved_terms_days}


def pending(service) -> list[dict]:
    with service.tx() as s:
        rows = s.execute(select(Customer).where(Customer.proposal_decision_id.is_not(None))
                         .order_by(Customer.id)).scalars().all()
        return [{"customer_id": c.id, "name": c.name,
                 "approved_limit": None if c.approved_limit_minor is None else minor_str(c.approved_limit_minor, 2),
                 "approved_terms_days": c.approved_terms_days,
                 "proposed_limit": minor_str(c.proposed_limit_minor, 2), "proposed_terms_days": c.proposed_terms_days,
                 "decision_id": c.proposal_decision_id} for c in rows]
