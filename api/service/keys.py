"""API keys' lifecycle: list (never a secret), revoke, rotate. docs/governance.md.

A revocation or rotation takes effect on the very next request in every worker: requests look their key up in
the database (api/service/auth.py), so nothing but the committed row decides. A rotation gives the key a new
secret under the same name (the actor in the trail stays the same person); the old secret keeps working for
`grace_seconds` (0: refused at once), then never again. Each change is a record in the key's own chain
(subject `key:<name>`) with actor and reason; the record never holds a secret or its hash.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import select

from ..errors import conflict, invalid, not_found
from ..store import trail
from ..store.tables import ApiKey
from .auth import hash_key
from .validation import canonical

MAX_GRACE_SECONDS = 7 * 24 * 3600  # a rotated secret works at most a week longer


def key_dict(k: ApiKey, now: dt.datetime) -> dict:
    in_grace = k.previous_hash is not None and k.previous_until is not None and k.previous_until > now
    return {
        "name": k.name,
        "role": k.role,
        "person": k.person,
        "authority": k.authority,
        "created_at": k.created_at.isoformat(),
        "revoked": bool(k.revoked),
        "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        "revoked_by": k.revoked_by,
        "revoke_reason": k.revoke_reason,
        "rotated_at": k.rotated_at.isoformat() if k.rotated_at else None,
        "previous_secret_until": k.previous_until.isoformat() if in_grace and not k.revoked else None,
    }


def list_keys(ctx, include_revoked: bool = True) -> dict:
    now = ctx.clock()
    with ctx.read_tx() as s:
        stmt = select(ApiKey).order_by(ApiKey.name)
        if not include_revoked:
            stmt = stmt.where(ApiKey.revoked.is_(False))
        return {"keys": [key_dict(k, now) for k in s.execute(stmt).scalars()]}


def _reason(req: dict) -> str:
    reason = (req.get("reason") or "").strip()
    if not reason:
        raise invalid({"reason": ["a reason is required"]})
    return reason


def _locked(s, name: str) -> ApiKey:
    k = s.execute(select(ApiKey).where(ApiKey.name == name).with_for_update()).scalar_one_or_none()
    if k is None:
        raise not_found("API key", name)
    if k.revoked:
        raise conflict(
            f"API key '{name}' was revoked on {k.revoked_at.isoformat() if k.revoked_at else '?'}", "E_KEY_REVOKED"
        )
    return k


def _record(ctx, s, k: ApiKey, kind: str, outcome: str, actor: str, request_id: str, body: dict):
    body = {"key": k.name, "role": k.role, "person": k.person, **body}
    return trail.append(
        s,
        subject=f"key:{k.name}",
        kind=kind,
        actor=actor,
        request_id=request_id,
        as_of=ctx.today(),
        facts=canonical(body),
        policy_version="-",
        result=canonical(body),
        outcome=outcome,
        created_at=ctx.clock(),
    )


def revoke(ctx, name: str, req: dict, actor: str, request_id: str) -> dict:
    reason = _reason(req)
    with ctx.tx() as s:
        k = _locked(s, name)
        now = ctx.clock()
        rec = _record(ctx, s, k, "key_revoke", "revoked", actor, request_id, {"reason": reason})
        k.revoked, k.revoked_at, k.revoked_by, k.revoke_reason = True, now, actor, reason
        k.previous_hash, k.previous_until = None, None
        return {**key_dict(k, now), "decision_id": rec.id}


def rotate(ctx, name: str, req: dict, actor: str, request_id: str) -> dict:
    """A new secret for the key (shown once, in `key`); the old one works `grace_seconds` more."""
    reason = _reason(req)
    grace = req.get("grace_seconds") or 0
    if not isinstance(grace, int) or isinstance(grace, bool) or not 0 <= grace <= MAX_GRACE_SECONDS:
        raise invalid({"grace_seconds": [f"a whole number of seconds from 0 to {MAX_GRACE_SECONDS}"]})
    with ctx.tx() as s:
        k = _locked(s, name)
        now = ctx.clock()
        until = now + dt.timedelta(seconds=grace) if grace else None
        rec = _record(
            ctx,
            s,
            k,
            "key_rotate",
            "rotated",
            actor,
            request_id,
            {"reason": reason, "grace_seconds": grace, "previous_secret_until": until.isoformat() if until else None},
        )
        raw = f"cc_{k.role}_{secrets.token_urlsafe(24)}"
        k.previous_hash, k.previous_until = (k.key_hash, until) if until else (None, None)
        k.key_hash, k.rotated_at = hash_key(raw), now
        return {**key_dict(k, now), "key": raw, "decision_id": rec.id}
