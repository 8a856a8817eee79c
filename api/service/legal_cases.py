"""Legal cases (法律诉讼案件): a litigation referral opens one for the customer, which then follows its own
one-way status (docs/dunning.md, "Legal cases"). While a case is open its invoices are with the legal team:
the engine pauses their collection (engine/facts.py, pause `legal_case`), so no stage action is created for
them. Opening and every status change are records in the customer's hash chain (kind `legal_case`, outcome the
new status), with actor and reason.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from rules.money import minor_str, to_minor

from ..errors import DomainError, invalid, not_found
from ..store import trail
from ..store.tables import Action, Customer, LegalCase
from .validation import canonical

KIND = "legal_case"
# the action types whose creation opens a case (the shipped stage 3's litigation referral, 提起诉讼)
REFERRAL_TYPES = ("litigation",)
# status → its label in a Chinese credit department's (法务) words; the first four are open, the rest close it
STATUSES = {
    "referred": "已移交法务",      # referred to the legal team / lawyer: evidence being gathered (诉讼准备)
    "filed": "已立案",             # filed with the court or arbitration commission (起诉/仲裁 立案)
    "judgment": "已判决",          # judgment, arbitral award or court mediation (判决/裁决/调解书)
    "enforcement": "强制执行中",    # enforcement applied for (申请强制执行)
    "recovered": "已回款结案",      # closed: the debt was paid (by the customer or through enforcement)
    "settled": "和解结案",          # closed: a settlement agreed (its plan is recorded on the ledger)
    "withdrawn": "撤诉结案",        # closed: the claim withdrawn before judgment
    "written_off": "核销结案",      # closed: written off; its invoices stay out of collection (账销案存)
}
OPEN = ("referred", "filed", "judgment", "enforcement")
CLOSED = ("recovered", "settled", "withdrawn", "written_off")
# one way: a step forward along the procedure, or a closing the step allows (never back, never reopened)
TRANSITIONS = {
    "referred": ("filed", "recovered", "settled", "withdrawn", "written_off"),
    "filed": ("judgment", "recovered", "settled", "withdrawn", "written_off"),
    "judgment": ("enforcement", "recovered", "settled", "written_off"),
    "enforcement": ("recovered", "settled", "written_off"),
    **{closed: () for closed in CLOSED},
}
MAX_CASE_ID = 2**31 - 1


def case_view(c: LegalCase, exponent: int) -> dict:
    return {"id": c.id, "customer_id": c.customer_id, "invoice_ids": list(c.invoice_ids),
            "amount": minor_str(c.amount_minor, exponent), "opened_on": c.opened_on.isoformat(),
            "status": c.status, "status_label": STATUSES[c.status], "status_on": c.status_on.isoformat(),
            "closed_on": c.closed_on.isoformat() if c.closed_on else None, "open": c.closed_on is None,
            "action_id": c.action_id, "decision_id": c.decision_id, "history": list(c.history)}


def _record(s, c: LegalCase, change: dict, *, actor, request_id, policy_version, now, exponent) -> str:
    view = case_view(c, exponent)
    rec = trail.append(s, subject=c.customer_id, kind=KIND, actor=actor, request_id=request_id, as_of=now.date(),
                       facts=canonical(change), policy_version=policy_version, result=canonical(view),
                       outcome=c.status, created_at=now)
    c.history = [*c.history, {"status": c.status, "at": now.isoformat() + "Z", "actor": actor,
                              "reason": change["reason"], "note": change.get("note"), "record_id": rec.id}]
    return rec.id


def open_on_referral(s, customer_id: str, data: dict, decision_id: str, exponent: int, *, actor: str,
                     request_id: str, policy_version: str, now) -> LegalCase | None:
    """The decision `data` lists a litigation referral: open the customer's legal case, unless one is open
    (once per episode: a second referral while a case is open opens nothing). The customer is locked by the
    caller. The case claims every collectable overdue invoice (open, past due, not paused) at the referral."""
    referral = next((a for a in data["dunning"]["actions"] if a["type"] in REFERRAL_TYPES), None)
    if referral is None:
        return None
    if s.execute(select(LegalCase.id).where(LegalCase.customer_id == customer_id,
                                            LegalCase.closed_on.is_(None))).first() is not None:
        return None
    claimed = [i for i in data["dunning"]["open_invoices"] if i["days_overdue"] > 0 and i["paused"] is None]
    if not claimed:
        return None
    due = referral["due_on"]
    day = dt.date.fromisoformat(due)
    action_id = s.execute(select(Action.id).where(
        Action.customer_id == customer_id, Action.invoice_id == referral["invoice_id"],
        Action.type == referral["type"], Action.stage == referral["stage"],
        Action.due_on == day)).scalar_one_or_none()
    c = LegalCase(customer_id=customer_id, invoice_ids=[i["invoice_id"] for i in claimed],
                  amount_minor=sum(to_minor(i["open"], exponent) for i in claimed), opened_on=day,
                  action_id=action_id, decision_id=decision_id, status="referred", status_on=day, closed_on=None,
                  history=[])
    s.add(c)
    s.flush()
    _record(s, c, {"legal_case_id": c.id, "from": None, "to": "referred", "action_id": action_id,
                   "decision_id": decision_id, "invoice_ids": list(c.invoice_ids),
                   "amount": minor_str(c.amount_minor, exponent),
                   "reason": f"litigation referral of {due} (action {action_id}): legal case opened"},
            actor=actor, request_id=request_id, policy_version=policy_version, now=now, exponent=exponent)
    return c


def change_status(ctx, case_id: int, body: dict, actor: str, request_id: str) -> dict:
    """Move a case one way along its lifecycle (TRANSITIONS); anything else is refused, E_LEGAL_TRANSITION."""
    if not 0 < case_id <= MAX_CASE_ID:
        raise not_found("legal case", case_id)
    to = body["status"]
    if to not in STATUSES:
        raise invalid({"status": [f"one of {', '.join(STATUSES)}"]})
    with ctx.tx() as s:
        found = s.execute(select(LegalCase.customer_id).where(LegalCase.id == case_id)).scalar_one_or_none()
        if found is None:
            raise not_found("legal case", case_id)
        # the customer's lock first, as every writer of its chain takes it (decide, the sweep)
        s.execute(select(Customer.id).where(Customer.id == found).with_for_update()).scalar_one()
        c = s.execute(select(LegalCase).where(LegalCase.id == case_id).with_for_update()).scalar_one()
        if to not in TRANSITIONS[c.status]:
            allowed = ", ".join(TRANSITIONS[c.status]) or "none: the case is closed"
            raise DomainError("E_LEGAL_TRANSITION", f"legal case {case_id} is {c.status} ({STATUSES[c.status]}): "
                              f"it cannot move to {to} (allowed: {allowed})",
                              {"status": [f"{c.status} → {to} is not a step of the case's lifecycle"]})
        now = ctx.clock()
        policy = ctx.registry.active(s)
        before = c.status
        day = max(now.date(), c.opened_on)          # never before the case opened (a referral dated ahead)
        c.status, c.status_on = to, day
        if to in CLOSED:
            c.closed_on = day
        record_id = _record(s, c, {"legal_case_id": c.id, "from": before, "to": to, "reason": body["reason"],
                                   "note": body.get("note")},
                            actor=actor, request_id=request_id, policy_version=policy.version, now=now,
                            exponent=policy.exponent)
        s.flush()
        return {**case_view(c, policy.exponent), "record_id": record_id}


def list_cases(ctx, *, customer: str | None = None, status: str | None = None, cursor=None, limit: int = 100):
    """Cases by id; status: open, closed, or one status."""
    with ctx.read_tx() as s:
        if customer is not None and s.get(Customer, customer) is None:
            raise not_found("customer", customer)
        q = select(LegalCase)
        if customer is not None:
            q = q.where(LegalCase.customer_id == customer)
        if status == "open":
            q = q.where(LegalCase.closed_on.is_(None))
        elif status == "closed":
            q = q.where(LegalCase.closed_on.is_not(None))
        elif status:
            q = q.where(LegalCase.status == status)
        if cursor:
            q = q.where(LegalCase.id > int(cursor))
        rows = s.execute(q.order_by(LegalCase.id).limit(limit + 1)).scalars().all()
        exponent = ctx.registry.active(s).exponent
        more = len(rows) > limit
        rows = rows[:limit]
        return [case_view(c, exponent) for c in rows], (str(rows[-1].id) if more and rows else None)
