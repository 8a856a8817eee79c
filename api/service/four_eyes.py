"""Approving or rejecting a pending change (api/service/approvals.py): the second pair of eyes carries it out.

A limit grant is applied as asked, with the approver as the record's actor and `approved_by`; the approver needs
the authority level the amount above the policy's limit needs under the active policy. A policy proposal is
stored and activated. Either way the requester can't decide it (E_SAME_PERSON), and a rejection changes
nothing but the approval and the trail.
"""

from __future__ import annotations

from rules.money import to_minor

from ..errors import DomainError, not_found
from ..store.tables import Approval
from . import approvals, grants, policies
from .decide import lock_customer


def decide(ctx, approval_id: str, req: dict, key, request_id: str, approve: bool) -> dict:
    reason = approvals.reason_of(req)
    with ctx.tx() as s:
        found = s.get(Approval, approval_id)
        if found is None:
            raise not_found("approval", approval_id)
        if found.kind == "limit_grant":
            lock_customer(s, found.subject)  # the customer's lock before the approval's, as a grant takes
        a = approvals.locked_pending(s, approval_id)
        what = "this limit grant" if a.kind == "limit_grant" else "this policy version"
        approvals.refuse_same_person(s, key, a.requested_by, a.requested_person, what)
        if a.kind == "limit_grant":
            out = _grant(ctx, s, a, key, reason, request_id, approve)
        else:
            out = policies.decide_proposal(ctx, s, a, key, reason, request_id, approve)
        return {"approval": approvals.approval_dict(a), **out}


def _grant(ctx, s, a: Approval, key, reason: str, request_id: str, approve: bool) -> dict:
    grant = a.payload
    policy = ctx.registry.active(s)
    level = grants.needed_level(policy, to_minor(grant["above_policy"], policy.exponent))
    if approve and not grants.holds_level(policy, key, level):
        raise DomainError(
            "E_GRANT_AUTHORITY",
            f"approving this grant ({grant['above_policy']} above the policy's limit) needs authority "
            f"level '{level.name}' or higher; key '{key.name}' holds "
            f"{repr(key.authority) if key.authority else 'no level'}",
            {"authority": [f"needs '{level.name}'"]},
        )
    if approve:
        out = grants.apply(
            ctx,
            s,
            a.subject,
            grant,
            actor=key.name,
            person=a.requested_person,
            authority=key.authority,
            request_id=request_id,
            approved_by=key.name,
            approval_id=a.id,
            granted_by=a.requested_by,
        )
        approvals.close(ctx, a, "approved", key, reason, out["decision_id"])
        return out
    rec = grants.record(
        ctx,
        s,
        a.subject,
        "limit_grant_reject",
        "rejected",
        key.name,
        request_id,
        {
            "approval_id": a.id,
            "reason": reason,
            "person": approvals.person_of(key),
            "requested_by": a.requested_by,
            "change": {k: grant[k] for k in ("limit", "until")},
        },
    )
    approvals.close(ctx, a, "rejected", key, reason, rec.id)
    return {"customer_id": a.subject, "status": "rejected", "decision_id": rec.id}
