"""What a controller sets on a customer's credit file outside the policy: a credit hold (停止赊销).

A hold has a reason and optionally a last day (`until`). While it is in force (placed_on ≤ as_of ≤ until)
every credit check of the customer rejects with the hold's reason: the engine still evaluates the order (the
record's result is its decision, replayable as ever), and the trail record's outcome is `reject`, with the hold
record just before it in the customer's chain saying why. Placing, replacing and lifting a hold are each a
trail record (before/after, actor, reason) carrying a critical alert, also logged on `creditctl.alerts`.
"""

from __future__ import annotations

import datetime as dt
import logging

from ..errors import conflict, invalid, not_found
from ..store import trail
from ..store.tables import CreditHold, Customer
from . import groups
from .decide import lock_customer
from .validation import canonical

log = logging.getLogger("creditctl.alerts")
HOLD_RULE = "credit.hold"


hold_dict = groups.hold_dict  # the same shape for a customer's hold as for a group's


def hold_in_force(s, customer_id: str, as_of: dt.date) -> CreditHold | None:
    h = s.get(CreditHold, customer_id)
    return h if h is not None and groups.in_force(h, as_of) else None


def held_check(check: dict, reasons: list[dict], hold: CreditHold | None) -> tuple[dict, list[dict]]:
    """A credit check's outcome and reasons under a hold in force (unchanged without one)."""
    if hold is None:
        return check, reasons
    until = f" until {hold.until.isoformat()}" if hold.until else ""
    why = {
        "rule": HOLD_RULE,
        "family": "credit.check",
        "message": f"停止赊销 credit hold since {hold.placed_on.isoformat()}{until} by {hold.placed_by}: {hold.reason}",
    }
    return dict(check, outcome="reject", conditions=[]), [why, *reasons]


def _reason(req: dict) -> str:
    reason = (req.get("reason") or "").strip()
    if not reason:
        raise invalid({"reason": ["a reason is required"]})
    return reason


def _record(ctx, s, customer_id, kind, actor, request_id, before, after, reason, outcome):
    alert = {
        "severity": "critical",
        "customer_id": customer_id,
        "message": f"credit hold {'lifted' if after is None else 'placed'}: {reason}",
    }
    policy = ctx.registry.active(s)
    body = {"customer_id": customer_id, "before": before, "after": after, "reason": reason, "alerts": [alert]}
    rec = trail.append(
        s,
        subject=customer_id,
        kind=kind,
        actor=actor,
        request_id=request_id,
        as_of=ctx.today(),
        facts=canonical({"before": before, "reason": reason}),
        policy_version=policy.version,
        result=canonical(body),
        outcome=outcome,
        created_at=ctx.clock(),
    )
    log.warning("customer %s: %s (by %s)", customer_id, alert["message"], actor)
    return rec, alert


def place_hold(ctx, customer_id: str, req: dict, actor: str, request_id: str) -> dict:
    reason = _reason(req)
    today = ctx.today()
    until = req.get("until")
    if until is not None and until < today:
        raise invalid({"until": [f"the last day of the hold may not be before today ({today.isoformat()})"]})
    with ctx.tx() as s:
        lock_customer(s, customer_id)
        h = s.get(CreditHold, customer_id)
        before = hold_dict(h)
        after = {
            "reason": reason,
            "placed_on": today.isoformat(),
            "until": until.isoformat() if until else None,
            "placed_by": actor,
        }
        rec, alert = _record(ctx, s, customer_id, "hold_set", actor, request_id, before, after, reason, "on_hold")
        if h is None:
            h = CreditHold(customer_id=customer_id)
            s.add(h)
        h.reason, h.placed_on, h.until, h.placed_by = reason, today, until, actor
        h.placed_at, h.decision_id = ctx.clock(), rec.id
        return {
            "customer_id": customer_id,
            "hold": hold_dict(h),
            "before": before,
            "decision_id": rec.id,
            "alerts": [alert],
        }


def lift_hold(ctx, customer_id: str, req: dict, actor: str, request_id: str) -> dict:
    reason = _reason(req)
    with ctx.tx() as s:
        lock_customer(s, customer_id)
        h = s.get(CreditHold, customer_id)
        if h is None:
            raise conflict(f"customer '{customer_id}' is not on credit hold", "E_NOT_ON_HOLD")
        before = hold_dict(h)
        rec, alert = _record(ctx, s, customer_id, "hold_lift", actor, request_id, before, None, reason, "lifted")
        s.delete(h)
        return {"customer_id": customer_id, "hold": None, "before": before, "decision_id": rec.id, "alerts": [alert]}


def get_hold(ctx, customer_id: str) -> dict:
    with ctx.read_tx() as s:
        if s.get(Customer, customer_id) is None:
            raise not_found("customer", customer_id)
        lock = s.get(CreditHold, customer_id)
        today = ctx.today()
        # the hold it inherits from its group (api/service/groups.py), reported beside its own
        return {
            "customer_id": customer_id,
            "hold": hold_dict(lock),
            "in_force": lock is not None and hold_in_force(s, customer_id, today) is not None,
            "group_hold": groups.member_hold(s, customer_id, today),
        }
