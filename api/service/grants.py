"""A limit a controller grants in place of the policy's (above or below it), with a reason and optionally a last day.

The engine applies a grant in force (as_of ≤ until) in place of the policy's computed limit and of the approved
cap on the credit file (engine/evaluator.py, reason `credit.granted_limit`); every decision shows both figures
(`credit.limit`, `credit.policy_limit`) and `credit.granted` says who granted it. Past `until` the policy's
limit applies again by itself: the grant is part of the case, so a replay sees the same.

Authority: a grant above the policy's limit needs the level of the policy's authority matrix whose
`over_limit_up_to` covers the amount above it (rules/authority.py), the same matrix that bounds releases.
A key below it is refused (E_GRANT_AUTHORITY), or with `refer: true` the grant waits for a key at that level
(an approval, api/service/approvals.py). Four-eyes: above `authority.four_eyes_above` a grant always waits for
a second, different person. Granting, revoking, requesting and approving are each a record in the customer's
chain with before/after, actor, person and reason. A grant below the policy's limit needs no level.
"""
from __future__ import annotations

import datetime as dt

from engine.errors import EngineFailure
from engine.evaluator import evaluate_loaded
from rules.money import minor_display, minor_str, to_minor

from ..errors import DomainError, conflict, engine_failed, invalid, not_found
from ..store import trail
from ..store.ledger import load_cases
from ..store.tables import Customer, LimitGrant
from . import approvals
from .decide import lock_customer
from .validation import canonical, money_minor


def grant_dict(g: LimitGrant | None, exp: int = 2) -> dict | None:
    if g is None:
        return None
    return {"limit": minor_str(g.limit_minor, exp), "policy_limit_at_grant": minor_str(g.policy_limit_minor, exp),
            "until": g.until.isoformat() if g.until else None, "reason": g.reason, "granted_by": g.granted_by,
            "person": g.person, "authority": g.authority, "approved_by": g.approved_by,
            "granted_at": g.granted_at.isoformat(), "decision_id": g.decision_id}


def policy_limit(ctx, s, c: Customer, policy, as_of: dt.date) -> int:
    """The policy's computed limit for the customer today (minor units), whatever is granted."""
    case = load_cases(s, [c], policy.exponent, as_of)[c.id]
    try:
        decision = evaluate_loaded(policy, case.typed, as_of)
    except EngineFailure as exc:
        raise engine_failed(exc) from None
    return to_minor(decision.body["credit"]["policy_limit"], policy.exponent)


def _reason(req: dict) -> str:
    reason = (req.get("reason") or "").strip()
    if not reason:
        raise invalid({"reason": ["a reason is required"]})
    return reason


person_of = approvals.person_of


def needed_level(policy, above_minor: int):
    """The authority level a grant `above_minor` over the policy's limit needs (None: none)."""
    return policy.authority.needed(above_minor) if above_minor > 0 else None


def holds_level(policy, key, level) -> bool:
    if level is None:
        return True
    held = policy.authority.rank(key.authority)
    return held is not None and held >= policy.authority.rank(level.name)


def record(ctx, s, customer_id, kind, outcome, actor, request_id, body: dict):
    policy = ctx.registry.active(s)
    return trail.append(s, subject=customer_id, kind=kind, actor=actor, request_id=request_id, as_of=ctx.today(),
                        facts=canonical({"customer_id": customer_id, **body}), policy_version=policy.version,
                        result=canonical({"customer_id": customer_id, **body}), outcome=outcome,
                        created_at=ctx.clock())


def prepare(ctx, s, customer_id: str, req: dict) -> dict:
    """The grant a request asks for, checked, with the policy's figure and the level it needs (under the lock)."""
    reason = _reason(req)
    today = ctx.today()
    until = req.get("until")
    if until is not None and until < today:
        raise invalid({"until": [f"the grant's last day may not be before today ({today.isoformat()})"]})
    c = lock_customer(s, customer_id)
    policy = ctx.registry.active(s)
    exp = policy.exponent
    limit = money_minor(req["limit"], exp, "limit")
    figure = policy_limit(ctx, s, c, policy, today)
    level = needed_level(policy, limit - figure)
    return {"limit": minor_str(limit, exp), "limit_minor": limit, "policy_limit": minor_str(figure, exp),
            "above_policy": minor_str(max(0, limit - figure), exp), "until": until.isoformat() if until else None,
            "reason": reason, "authority_needed": level.name if level else None,
            "four_eyes": policy.authority.four_eyes_above is not None
            and limit - figure > policy.authority.four_eyes_above}


def apply(ctx, s, customer_id: str, grant: dict, *, actor, person, authority, request_id, approved_by=None,
          approval_id=None, granted_by=None) -> dict:
    """Write the grant (replacing any) and its trail record by `actor` (the approver, when approved); the caller
    holds the customer's lock. granted_by: who asked (default the actor)."""
    exp = ctx.registry.active(s).exponent
    g = s.get(LimitGrant, customer_id)
    before = grant_dict(g, exp)
    body = {"before": before, "after": {k: grant[k] for k in ("limit", "until", "reason")},
            "policy_limit": grant["policy_limit"], "above_policy": grant["above_policy"],
            "authority_needed": grant["authority_needed"], "person": person, "authority": authority,
            "approved_by": approved_by, "approval_id": approval_id, "reason": grant["reason"]}
    rec = record(ctx, s, customer_id, "limit_grant", "granted", actor, request_id, body)
    if g is None:
        g = LimitGrant(customer_id=customer_id)
        s.add(g)
    g.limit_minor, g.policy_limit_minor = grant["limit_minor"], to_minor(grant["policy_limit"], exp)
    g.until = dt.date.fromisoformat(grant["until"]) if grant["until"] else None
    g.reason, g.granted_by, g.person, g.authority = grant["reason"], granted_by or actor, person, authority
    g.approved_by, g.granted_at, g.decision_id = approved_by, ctx.clock(), rec.id
    return {"customer_id": customer_id, "status": "granted", "grant": grant_dict(g, exp), "before": before,
            "policy_limit": grant["policy_limit"], "decision_id": rec.id}


def grant_limit(ctx, customer_id: str, req: dict, key, request_id: str) -> tuple[dict, bool]:
    """(answer, applied): applied False when the grant waits for an approval (a higher level, four-eyes)."""
    with ctx.tx() as s:
        grant = prepare(ctx, s, customer_id, req)
        policy = ctx.registry.active(s)
        level = needed_level(policy, grant["limit_minor"] - to_minor(grant["policy_limit"], policy.exponent))
        if not holds_level(policy, key, level):
            if not req.get("refer"):
                raise DomainError(
                    "E_GRANT_AUTHORITY",
                    f"granting {minor_display(grant['limit_minor'], policy.exponent)} to '{customer_id}' is "
                    f"{grant['above_policy']} above the policy's limit {grant['policy_limit']}: it needs authority "
                    f"level '{level.name}' or higher; key '{key.name}' holds "
                    f"{repr(key.authority) if key.authority else 'no level'} (send refer: true to ask that level)",
                    {"limit": [f"needs '{level.name}'"]})
            return approvals.request(ctx, s, "limit_grant", customer_id, grant, key, request_id,
                                     why="authority", record_kind="limit_grant_request"), False
        if grant["four_eyes"]:
            return approvals.request(ctx, s, "limit_grant", customer_id, grant, key, request_id,
                                     why="four_eyes", record_kind="limit_grant_request"), False
        return apply(ctx, s, customer_id, grant, actor=key.name, person=person_of(key), authority=key.authority,
                     request_id=request_id), True


def revoke_grant(ctx, customer_id: str, req: dict, key, request_id: str) -> dict:
    """Take the grant back: the policy's limit applies again from now."""
    reason = _reason(req)
    with ctx.tx() as s:
        lock_customer(s, customer_id)
        g = s.get(LimitGrant, customer_id)
        if g is None:
            raise conflict(f"customer '{customer_id}' has no granted limit", "E_NO_GRANT")
        exp = ctx.registry.active(s).exponent
        before = grant_dict(g, exp)
        rec = record(ctx, s, customer_id, "limit_grant_revoke", "revoked", key.name, request_id,
                     {"before": before, "after": None, "reason": reason, "person": person_of(key)})
        s.delete(g)
        return {"customer_id": customer_id, "status": "revoked", "grant": None, "before": before,
                "decision_id": rec.id}


def get_grant(ctx, customer_id: str) -> dict:
    with ctx.read_tx() as s:
        if s.get(Customer, customer_id) is None:
            raise not_found("customer", customer_id)
        g = s.get(LimitGrant, customer_id)
        today = ctx.today()
        exp = ctx.registry.active(s).exponent
        return {"customer_id": customer_id, "grant": grant_dict(g, exp),
                "in_force": g is not None and (g.until is None or today <= g.until)}
