"""Four-eyes (四眼原则): a change one person asks for and a different person approves or rejects.

Kinds: `limit_grant` (a granted limit above the policy's `authority.four_eyes_above`, or above the requester's
authority level: api/service/grants.py) and `policy_publish` (with the active policy's
`authority.four_eyes_publish`: api/service/policies.py). An approval is `pending` → `approved` or `rejected`,
once. The request and the decision are each a record in the subject's chain (the customer; `policy:<version>`)
with actor, person and reason. The approver must be another person than the requester (by key name and by the
person the key belongs to: E_SAME_PERSON), and for a grant hold the authority level it needs.
This module is the mechanics; api/service/four_eyes.py carries out an approved change.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from ..errors import DomainError, conflict, invalid, not_found
from ..store import trail
from ..store.tables import ApiKey, Approval
from .validation import canonical

KINDS = ("limit_grant", "policy_publish")
STATUSES = ("pending", "approved", "rejected")


def approval_dict(a: Approval, with_payload: bool = True) -> dict:
    out = {
        "id": a.id,
        "kind": a.kind,
        "subject": a.subject,
        "status": a.status,
        "requested_by": a.requested_by,
        "requested_person": a.requested_person,
        "reason": a.reason,
        "requested_at": a.requested_at.isoformat(),
        "request_decision_id": a.request_decision_id,
        "decided_by": a.decided_by,
        "decided_person": a.decided_person,
        "decided_at": a.decided_at.isoformat() if a.decided_at else None,
        "decision_reason": a.decision_reason,
        "decision_id": a.decision_id,
    }
    if with_payload:
        out["payload"] = {k: v for k, v in a.payload.items() if k not in ("text", "limit_minor")}
    return out


def person_of(key) -> str:
    return key.person or key.name


def append(ctx, s, subject, kind, outcome, actor, request_id, policy_version, body: dict):
    return trail.append(
        s,
        subject=subject,
        kind=kind,
        actor=actor,
        request_id=request_id,
        as_of=ctx.today(),
        facts=canonical(body),
        policy_version=policy_version,
        result=canonical(body),
        outcome=outcome,
        created_at=ctx.clock(),
    )


def request(
    ctx,
    s,
    kind: str,
    subject: str,
    payload: dict,
    key,
    request_id: str,
    *,
    why: str,
    record_kind: str,
    policy_version: str | None = None,
) -> dict:
    """A pending approval of `payload` and its record (`record_kind` → pending) in the subject's chain."""
    approval_id = uuid.uuid4().hex
    body = {
        "approval_id": approval_id,
        "kind": kind,
        "why": why,
        "person": person_of(key),
        "authority": key.authority,
        "reason": payload.get("reason"),
        "change": {k: v for k, v in payload.items() if k not in ("text", "limit_minor")},
    }
    version = policy_version or ctx.registry.active(s).version
    rec = append(ctx, s, subject, record_kind, "pending", key.name, request_id, version, body)
    a = Approval(
        id=approval_id,
        kind=kind,
        subject=subject,
        payload=payload,
        status="pending",
        requested_by=key.name,
        requested_person=person_of(key),
        reason=payload.get("reason") or "",
        requested_at=ctx.clock(),
        request_decision_id=rec.id,
    )
    s.add(a)
    return {"status": "pending", "why": why, "approval": approval_dict(a)}


def key_person(s, name: str) -> str | None:
    """The person an API key belongs to (None: no such key, e.g. a console user or the CLI)."""
    return s.execute(select(ApiKey.person).where(ApiKey.name == name)).scalar_one_or_none()


def same_person(s, key, requested_by: str, requested_person: str | None = None) -> bool:
    """Is `key` held by whoever asked (the same key, or another key of the same person)?"""
    mine = {key.name, person_of(key)}
    theirs = {requested_by, requested_person or key_person(s, requested_by) or requested_by}
    return bool(mine & theirs)


def refuse_same_person(s, key, requested_by, requested_person, what: str) -> None:
    if same_person(s, key, requested_by, requested_person):
        raise DomainError(
            "E_SAME_PERSON",
            f"separation of duties: {what} was asked for by '{requested_by}'"
            f"{f' ({requested_person})' if requested_person else ''}; another person decides it",
        )


def locked_pending(s, approval_id: str) -> Approval:
    a = s.execute(select(Approval).where(Approval.id == approval_id).with_for_update()).scalar_one_or_none()
    if a is None:
        raise not_found("approval", approval_id)
    if a.status != "pending":
        raise conflict(f"approval '{approval_id}' is {a.status}", "E_APPROVAL_CLOSED")
    return a


def close(ctx, a: Approval, status: str, key, reason: str, decision_id: str) -> None:
    a.status, a.decided_by, a.decided_person = status, key.name, person_of(key)
    a.decided_at, a.decision_reason, a.decision_id = ctx.clock(), reason, decision_id


def reason_of(req: dict) -> str:
    reason = (req.get("reason") or "").strip()
    if not reason:
        raise invalid({"reason": ["a reason is required"]})
    return reason


def list_approvals(ctx, q: dict) -> dict:
    with ctx.read_tx() as s:
        stmt = select(Approval)
        if q.get("status", "pending") != "all":
            stmt = stmt.where(Approval.status == q.get("status", "pending"))
        if q.get("kind"):
            stmt = stmt.where(Approval.kind == q["kind"])
        rows = s.execute(stmt.order_by(Approval.requested_at, Approval.id).limit(500)).scalars().all()
        return {"approvals": [approval_dict(a) for a in rows]}
