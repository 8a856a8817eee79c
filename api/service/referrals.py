"""Referrals (转人工审批): a credit check that comes out `refer` waits for a controller.

The check opens a referral with the figures it saw (order, amount, reasons, limit, exposure) and
who asked. With `reserve` (and the policy's `authority.provisional_hold`) the amount is held provisionally
while the referral is open: the order's
reservation has status `provisional`, which counts in exposure like a `held` one
(api/store/ledger.HOLDING), so other orders cannot take the credit a controller may still grant.

A controller releases (optionally with conditions, e.g. a deposit) or rejects, each with a reason; the person
who asked for the order (its key, or another key of the same person) can't release it (E_SAME_PERSON);
the policy's authority matrix (rules/authority.py) says which level a release needs. `recheck`
evaluates the order again under today's ledger. An open referral expires after the policy's
`authority.referral_expiry_days`; expiry frees the provisional hold. Every step is a record in the
customer's hash chain with actor and reason. docs/governance.md.

Checking an order again while its referral is open is refused (E_REFERRAL_OPEN): the controller's
pending decision is about that order, and a second check must not bypass or silently replace it.
"""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import bindparam, select, update

from rules.money import minor_display, minor_str, to_minor

from ..errors import DomainError, conflict, invalid, not_found
from ..store import trail
from ..store.database import insert_row, upsert_statement, write
from ..store.tables import CreditOrder, CustomerGroup, GroupMember, Referral, Reservation
from . import approvals, credit_file, groups
from .decide import decide, lock_customer
from .validation import canonical, money_minor

RELEASED_HOLD_DAYS = 30          # a released referral's hold: as an approved order's (credit_checks.RESERVATION_DAYS)
STATUSES = ("open", "released", "rejected", "expired")
_ORDER_STATUS = {"approve": "approved", "approve_with_conditions": "approved", "refer": "referred",
                 "reject": "rejected"}


# ------------------------------------------------------------------------------ the credit check's part
def refuse_open(order_id: str, row: CreditOrder | None) -> CreditOrder | None:
    """Before a credit check: the order's row (the caller read it) unless a referral of it is open."""
    if row is not None and row.status == "referred":
        raise DomainError("E_REFERRAL_OPEN", f"order '{order_id}' has an open referral '{row.referral_id}': a "
                          "controller releases, rejects or rechecks it (GET /v1/credit-checks/{order_id})")
    return row


def after_check(ctx, s, c, *, order_id, amount_minor, as_of, reserve, rec, decision, actor, request_id,
                existing_reservation, outcome, answer_of=None, policy=None) -> dict | None:
    """After a credit check's decision: the order's status; with outcome `refer`, the referral (and the
    provisional hold when `reserve`). Returns the referral (as the API shows it) or None. `answer_of`
    (referral shown or None → (request hash, answer JSON) a retry gets back, or None) lets the order's row
    be written once, with the answer. `policy`: the active one, when the caller has it."""
    policy = policy or ctx.registry.active(s)
    referral = None
    if outcome == "refer":
        referral = _open(ctx, s, c, policy, order_id=order_id, amount_minor=amount_minor, as_of=as_of,
                         reserve=reserve, rec=rec, decision=decision, actor=actor, request_id=request_id,
                         existing=existing_reservation)
    shown = None if referral is None else referral_dict(referral, policy.exponent)
    request_hash, answer = (answer_of(shown) if answer_of else None) or (None, None)
    _set_order(s, order_id=order_id, customer_id=c.id, status=_ORDER_STATUS[outcome], amount_minor=amount_minor,
               requested_by=actor, decision_id=rec.id,
               referral_id=referral.id if referral else None, now=ctx.clock(), request_hash=request_hash,
               answer=answer)
    return shown


_ORDER_COLUMNS = ("customer_id", "status", "amount_minor", "requested_by", "decision_id", "referral_id", "updated_at",
                  "request_hash", "answer")


def _set_order(s, *, order_id, customer_id, status, amount_minor, requested_by, decision_id, referral_id, now,
               request_hash=None, answer=None):
    """The order's row, inserted or updated in one statement (no read-then-insert race between two
    customers' checks of one new order id)."""
    values = dict(customer_id=customer_id, status=status, amount_minor=amount_minor, requested_by=requested_by,
                  decision_id=decision_id, referral_id=referral_id, updated_at=now,
                  request_hash=request_hash, answer=answer)
    write(s, upsert_statement(s, CreditOrder.__table__, ("order_id",), _ORDER_COLUMNS), {"order_id": order_id, **values})


def _open(ctx, s, c, policy, *, order_id, amount_minor, as_of, reserve, rec, decision, actor, request_id,
          existing) -> Referral:
    """The credit check's own record (outcome refer, its actor and facts) is the referral's opening in the trail."""
    exp = policy.exponent
    credit = decision.body["credit"]
    limit = to_minor(credit["limit"], exp)
    after = to_minor(credit["check"]["exposure_after_order"], exp)
    ref = Referral(id=uuid.uuid4().hex, order_id=order_id, customer_id=c.id, status="open",
                   amount_minor=amount_minor, limit_minor=limit, exposure_minor=to_minor(credit["exposure"], exp),
                   over_limit_minor=max(0, after - limit),
                   reasons=decision.reasons(family="credit.check"),      # kept in English, as stored before
                   reserve=bool(reserve and policy.authority.provisional_hold), requested_by=actor, opened_on=as_of,
                   expires_on=as_of + dt.timedelta(days=policy.authority.referral_expiry_days),
                   decision_id=rec.id, created_at=ctx.clock())
    if ref.reserve:                # Core (database.write): nothing for the session to flush
        if existing is None:
            write(s, _NEW_RESERVATION, dict(
                order_id=order_id, customer_id=c.id, amount_minor=amount_minor, status="provisional",
                expires_on=ref.expires_on, decision_id=rec.id, created_at=ctx.clock(), owner=actor,
                request_hash=None))
        else:        # the order's earlier hold becomes this referral's provisional one, at the new amount
            write(s, _PROVISIONAL_AGAIN, dict(b_order_id=order_id, b_amount_minor=amount_minor,
                                                  b_expires_on=ref.expires_on, b_decision_id=rec.id))
    write(s, _NEW_REFERRAL, {k: getattr(ref, k) for k in _REFERRAL_COLUMNS})
    return ref


_NEW_RESERVATION = insert_row(Reservation.__table__)
_PROVISIONAL_AGAIN = (update(Reservation.__table__).where(Reservation.__table__.c.order_id == bindparam("b_order_id"))
                      .values(amount_minor=bindparam("b_amount_minor"), status="provisional",
                              expires_on=bindparam("b_expires_on"), decision_id=bindparam("b_decision_id")))
_NEW_REFERRAL = insert_row(Referral.__table__)
_REFERRAL_COLUMNS = tuple(Referral.__table__.columns.keys())


# ------------------------------------------------------------------------------ reading
def referral_dict(r: Referral, exp: int = 2) -> dict:
    return {"id": r.id, "order_id": r.order_id, "customer_id": r.customer_id, "status": r.status,
            "amount": minor_str(r.amount_minor, exp), "limit": minor_str(r.limit_minor, exp),
            "exposure": minor_str(r.exposure_minor, exp),
            "exposure_after_order": minor_str(r.exposure_minor + r.amount_minor, exp),
            "over_limit": minor_str(r.over_limit_minor, exp), "reasons": list(r.reasons), "reserve": r.reserve,
            "requested_by": r.requested_by, "opened_on": r.opened_on.isoformat(),
            "expires_on": r.expires_on.isoformat(), "decision_id": r.decision_id,
            "closed_by": r.closed_by, "close_reason": r.close_reason,
            "closed_at": r.closed_at.isoformat() if r.closed_at else None,
            "conditions": r.conditions, "close_decision_id": r.close_decision_id}


def list_referrals(ctx, q: dict) -> dict:
    """Oldest first (by the day opened, then the time): the age filters count days from the day opened to today."""
    today = ctx.today()
    with ctx.read_tx() as s:
        policy = ctx.registry.active(s)
        stmt = select(Referral)
        if q.get("status", "open") != "all":
            stmt = stmt.where(Referral.status == q.get("status", "open"))
        if q.get("customer"):
            stmt = stmt.where(Referral.customer_id == q["customer"])
        if q.get("min_amount") is not None:
            stmt = stmt.where(Referral.amount_minor >= money_minor(q["min_amount"], policy.exponent, "min_amount"))
        if q.get("max_amount") is not None:
            stmt = stmt.where(Referral.amount_minor <= money_minor(q["max_amount"], policy.exponent, "max_amount"))
        if q.get("min_age_days") is not None:
            stmt = stmt.where(Referral.opened_on <= today - dt.timedelta(days=q["min_age_days"]))
        if q.get("max_age_days") is not None:
            stmt = stmt.where(Referral.opened_on >= today - dt.timedelta(days=q["max_age_days"]))
        rows = s.execute(stmt.order_by(Referral.opened_on, Referral.created_at, Referral.id).limit(q.get("limit", 100))).scalars().all()
        return {"referrals": [dict(referral_dict(r, policy.exponent), age_days=(today - r.opened_on).days)
                              for r in rows], "as_of": today.isoformat()}


def get_order(ctx, order_id: str, key) -> dict:
    """Where an order stands. A salesperson reads only the orders its own key checked."""
    with ctx.read_tx() as s:
        row = s.get(CreditOrder, order_id)
        if row is None:
            raise not_found("credit check of order", order_id)
        if key.role == "sales" and row.requested_by != key.name:
            raise DomainError("E_FORBIDDEN", f"order '{order_id}' was checked by another salesperson")
        exp = ctx.registry.active(s).exponent
        res = s.get(Reservation, order_id)
        ref = s.get(Referral, row.referral_id) if row.referral_id else None
        return {"order_id": row.order_id, "customer_id": row.customer_id, "status": row.status,
                "amount": minor_str(row.amount_minor, exp), "requested_by": row.requested_by,
                "decision_id": row.decision_id, "updated_at": row.updated_at.isoformat(),
                "reservation": None if res is None or res.customer_id != row.customer_id else {
                    "status": res.status, "amount": minor_str(res.amount_minor, exp),
                    "expires_on": res.expires_on.isoformat()},
                "referral": None if ref is None else referral_dict(ref, exp)}


# ------------------------------------------------------------------------------ a controller's steps
def _record(ctx, s, ref: Referral, policy, kind, actor, request_id, as_of, outcome, extra: dict):
    """One step on a referral as a record in the customer's chain (not an evaluation: not replayable)."""
    facts = {"referral": referral_dict(ref, policy.exponent), **extra}
    result = {"referral_id": ref.id, "order_id": ref.order_id, "step": kind, "status": outcome, **extra}
    return trail.append(s, subject=ref.customer_id, kind=kind, actor=actor, request_id=request_id, as_of=as_of,
                        facts=canonical(facts), policy_version=policy.version, result=canonical(result),
                        outcome=outcome, created_at=ctx.clock())


def _locked_open(ctx, s, referral_id: str) -> Referral:
    ref = s.get(Referral, referral_id)
    if ref is None:
        raise not_found("referral", referral_id)
    lock_customer(s, ref.customer_id)          # every change to a customer's referrals runs under this lock
    s.refresh(ref)
    if ref.status != "open":
        raise conflict(f"referral '{referral_id}' is {ref.status}", "E_REFERRAL_CLOSED")
    if ref.expires_on < ctx.today():
        raise conflict(f"referral '{referral_id}' expired on {ref.expires_on.isoformat()}", "E_REFERRAL_CLOSED")
    return ref


def _reason(req: dict) -> str:
    reason = (req.get("reason") or "").strip()
    if not reason:
        raise invalid({"reason": ["a reason is required"]})
    return reason


def _close(ctx, s, ref: Referral, status: str, actor: str, reason: str, record, conditions=None) -> None:
    ref.status, ref.closed_by, ref.closed_at, ref.close_reason = status, actor, ctx.clock(), reason
    ref.conditions, ref.close_decision_id = conditions, record.id
    hold = s.get(Reservation, ref.order_id)
    if hold is not None and hold.status == "provisional" and hold.customer_id == ref.customer_id:
        if status == "released":
            hold.status, hold.expires_on = "held", ctx.today() + dt.timedelta(days=RELEASED_HOLD_DAYS)
        else:
            hold.status = "released"
        hold.decision_id = record.id
    row = s.get(CreditOrder, ref.order_id)
    if row is not None and row.referral_id == ref.id:
        row.status, row.decision_id, row.updated_at = status, record.id, ctx.clock()


def release(ctx, referral_id: str, req: dict, key, request_id: str) -> dict:
    reason = _reason(req)
    with ctx.tx() as s:
        ref = _locked_open(ctx, s, referral_id)
        policy = ctx.registry.active(s)
        exp = policy.exponent
        conditions = [{"type": cnd["type"], "note": cnd.get("note"),
                       "amount": None if cnd.get("amount") is None else minor_str(
                           money_minor(cnd["amount"], exp, f"conditions[{i}].amount"), exp)}
                      for i, cnd in enumerate(req.get("conditions") or [])]
        # separation of duties: whoever asked for the order (by key, or another key of the same person) can't release it
        approvals.refuse_same_person(s, key, ref.requested_by, None, f"order '{ref.order_id}'")
        _refuse_on_hold(s, ref, ctx.today())
        authority = policy.authority
        needed = authority.needed(ref.over_limit_minor)
        if needed is not None:
            held = authority.rank(key.authority)
            if held is None or held < authority.rank(needed.name):
                raise DomainError(
                    "E_AUTHORITY_REQUIRED",
                    f"releasing order '{ref.order_id}' ({minor_display(ref.over_limit_minor, exp)} over the limit) "
                    f"needs authority level '{needed.name}' or higher; key '{key.name}' holds "
                    f"{repr(key.authority) if key.authority else 'no level'}",
                    {"authority": [f"needs '{needed.name}'"]})
        extra = {"reason": reason, "conditions": conditions, "person": key.person or key.name,
                 "authority": key.authority, "authority_needed": needed.name if needed else None}
        rec = _record(ctx, s, ref, policy, "referral_release", key.name, request_id, ctx.today(), "released", extra)
        _close(ctx, s, ref, "released", key.name, reason, rec, conditions)
        return referral_dict(ref, exp)


def _holds(s, customer_id: str, as_of: dt.date):
    """(the customer's credit hold in force, its group, the group's hold in force) on as_of."""
    group_id = s.execute(select(GroupMember.group_id).where(GroupMember.customer_id == customer_id)).scalar()
    group = s.get(CustomerGroup, group_id) if group_id is not None else None
    return (credit_file.hold_in_force(s, customer_id, as_of), group,
            groups.hold_in_force(s, group_id, as_of) if group_id is not None else None)


def _refuse_on_hold(s, ref: Referral, as_of: dt.date) -> None:
    """停止赊销 wins over a release: an order referred before the customer (or its group) was put on hold is
    not released while the hold is in force; the hold is lifted first, or the referral rejected."""
    hold, group, group_hold = _holds(s, ref.customer_id, as_of)
    if hold is not None:
        raise DomainError("E_ON_HOLD", f"customer '{ref.customer_id}' is on credit hold since "
                                       f"{hold.placed_on.isoformat()} ({hold.reason}): lift the hold before releasing "
                                       f"order '{ref.order_id}', or reject it")
    if group_hold is not None:
        raise DomainError("E_ON_HOLD", f"customer '{ref.customer_id}' inherits the credit hold of group '{group.id}' "
                                       f"since {group_hold.placed_on.isoformat()} ({group_hold.reason}): lift the "
                                       f"group's hold before releasing order '{ref.order_id}', or reject it")


def reject(ctx, referral_id: str, req: dict, key, request_id: str) -> dict:
    reason = _reason(req)
    with ctx.tx() as s:
        ref = _locked_open(ctx, s, referral_id)
        policy = ctx.registry.active(s)
        rec = _record(ctx, s, ref, policy, "referral_reject", key.name, request_id, ctx.today(), "rejected",
                      {"reason": reason, "person": key.person or key.name})
        _close(ctx, s, ref, "rejected", key.name, reason, rec)
        return referral_dict(ref, policy.exponent)


def recheck(ctx, referral_id: str, key, request_id: str) -> dict:
    """Evaluate the referred order again under today's ledger: approved → released, rejected → rejected
    (the recheck's decision is the record and the reason), still `refer` → open with today's figures. A
    credit hold of the customer or its group in force rejects, as it rejects a credit check."""
    with ctx.tx() as s:
        ref = _locked_open(ctx, s, referral_id)
        c = lock_customer(s, ref.customer_id)
        policy = ctx.registry.active(s)
        exp = policy.exponent
        order = {"amount": minor_str(ref.amount_minor, exp), "order_id": ref.order_id}
        hold, group, group_hold = _holds(s, c.id, ctx.today())
        rec, decision = decide(ctx, s, c, ctx.today(), kind="referral_recheck", actor=key.name,
                               request_id=request_id, order=order, persist_actions=False,
                               outcome_of=(lambda data: "reject") if hold or group_hold else None,
                               context=groups.hold_context(group, group_hold))
        credit = decision.body["credit"]
        reasons = decision.reasons(family="credit.check")
        check, reasons = groups.held_check(credit["check"], reasons, group, group_hold)
        check, reasons = credit_file.held_check(check, reasons, hold)
        outcome = check["outcome"]
        if outcome == "refer":
            limit, after = to_minor(credit["limit"], exp), to_minor(credit["check"]["exposure_after_order"], exp)
            ref.limit_minor, ref.exposure_minor = limit, to_minor(credit["exposure"], exp)
            ref.over_limit_minor, ref.reasons = max(0, after - limit), reasons
            row = s.get(CreditOrder, ref.order_id)
            if row is not None and row.referral_id == ref.id:
                row.decision_id, row.updated_at = rec.id, ctx.clock()
        else:
            status = "released" if outcome in ("approve", "approve_with_conditions") else "rejected"
            why = f"recheck under the ledger of {ctx.today().isoformat()}: {outcome}"
            if hold or group_hold:
                why += f" ({reasons[0]['message']})"
            _close(ctx, s, ref, status, key.name, why, rec,
                   credit["check"]["conditions"] if status == "released" else None)
        return {"referral": referral_dict(ref, exp), "outcome": outcome, "decision_id": rec.id, "reasons": reasons}


def expire(ctx, as_of: dt.date, actor: str, request_id: str) -> dict:
    """Expire the referrals open past their last day (expires_on < as_of), freeing their provisional holds.
    Running it twice for a day expires nothing more."""
    with ctx.read_tx() as s:
        due = s.execute(select(Referral.id).where(Referral.status == "open", Referral.expires_on < as_of)
                        .order_by(Referral.created_at, Referral.id)).scalars().all()
    expired = []
    for referral_id in due:
        with ctx.tx() as s:
            ref = s.get(Referral, referral_id)
            lock_customer(s, ref.customer_id)
            s.refresh(ref)
            if ref.status != "open" or ref.expires_on >= as_of:
                continue                       # a controller closed it meanwhile
            policy = ctx.registry.active(s)
            why = f"open past its last day {ref.expires_on.isoformat()}"
            rec = _record(ctx, s, ref, policy, "referral_expire", actor, request_id, as_of, "expired", {"reason": why})
            _close(ctx, s, ref, "expired", actor, why, rec)
            expired.append(referral_id)
    return {"as_of": as_of.isoformat(), "expired": len(expired), "referral_ids": expired}
