"""Policy versions as the API shows them: the active one, one by version, validate, publish."""
from __future__ import annotations

from engine.compiler import compile_policy

from ..errors import not_found
from ..store.tables import PolicyState, PolicyVersion


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


def publish(ctx, text: str, source: str, actor: str) -> tuple[dict, bool]:
    with ctx.tx() as s:
        policy, changed = ctx.registry.publish(s, text, source, actor, ctx.clock())
        return {"version": policy.version, "name": policy.name, "changed": changed, "active": True}, changed


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
