"""May this order go on credit? The check, its reservation against the limit, and the release."""
from __future__ import annotations

import datetime as dt
import hashlib
import json

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from ..errors import DomainError, conflict, invalid, not_found
from ..store.tables import CreditOrder, Reservation
from . import credit_file, groups, referrals
from .decide import decide, lock_customer
from .validation import canonical, money_minor

RESERVATION_DAYS = 30          # a reservation's longest life when the policy's credit.reservation_days is not set


def reservation_days(policy) -> int:
    return policy.content["credit"].get("reservation_days", RESERVATION_DAYS)
# built once: a statement built per call costs more CPU than SQLite takes to run it
_RESERVATION = select(Reservation).where(Reservation.order_id == bindparam("order_id"))
_NEW_RESERVATION = insert(Reservation.__table__)        # Core: the new row is written at once, no ORM flush


def credit_check(ctx, req: dict, actor, request_id, role=None, locale="en") -> dict:
    """`role` None: a trusted caller (no ownership or what-if checks). A result with "_replayed" is the
    first answer to the same request again (the adapter pops it)."""
    try:
        return _credit_check(ctx, req, actor, request_id, role, locale)
    except IntegrityError:
        # a new order reserved for two customers at once (PostgreSQL: their locks differ); the loser sees
        # the winner's reservation only now
        with ctx.tx() as s:
            existing = s.get(Reservation, req["order_id"])
            if existing is not None and existing.customer_id != req["customer_id"]:
                raise conflict(f"order '{req['order_id']}' belongs to another customer") from None
        raise


SIMULATING_ROLES = {"controller", "admin"}        # may ask for a what-if as_of (never reserved)


def request_hash(req: dict) -> str:
    """The identity of a credit-check request: a retry with the same order id and this hash gets the
    first decision back."""
    return hashlib.sha256(canonical({k: req.get(k) for k in _HASHED}).encode("utf-8")).hexdigest()


_HASHED = ("customer_id", "order_id", "amount", "currency", "reserve", "as_of", "expires_on")


def _may_write(reservation: Reservation, actor, role) -> bool:
    """A held reservation is written (re-checked, released) by its owner, a controller or an admin."""
    return role != "sales" or reservation.owner == actor


def _closed(r: Reservation, today: dt.date) -> str | None:
    """held → invoiced / released / expired, one way: the state a reservation has left `held` for."""
    if r.status not in ("held", "provisional"):      # provisional: held while its referral is open
        return r.status
    return "expired" if r.expires_on < today else None


def _view(rec, c_id: str, order_id: str, data: dict, reserved: bool, as_of: dt.date, *, check=None,
          reasons=None) -> dict:
    """The answer to a credit check; `check` and `reasons` as a credit hold changed them (credit_file.held_check)."""
    check = check or data["credit"]["check"]
    credit = data["credit"]
    return {"decision_id": rec.id, "policy_version": rec.policy_version, "customer_id": c_id,
            "order_id": order_id, "outcome": check["outcome"], "conditions": check["conditions"],
            "reasons": reasons if reasons is not None else [r for r in data["reasons"] if r["family"] == "credit.check"],
            "limit": credit["limit"], "exposure": credit["exposure"], "available": credit["available"],
            "exposure_after_order": check["exposure_after_order"], "reserved": reserved,
            "as_of": as_of.isoformat()}


def _credit_check(ctx, req: dict, actor, request_id, role=None, locale="en") -> dict:
    today = ctx.today()
    what_if = req.get("as_of") is not None and req["as_of"] != today
    if what_if and role is not None and role not in SIMULATING_ROLES:
        raise DomainError("E_FORBIDDEN", "only controller and admin keys may check as of another day (a what-if)",
                          {"as_of": [f"must be today ({today.isoformat()}) or left out for this key"]})
    if what_if and req.get("reserve"):
        raise invalid({"as_of": [f"a reserving check is decided as of today ({today.isoformat()}); "
                                 "a what-if as_of is never reserved"]})
    as_of = req["as_of"] if what_if else today
    expires = req.get("expires_on")
    with ctx.tx() as s:
        group = groups.lock_group_of(s, req["customer_id"])      # members of a group check one at a time
        c = lock_customer(s, req["customer_id"])
        policy = ctx.registry.active(s)
        days = reservation_days(policy)
        if req.get("reserve") and expires is not None and not today <= expires <= today + dt.timedelta(days=days):
            raise invalid({"expires_on": [f"must be between today ({today.isoformat()}) and "
                                          f"{(today + dt.timedelta(days=days)).isoformat()} "
                                          f"(at most {days} days: the policy's credit.reservation_days)"]})
        if req["currency"] != policy.currency:
            raise invalid({"currency": [f"'{req['currency']}' is not the policy's currency {policy.currency}"]})
        amount_minor = money_minor(req["amount"], policy.exponent, "amount")
        if amount_minor <= 0:
            raise invalid({"amount": ["must be positive"]})
        existing = s.execute(_RESERVATION, {"order_id": req["order_id"]}).scalar_one_or_none()
        if existing is not None and existing.customer_id != c.id:
            raise conflict(f"order '{req['order_id']}' belongs to another customer")
        digest = request_hash(req)
        if req.get("reserve") and existing is not None and not _may_write(existing, actor, role):
            raise DomainError("E_FORBIDDEN", f"order '{req['order_id']}' is held by another sales key")
        order_row = s.get(CreditOrder, req["order_id"])        # read once: the retry's answer, then the referral
        first = None if what_if else _first_answer(order_row, digest, actor, today)
        if first is not None:          # a retry of the request that held or referred it (its answer was lost)
            return {**first, "_replayed": True}
        if req.get("reserve") and existing is not None:
            closed = _closed(existing, today)
            if closed:
                raise conflict(f"order '{req['order_id']}' was {closed}: a reservation is never held again; "
                               "check a new order id", "E_RESERVATION_CLOSED")
        referrals.refuse_open(req["order_id"], order_row)          # refused while the order's referral is open
        hold = credit_file.hold_in_force(s, c.id, as_of)      # 停止赊销: the check rejects with its reason
        order = {"amount": str(req["amount"]), "order_id": req["order_id"]}
        group_test = groups.GroupTest(ctx, s, policy, group, c.id, as_of) if group is not None else None

        def outcome_of(data):          # a hold, then the group's limit, over the policy's outcome
            if hold or (group_test is not None and group_test.exceeded(data)):
                return "reject"
            return data["credit"]["check"]["outcome"]
        rec, decision = decide(ctx, s, c, as_of, kind="credit_check_what_if" if what_if else "credit_check",
                               actor=actor, request_id=request_id, order=order, persist_actions=False,
                               outcome_of=outcome_of if hold or group_test else None, remember=not what_if)
        # only the credit check's reasons are rendered (in the caller's locale); the rest is figures
        check, reasons = decision.body["credit"]["check"], decision.reasons(locale, family="credit.check")
        group_view = None
        if group_test is not None:
            check, reasons, group_view = group_test.apply(decision.body, check, reasons)
        check, reasons = credit_file.held_check(check, reasons, hold)
        reserved = False
        if req.get("reserve") and check["outcome"] in ("approve", "approve_with_conditions"):
            expires = expires or (today + dt.timedelta(days=days))
            if existing is None:
                s.connection().execute(_NEW_RESERVATION, dict(
                    order_id=req["order_id"], customer_id=c.id, amount_minor=amount_minor, status="held",
                    expires_on=expires, decision_id=rec.id, created_at=ctx.clock(), owner=actor, request_hash=digest))
            else:
                existing.amount_minor, existing.status, existing.expires_on = amount_minor, "held", expires
                existing.decision_id, existing.request_hash = rec.id, digest
            reserved = True
        view = _view(rec, c.id, req["order_id"], decision.body, reserved, as_of, check=check, reasons=reasons)
        answer = None

        def answer_of(referral):
            nonlocal answer
            answer = {**view, **({"referral": referral} if referral else {}),
                      **({"group": group_view} if group_view else {})}
            # a retry today (same key, order id and body) gets this answer back, whatever it decided
            return digest, json.dumps(answer, ensure_ascii=False, sort_keys=True)
        if what_if:
            answer_of(None)
        else:
            referrals.after_check(
                ctx, s, c, order_id=req["order_id"], amount_minor=amount_minor, as_of=as_of,
                reserve=req.get("reserve"), rec=rec, decision=decision, actor=actor, outcome=check["outcome"],
                request_id=request_id, existing_reservation=existing, answer_of=answer_of)
        return answer


def _first_answer(row: CreditOrder | None, digest: str, actor, today: dt.date) -> dict | None:
    """The answer this actor's request with this hash got today, while the order's last record is still
    that check's (a referral step or another check since, or another day: decided anew). So a client whose
    answer was lost (a worker killed mid-request) retries safely, like an event's event_id. Stored whole:
    the group's test and the referral are in the answer, not in the policy's result."""
    if row is None or row.answer is None or row.request_hash != digest or row.requested_by != actor:
        return None
    answer = json.loads(row.answer)
    return answer if answer["decision_id"] == row.decision_id and answer["as_of"] == today.isoformat() else None


def release_reservation(ctx, order_id: str, actor=None, role=None) -> dict:
    with ctx.tx() as s:
        r = s.get(Reservation, order_id)
        if r is None:
            raise not_found("reservation for order", order_id)
        lock_customer(s, r.customer_id)
        if not _may_write(r, actor, role):
            raise DomainError("E_FORBIDDEN", f"order '{order_id}' is held by another sales key")
        if r.status == "held":
            r.status = "released"
        return {"order_id": r.order_id, "status": r.status}
