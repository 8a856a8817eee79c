"""May this order go on credit? The check, its reservation against the limit, and the release."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from ..errors import conflict, invalid, not_found
from ..store.tables import Reservation
from . import credit_file, referrals
from .decide import decide, lock_customer
from .validation import money_minor

RESERVATION_DAYS = 30
# built once: a statement built per call costs more CPU than SQLite takes to run it
_RESERVATION = select(Reservation).where(Reservation.order_id == bindparam("order_id"))


def credit_check(ctx, req: dict, actor, request_id) -> dict:
    try:
        return _credit_check(ctx, req, actor, request_id)
    except IntegrityError:
        # a new order reserved for two customers at once (PostgreSQL: their locks differ); the loser sees
        # the winner's reservation only now
        with ctx.tx() as s:
            existing = s.get(Reservation, req["order_id"])
            if existing is not None and existing.customer_id != req["customer_id"]:
                raise conflict(f"order '{req['order_id']}' belongs to another customer") from None
        raise


def _credit_check(ctx, req: dict, actor, request_id) -> dict:
    as_of = req.get("as_of") or ctx.today()
    with ctx.tx() as s:
        c = lock_customer(s, req["customer_id"])
        policy = ctx.registry.active(s)
        if req["currency"] != policy.currency:
            raise invalid({"currency": [f"'{req['currency']}' is not the policy's currency {policy.currency}"]})
        amount_minor = money_minor(req["amount"], policy.exponent, "amount")
        if amount_minor <= 0:
            raise invalid({"amount": ["must be positive"]})
        existing = s.execute(_RESERVATION, {"order_id": req["order_id"]}).scalar_one_or_none()
        if existing is not None and existing.customer_id != c.id:
            raise conflict(f"order '{req['order_id']}' belongs to another customer")
        referrals.open_order(s, req["order_id"])          # refused while the order's referral is open
        hold = credit_file.hold_in_force(s, c.id, as_of)      # 停止赊销: the check rejects with its reason
        order = {"amount": str(req["amount"]), "order_id": req["order_id"]}
        rec, decision = decide(ctx, s, c, as_of, kind="credit_check", actor=actor, request_id=request_id,
                               order=order, persist_actions=False,
                               outcome_of=(lambda data: "reject") if hold else None)
        check, reasons = credit_file.held_check(decision.data["credit"]["check"],
                                                [r for r in decision.data["reasons"] if r["family"] == "credit.check"],
                                                hold)
        reserved = False
        if req.get("reserve") and check["outcome"] in ("approve", "approve_with_conditions"):
            expires = req.get("expires_on") or (as_of + dt.timedelta(days=RESERVATION_DAYS))
            if existing is None:
                s.add(Reservation(order_id=req["order_id"], customer_id=c.id, amount_minor=amount_minor,
                                  status="held", expires_on=expires, decision_id=rec.id, created_at=ctx.clock()))
            else:
                existing.amount_minor, existing.status, existing.expires_on = amount_minor, "held", expires
                existing.decision_id = rec.id
            reserved = True
        referral = referrals.after_check(ctx, s, c, order_id=req["order_id"], amount_minor=amount_minor, as_of=as_of,
                                         reserve=req.get("reserve"), rec=rec, decision=decision, actor=actor,
                                         outcome=check["outcome"],
                                         request_id=request_id, existing_reservation=existing)
        credit = decision.data["credit"]
        return {"decision_id": rec.id, "policy_version": rec.policy_version, "customer_id": c.id,
                "order_id": req["order_id"], "outcome": check["outcome"], "conditions": check["conditions"],
                "reasons": reasons,
                "limit": credit["limit"], "exposure": credit["exposure"], "available": credit["available"],
                "exposure_after_order": check["exposure_after_order"], "reserved": reserved,
                "as_of": as_of.isoformat(), **({"referral": referral} if referral else {})}


def release_reservation(ctx, order_id: str) -> dict:
    with ctx.tx() as s:
        r = s.get(Reservation, order_id)
        if r is None:
            raise not_found("reservation for order", order_id)
        lock_customer(s, r.customer_id)
        if r.status == "held":
            r.status = "released"
        return {"order_id": r.order_id, "status": r.status}
