"""Policy versions as the API shows them: the active one, one by version, validate, publish."""
from __future__ import annotations

from engine.compiler import compile_policy

from ..errors import not_found
from ..store.tables import PolicyState, PolicyVersion
from . import approvals


def _view(row: PolicyVersion, state: PolicyState | None, with_text=True) -> dict:
    out = {"version": row.version, "name": row.name, "source": row.source,
           "created_at": row.created_at.isoformat() + "Z", "created_by": row.created_by,
           "active": bool(state and state.active_version == row.version)}
    if with_text:
        out["text"] = row.text
    return out


def active(ctx) -> dict:
    with ctx.read_tx() as s:
        state = s.get(PolicyState, 1)
        row = s.get(PolicyVersion, state.active_version)
        out = _view(row, state)
        out.update(activated_at=state.activated_at.isoformat() + "Z", activated_by=state.activated_by)
        return out


def get_version(ctx, version: str) -> dict:
    with ctx.read_tx() as s:
        row = s.get(PolicyVersion, version)
        if row is None:
            raise not_found("policy version", version)
        return _view(row, s.get(PolicyState, 1))


def validate(text: str, source: str) -> dict:
    policy = compile_policy(text, source)        # PolicyInvalid: every error, with its position
    policy.dispose()
    return {"valid": True, "version": policy.version, "rules": len(policy.rules)}


def publish(ctx, text: str, source: str, actor: str, key=None, request_id: str = "-") -> tuple[dict, bool]:
    """Store and activate; with the active policy's `authority.four_eyes_publish` (and a caller's key) a new
    version is a proposal instead (answer `pending: true`) that another person approves (four_eyes.py)."""
    with ctx.tx() as s:
        if key is not None and ctx.registry.active(s).authority.four_eyes_publish:
            candidate = compile_policy(text, source)          # PolicyInvalid: refused before anything is stored
            version, name = candidate.version, candidate.name
            candidate.dispose()
            if version != ctx.registry.active(s).version:
                payload = {"text": text, "source": source, "version": version, "name": name,
                           "reason": f"publish {source}"}
                out = approvals.request(ctx, s, "policy_publish", f"policy:{version}", payload, key, request_id,
                                        why="four_eyes", record_kind="policy_propose", policy_version=version)
                return {"version": version, "name": name, "changed": False, "active": False, "pending": True,
                        **out}, False
        policy, changed = ctx.registry.publish(s, text, source, actor, ctx.clock())
        return {"version": policy.version, "name": policy.name, "changed": changed, "active": True}, changed


def decide_proposal(ctx, s, a, key, reason: str, request_id: str, approve: bool) -> dict:
    """A second person approves (stores and activates) or rejects a proposed version; the caller locked `a`."""
    p = a.payload
    body = {"approval_id": a.id, "version": p["version"], "proposed_by": a.requested_by,
            "proposed_person": a.requested_person, "person": approvals.person_of(key), "reason": reason}
    if approve:
        policy, changed = ctx.registry.publish(s, p["text"], p["source"], key.name, ctx.clock())
        rec = approvals.append(ctx, s, a.subject, "policy_approve", "approved", key.name, request_id,
                               policy.version, {**body, "changed": changed})
        approvals.close(ctx, a, "approved", key, reason, rec.id)
        return {"version": policy.version, "changed": changed, "active": True, "decision_id": rec.id}
    rec = approvals.append(ctx, s, a.subject, "policy_reject", "rejected", key.name, request_id, p["version"], body)
    approvals.close(ctx, a, "rejected", key, reason, rec.id)
    return {"version": p["version"], "changed": False, "active": False, "decision_id": rec.id}


def load_policy_file(ctx, path: str, log) -> tuple[str, bool]:
    """Publish the policy file if it changed since it was last loaded (start and SIGHUP)."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    with ctx.tx() as s:
        version = compile_policy(text, path)
        try:
            if ctx.registry.file_version(s) == version.version:
                return version.version, False
        finally:
            version.dispose()
        policy, changed = ctx.registry.publish(s, text, path, f"file:{path}", ctx.clock(), from_file=True)
        log.info("policy %s from %s is active", policy.version[:12], path)
        return policy.version, changed


def health(ctx) -> dict:
    from sqlalchemy import text
    with ctx.read_tx() as s:
        s.execute(text("SELECT 1"))
        policy = ctx.registry.active(s)
    return {"status": "ok", "policy_version": policy.version}
