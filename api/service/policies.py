"""Policy versions as the API shows them: the active one, one by version, validate, publish."""
from __future__ import annotations

from engine.compiler import compile_policy
from engine.errors import PolicyInvalid
from engine.yamlsource import read_text_file

from ..errors import DomainError, invalid, not_found
from ..store.tables import PolicyState, PolicyVersion
from . import approvals
from .deliveries import stuck


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
        ctx.registry.stored_text(row)             # E_POLICY_TAMPERED: an edited text is never shown as the version
        out = _view(row, state)
        out.update(activated_at=state.activated_at.isoformat() + "Z", activated_by=state.activated_by)
        return out


VERSION_PREFIX_MIN = 8


def get_version(ctx, version: str) -> dict:
    """One version by its full hash or by a unique prefix of at least 8 characters (the tools print 12)."""
    from sqlalchemy import select
    with ctx.read_tx() as s:
        row = s.get(PolicyVersion, version)
        if row is None and VERSION_PREFIX_MIN <= len(version) < 64 and all(ch in "0123456789abcdef" for ch in version):
            found = s.execute(select(PolicyVersion).where(PolicyVersion.version.like(version + "%"))
                              .order_by(PolicyVersion.version).limit(2)).scalars().all()
            if len(found) > 1:
                raise DomainError("E_VERSION_AMBIGUOUS", f"more than one policy version starts with '{version}': "
                                  "give more characters of it", {"version": ["ambiguous prefix"]})
            row = found[0] if found else None
        if row is None:
            if len(version) < VERSION_PREFIX_MIN:
                raise invalid({"version": [f"a version or a prefix of at least {VERSION_PREFIX_MIN} characters"]})
            raise not_found("policy version", version)
        ctx.registry.stored_text(row)
        return _view(row, s.get(PolicyState, 1))


def validate(ctx, text: str, source: str) -> dict:
    policy = compile_policy(text, source)        # PolicyInvalid: every error, with its position
    try:
        with ctx.read_tx() as s:
            ctx.registry.check_ledger_currency(s, policy)       # E_POLICY_CURRENCY: publish would refuse it
    finally:
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
    """Publish the policy file if it changed since it was last loaded (start and SIGHUP).
    OSError when it cannot be read; PolicyInvalid (E_ENCODING, …) or DomainError when it is refused."""
    text = read_text_file(path)
    with ctx.tx() as s:
        version = compile_policy(text, path)
        try:
            if ctx.registry.file_version(s) == version.version:
                return version.version, False
            text = version.text
        finally:
            version.dispose()
        policy, changed = ctx.registry.publish(s, text, path, f"file:{path}", ctx.clock(), from_file=True)
        log.info("policy %s from %s is active", policy.version[:12], path)
        return policy.version, changed


def file_errors(path: str, exc: Exception) -> list[dict]:
    """Why a policy file was refused, as {code, message, file, line, column} (line 0: no position)."""
    if isinstance(exc, PolicyInvalid):
        return [{"code": e.code, "message": e.message, "file": e.file, "line": e.line, "column": e.column}
                for e in exc.errors]
    if isinstance(exc, DomainError):
        return [{"code": exc.code, "message": exc.message, "file": path, "line": getattr(exc, "line", 0),
                 "column": getattr(exc, "column", 0)}]
    return [{"code": "E_FILE", "message": getattr(exc, "strerror", None) or str(exc), "file": path, "line": 0,
             "column": 0}]


def load_policy_file_or_keep(ctx, path: str, log, first_report=lambda: True) -> dict:
    """Load the policy file (start, SIGHUP); when it is refused and a version is stored, keep serving the
    stored active version and say so: the errors (file:line) at ERROR once per reload (`first_report()` is
    True for the first worker of a reload to see them), and the returned status for /healthz and /metrics.
    With no stored version there is nothing to serve: the error is raised."""
    at = ctx.clock().isoformat(timespec="seconds") + "Z"
    try:
        version, changed = load_policy_file(ctx, path, log)
    except (OSError, PolicyInvalid, DomainError) as exc:
        if isinstance(exc, DomainError) and exc.code not in ("E_POLICY_CURRENCY", "E_INPUT_INVALID"):
            raise
        with ctx.read_tx() as s:
            from ..store.tables import PolicyState
            state = s.get(PolicyState, 1)
            serving = state.active_version if state else None
        if serving is None:
            raise
        errors = file_errors(path, exc)
        first = first_report()
        if first:
            for e in errors:
                log.error("%s:%s:%s: %s: %s", e["file"], e["line"], e["column"], e["code"], e["message"])
        (log.error if first else log.info)(
            "policy file %s refused (%d error(s)%s); still serving the stored active version %s", path, len(errors),
            "" if first else ", logged above", serving[:12])
        first_error = errors[0]
        return {"valid": False, "file": path, "at": at, "code": first_error["code"], "line": first_error["line"],
                "column": first_error["column"], "message": first_error["message"], "errors": errors,
                "serving_version": serving, "first_report": first}
    return {"valid": True, "file": path, "at": at, "version": version, "changed": changed}


def health(ctx, policy_file: dict | None = None) -> dict:
    """Liveness, the live version, the outbox's oldest waiting message and dead letters and, when the service
    loads a policy file, how its last load went."""
    from sqlalchemy import text
    with ctx.read_tx() as s:
        s.execute(text("SELECT 1"))
        policy = ctx.registry.active(s)
    # the outbox's progress is reported, not judged: a stuck outbox is an alert, not a dead service
    out = {"status": "ok", "policy_version": policy.version, "outbox": stuck(ctx)}
    if policy_file is not None:
        out["policy_file"] = {k: v for k, v in policy_file.items() if k not in ("first_report", "changed")}
    return out
