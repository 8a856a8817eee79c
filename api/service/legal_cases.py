"""Legal cases (法律诉讼案件): a litigation referral opens one for the customer, which then follows its own
one-way status (docs/dunning.md, "Legal cases"). While a case is open its invoices are with the legal team:
the engine pauses their collection (engine/facts.py, pause `legal_case`), so no stage action is created for
them. Opening and every status change are records in the customer's hash chain (kind `legal_case`, outcome the
new status), with actor and reason.
"""
from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sqlalchemy import bindparam, insert, select, update

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
    return _view(_columns(c), exponent)


def _columns(c: LegalCase) -> dict:
    return {name: getattr(c, name) for name in _LEGAL.c.keys()}


def _view(row: dict, exponent: int) -> dict:
    return {"id": row["id"], "customer_id": row["customer_id"], "invoice_ids": list(row["invoice_ids"]),
            "amount": minor_str(row["amount_minor"], exponent), "opened_on": row["opened_on"].isoformat(),
            "status": row["status"], "status_label": STATUSES[row["status"]], "status_on": row["status_on"].isoformat(),
            "closed_on": row["closed_on"].isoformat() if row["closed_on"] else None, "open": row["closed_on"] is None,
            "action_id": row["action_id"], "decision_id": row["decision_id"], "history": list(row["history"])}


def _record_of(row: dict, change: dict, exponent: int, *, actor, request_id, policy_version, now) -> dict:
    """The trail record of a case's change (the keyword arguments of trail.append): the change as its facts,
    the case as it stands (before the change's own history entry) as its result."""
    return dict(subject=row["customer_id"], kind=KIND, actor=actor, request_id=request_id, as_of=now.date(),
                facts=canonical(change), policy_version=policy_version, result=canonical(_view(row, exponent)),
                outcome=row["status"], created_at=now)


def _history_entry(status: str, change: dict, record_id: str, *, actor, now) -> dict:
    return {"status": status, "at": now.isoformat() + "Z", "actor": actor, "reason": change["reason"],
            "note": change.get("note"), "record_id": record_id}


def _record(s, c: LegalCase, change: dict, *, actor, request_id, policy_version, now, exponent) -> str:
    rec = trail.append(s, **_record_of(_columns(c), change, exponent, actor=actor, request_id=request_id,
                                       policy_version=policy_version, now=now))
    c.history = [*c.history, _history_entry(c.status, change, rec.id, actor=actor, now=now)]
    return rec.id


def open_on_referral(s, customer_id: str, data: dict, decision_id: str, exponent: int, *, actor: str,
                     request_id: str, policy_version: str, now) -> int | None:
    """The decision `data` lists a litigation referral: open the customer's legal case (see
    open_on_referrals). Returns the new case's id, or None."""
    opened = open_on_referrals(s, [Referred(customer_id, data, decision_id, exponent, policy_version)],
                               actor=actor, request_id=request_id, now=now)
    return opened[0] if opened else None


class Referred(NamedTuple):
    """A decision that may open a legal case: its customer, result, trail record and policy."""
    customer_id: str
    data: dict
    decision_id: str
    exponent: int
    policy_version: str


_LEGAL = LegalCase.__table__
_INSERT_CASES = insert(_LEGAL).returning(_LEGAL.c.id, sort_by_parameter_order=True)
_SET_HISTORY = update(_LEGAL).where(_LEGAL.c.id == bindparam("b_id")).values(history=bindparam("b_history"))


def open_on_referrals(s, decided: list[Referred], *, actor: str, request_id: str, now) -> list[int]:
    """Each decision that lists a litigation referral opens its customer's legal case, unless one is open
    (once per episode: a second referral while a case is open opens nothing). The customers are locked by
    the caller. A case claims every collectable overdue invoice (open, past due, not paused) at the referral.
    A batch (the sweep's group) costs the same few statements as one decision. Returns the new cases' ids."""
    wanted = {}
    for d in decided:
        referral = next((a for a in d.data["dunning"]["actions"] if a["type"] in REFERRAL_TYPES), None)
        claimed = [i for i in d.data["dunning"]["open_invoices"] if i["days_overdue"] > 0 and i["paused"] is None]
        if referral is not None and claimed and d.customer_id not in wanted:
            wanted[d.customer_id] = (d, referral, claimed)
    if not wanted:
        return []
    for customer_id in s.execute(select(LegalCase.customer_id).where(LegalCase.customer_id.in_(wanted),
                                                                     LegalCase.closed_on.is_(None))).scalars():
        del wanted[customer_id]
    if not wanted:
        return []
    referral_ids = {(a.customer_id, a.invoice_id, a.type, a.stage, a.due_on): a.id for a in s.execute(
        select(Action.id, Action.customer_id, Action.invoice_id, Action.type, Action.stage, Action.due_on)
        .where(Action.customer_id.in_(wanted), Action.type.in_(REFERRAL_TYPES)))}
    rows = []
    for customer_id, (d, referral, claimed) in wanted.items():
        day = dt.date.fromisoformat(referral["due_on"])
        rows.append({"customer_id": customer_id, "invoice_ids": [i["invoice_id"] for i in claimed],
                     "amount_minor": sum(to_minor(i["open"], d.exponent) for i in claimed), "opened_on": day,
                     "action_id": referral_ids.get((customer_id, referral["invoice_id"], referral["type"],
                                                    referral["stage"], day)),
                     "decision_id": d.decision_id, "status": "referred", "status_on": day, "closed_on": None,
                     "history": []})
    s.flush()                   # ORM changes of these customers first
    conn = s.connection()
    ids = [row[0] for row in conn.execute(_INSERT_CASES, rows)]
    records = []
    for case_id, row, (d, referral, _) in zip(ids, rows, wanted.values()):
        row["id"] = case_id
        change = {"legal_case_id": case_id, "from": None, "to": "referred", "action_id": row["action_id"],
                  "decision_id": d.decision_id, "invoice_ids": list(row["invoice_ids"]),
                  "amount": minor_str(row["amount_minor"], d.exponent),
                  "reason": f"litigation referral of {referral['due_on']} (action {row['action_id']}): "
                            "legal case opened"}
        records.append((change, _record_of(row, change, d.exponent, actor=actor, request_id=request_id,
                                           policy_version=d.policy_version, now=now)))
    chained = trail.chain([record for _, record in records],
                          trail.lock_heads(s, [row["customer_id"] for row in rows], now))
    trail.insert_chained(s, chained)
    conn.execute(_SET_HISTORY, [{"b_id": row["id"], "b_history": [_history_entry(row["status"], change, rec["id"],
                                                                                 actor=actor, now=now)]}
                                for row, (change, _), rec in zip(rows, records, chained)])
    return ids


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
