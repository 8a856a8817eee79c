"""Policy versions as the API shows them: the active one, one by version, the list with the activation
timeline (effective dates), validate, publish (now or from a later day), cancel a scheduled version."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from engine.compiler import compile_policy
from engine.errors import PolicyInvalid
from engine.yamlsource import read_text_file

from ..errors import DomainError, invalid, not_found
from ..store.tables import PolicyActivation, PolicyState, PolicyVersion
from . import approvals
from .deliveries import stuck

TIMELINE = "policy:timeline"  # the trail chain of every activation, scheduling and cancellation


def _view(row: PolicyVersion, state: PolicyState | None, with_text=True) -> dict:
    out = {
        "version": row.version,
        "name": row.name,
        "source": row.source,
        "created_at": row.created_at.isoformat() + "Z",
        "created_by": row.created_by,
        "active": bool(state and state.active_version == row.version),
    }
    if with_text:
        out["text"] = row.text
    return out


def active(ctx) -> dict:
    bring_in_force(ctx)
    with ctx.read_tx() as s:
        state = s.get(PolicyState, 1)
        row = s.get(PolicyVersion, state.active_version)
        ctx.registry.stored_text(row)  # E_POLICY_TAMPERED: an edited text is never shown as the version
        out = _view(row, state)
        out.update(activated_at=state.activated_at.isoformat() + "Z", activated_by=state.activated_by)
        return out


VERSION_PREFIX_MIN = 8


def get_version(ctx, version: str) -> dict:
    """One version by its full hash or by a unique prefix of at least 8 characters (the tools print 12)."""
    with ctx.read_tx() as s:
        row = s.get(PolicyVersion, version)
        if row is None and VERSION_PREFIX_MIN <= len(version) < 64 and all(ch in "0123456789abcdef" for ch in version):
            found = (
                s.execute(
                    select(PolicyVersion)
                    .where(PolicyVersion.version.like(version + "%"))
                    .order_by(PolicyVersion.version)
                    .limit(2)
                )
                .scalars()
                .all()
            )
            if len(found) > 1:
                raise DomainError(
                    "E_VERSION_AMBIGUOUS",
                    f"more than one policy version starts with '{version}': give more characters of it",
                    {"version": ["ambiguous prefix"]},
                )
            row = found[0] if found else None
        if row is None:
            if len(version) < VERSION_PREFIX_MIN:
                raise invalid({"version": [f"a version or a prefix of at least {VERSION_PREFIX_MIN} characters"]})
            raise not_found("policy version", version)
        ctx.registry.stored_text(row)
        out = _view(row, s.get(PolicyState, 1))
        today = ctx.today()
        in_force = _in_force_id(ctx, s, today)
        out["activations"] = [
            _activation_view(a, in_force, today)
            for a in s.execute(
                select(PolicyActivation)
                .where(PolicyActivation.version == row.version)
                .order_by(PolicyActivation.effective_from, PolicyActivation.id)
            ).scalars()
        ]
        return out


def validate(ctx, text: str, source: str) -> dict:
    policy = compile_policy(text, source)  # PolicyInvalid: every error, with its position
    try:
        with ctx.read_tx() as s:
            ctx.registry.check_ledger_currency(s, policy)  # E_POLICY_CURRENCY: publish would refuse it
    finally:
        policy.dispose()
    return {"valid": True, "version": policy.version, "rules": len(policy.rules)}


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() + "Z" if t else None


def _activation_view(a: PolicyActivation, in_force_id: int | None, today: dt.date) -> dict:
    status = (
        "cancelled"
        if a.cancelled_at
        else "in_force"
        if a.id == in_force_id
        else "scheduled"
        if a.effective_from > today
        else "superseded"
    )
    return {
        "id": a.id,
        "version": a.version,
        "effective_from": a.effective_from.isoformat(),
        "status": status,
        "created_at": _iso(a.created_at),
        "created_by": a.created_by,
        "reason": a.reason,
        "activated_at": _iso(a.activated_at),
        "decision_id": a.decision_id,
        "cancelled_at": _iso(a.cancelled_at),
        "cancelled_by": a.cancelled_by,
        "cancel_reason": a.cancel_reason,
    }


def _in_force_id(ctx, s, day: dt.date) -> int | None:
    keys, _ = ctx.registry.timeline(s)
    if not keys:
        return None
    import bisect

    return keys[bisect.bisect_right(keys, (max(day, keys[0][0]), float("inf"))) - 1][1]


def _record(ctx, s, kind: str, outcome: str, actor: str, request_id: str, a: PolicyActivation, body: dict):
    """An activation, a scheduling or a cancellation: a record in the timeline's chain; its id on the row."""
    rec = approvals.append(
        ctx,
        s,
        TIMELINE,
        kind,
        outcome,
        actor,
        request_id,
        a.version,
        {"activation_id": a.id, "version": a.version, "effective_from": a.effective_from.isoformat(), **body},
    )
    if a.decision_id is None:
        a.decision_id = rec.id
    return rec


def _publish_dated(
    ctx, s, text, source, actor, request_id, effective_from=None, reason="", from_file=False, extra: dict | None = None
):
    policy, a = ctx.registry.publish_dated(
        s, text, source, actor, ctx.clock(), effective_from=effective_from, reason=reason, from_file=from_file
    )
    # a policy file's load is on the activation row (actor `file:<path>`); the trail records what people do
    if a is not None and not from_file:
        scheduled = a.activated_at is None
        _record(
            ctx,
            s,
            "policy_schedule" if scheduled else "policy_activate",
            "scheduled" if scheduled else "in_force",
            actor,
            request_id,
            a,
            {"reason": a.reason, "source": source, **(extra or {})},
        )
    return policy, a


def publish(
    ctx,
    text: str,
    source: str,
    actor: str,
    key=None,
    request_id: str = "-",
    effective_from: dt.date | None = None,
    reason: str | None = None,
) -> tuple[dict, bool]:
    """Store and put in force from `effective_from` (default today; a later day schedules it); with the active
    policy's `authority.four_eyes_publish` (and a caller's key) a new version is a proposal instead (answer
    `pending: true`) that another person approves (four_eyes.py)."""
    bring_in_force(ctx)
    today = ctx.today()
    if effective_from is not None and effective_from < today:
        raise invalid(
            {
                "effective_from": [
                    f"must not be before today ({today.isoformat()}): decisions already "
                    "made under the version then in force stay as made"
                ]
            }
        )
    reason = (reason or "").strip() or f"publish {source}"
    with ctx.tx() as s:
        if key is not None and ctx.registry.active(s).authority.four_eyes_publish:
            candidate = compile_policy(text, source)  # PolicyInvalid: refused before anything is stored
            version, name = candidate.version, candidate.name
            candidate.dispose()
            if version != ctx.registry.active(s).version or (effective_from or today) != today:
                payload = {
                    "text": text,
                    "source": source,
                    "version": version,
                    "name": name,
                    "reason": reason,
                    "effective_from": (effective_from or today).isoformat(),
                }
                out = approvals.request(
                    ctx,
                    s,
                    "policy_publish",
                    f"policy:{version}",
                    payload,
                    key,
                    request_id,
                    why="four_eyes",
                    record_kind="policy_propose",
                    policy_version=version,
                )
                return {
                    "version": version,
                    "name": name,
                    "changed": False,
                    "active": False,
                    "pending": True,
                    "effective_from": payload["effective_from"],
                    **out,
                }, False
        policy, a = _publish_dated(ctx, s, text, source, actor, request_id, effective_from, reason)
        eff = a.effective_from if a is not None else (effective_from or today)
        return {
            "version": policy.version,
            "name": policy.name,
            "changed": a is not None,
            "active": eff <= today,
            "effective_from": eff.isoformat(),
            "scheduled": eff > today,
            "activation_id": a.id if a is not None else None,
        }, a is not None


def decide_proposal(ctx, s, a, key, reason: str, request_id: str, approve: bool) -> dict:
    """A second person approves (stores and puts in force from the proposed day, or today when that day has
    passed meanwhile) or rejects a proposed version; the caller locked `a`."""
    p = a.payload
    body = {
        "approval_id": a.id,
        "version": p["version"],
        "proposed_by": a.requested_by,
        "proposed_person": a.requested_person,
        "person": approvals.person_of(key),
        "reason": reason,
    }
    if approve:
        eff = max(dt.date.fromisoformat(p.get("effective_from") or ctx.today().isoformat()), ctx.today())
        policy, act = _publish_dated(
            ctx,
            s,
            p["text"],
            p["source"],
            key.name,
            request_id,
            eff,
            p.get("reason") or "",
            extra={"approval_id": a.id, "proposed_by": a.requested_by},
        )
        changed = act is not None
        rec = approvals.append(
            ctx,
            s,
            a.subject,
            "policy_approve",
            "approved",
            key.name,
            request_id,
            policy.version,
            {**body, "changed": changed, "effective_from": eff.isoformat()},
        )
        approvals.close(ctx, a, "approved", key, reason, rec.id)
        return {
            "version": policy.version,
            "changed": changed,
            "active": eff <= ctx.today(),
            "effective_from": eff.isoformat(),
            "decision_id": rec.id,
        }
    rec = approvals.append(ctx, s, a.subject, "policy_reject", "rejected", key.name, request_id, p["version"], body)
    approvals.close(ctx, a, "rejected", key, reason, rec.id)
    return {"version": p["version"], "changed": False, "active": False, "decision_id": rec.id}


def bring_in_force(ctx, actor: str = "scheduler:policy-activation", request_id: str = "-") -> list[dict]:
    """Scheduled versions whose day has come: each is recorded in force once (the scheduler's daily job, or
    lazily by the first read or publish of policies after that day). Evaluations do not wait for it: they pick
    the version in force on their as_of from the timeline itself."""
    today = ctx.today()
    with ctx.read_tx() as s:
        due = s.execute(
            select(PolicyActivation.id)
            .where(
                PolicyActivation.activated_at.is_(None),
                PolicyActivation.cancelled_at.is_(None),
                PolicyActivation.effective_from <= today,
            )
            .limit(1)
        ).first()
    if due is None:
        return []
    with ctx.tx() as s:
        done = ctx.registry.bring_in_force(s, ctx.clock(), actor)
        in_force = _in_force_id(ctx, s, today)
        for a in done:
            _record(
                ctx,
                s,
                "policy_in_force",
                "in_force" if a.id == in_force else "superseded",
                actor,
                request_id,
                a,
                {"reason": a.reason, "scheduled_by": a.created_by, "scheduled_at": a.created_at.isoformat() + "Z"},
            )
        return [_activation_view(a, in_force, today) for a in done]


def list_policies(ctx) -> dict:
    """Every stored version (without its text), the activation timeline (oldest first) with each entry's
    status, the version in force today and the scheduled ones."""
    bring_in_force(ctx)
    today = ctx.today()
    with ctx.read_tx() as s:
        state = s.get(PolicyState, 1)
        in_force = _in_force_id(ctx, s, today)
        acts = (
            s.execute(select(PolicyActivation).order_by(PolicyActivation.effective_from, PolicyActivation.id))
            .scalars()
            .all()
        )
        timeline = [_activation_view(a, in_force, today) for a in acts]
        versions = [
            _view(row, state, with_text=False)
            for row in s.execute(
                select(PolicyVersion).order_by(PolicyVersion.created_at, PolicyVersion.version)
            ).scalars()
        ]
        for v in versions:
            v["activations"] = [t["id"] for t in timeline if t["version"] == v["version"]]
        return {
            "today": today.isoformat(),
            "in_force": ctx.registry.version_on(s, today) if state else None,
            "versions": versions,
            "activations": timeline,
            "scheduled": [t for t in timeline if t["status"] == "scheduled"],
        }


def cancel_scheduled(ctx, activation_id: int, reason: str, actor: str, request_id: str = "-") -> dict:
    """Cancel a scheduled version before its day; one in force (or past) is history and stays."""
    reason = (reason or "").strip()
    if not reason:
        raise invalid({"reason": ["a reason is required"]})
    today = ctx.today()
    with ctx.tx() as s:
        s.execute(select(PolicyState).where(PolicyState.id == 1).with_for_update()).scalar_one_or_none()
        a = s.get(PolicyActivation, activation_id)
        if a is None:
            raise not_found("policy activation", str(activation_id))
        if a.cancelled_at is not None:
            raise DomainError(
                "E_ACTIVATION_CLOSED",
                f"activation {a.id} was already cancelled ({a.cancelled_at.isoformat()}Z by {a.cancelled_by})",
            )
        if a.effective_from <= today or a.activated_at is not None:
            raise DomainError(
                "E_ACTIVATION_CLOSED",
                f"activation {a.id} took effect on "
                f"{a.effective_from.isoformat()}: only a scheduled version is cancelled; publish "
                "another version to replace it",
            )
        a.cancelled_at, a.cancelled_by, a.cancel_reason = ctx.clock(), actor, reason
        state = s.get(PolicyState, 1)
        state.timeline_seq = (state.timeline_seq or 0) + 1
        s.flush()
        ctx.registry.timeline_changed(s)
        rec = _record(
            ctx, s, "policy_cancel", "cancelled", actor, request_id, a, {"reason": reason, "scheduled_by": a.created_by}
        )
        out = _activation_view(a, _in_force_id(ctx, s, today), today)
        out["cancel_decision_id"] = rec.id
        return out


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
        policy, a = _publish_dated(
            ctx, s, text, path, f"file:{path}", "-", reason=f"policy file {path}", from_file=True
        )
        changed = a is not None
        log.info("policy %s from %s is active", policy.version[:12], path)
        return policy.version, changed


def file_errors(path: str, exc: Exception) -> list[dict]:
    """Why a policy file was refused, as {code, message, file, line, column} (line 0: no position)."""
    if isinstance(exc, PolicyInvalid):
        return [
            {"code": e.code, "message": e.message, "file": e.file, "line": e.line, "column": e.column}
            for e in exc.errors
        ]
    if isinstance(exc, DomainError):
        return [
            {
                "code": exc.code,
                "message": exc.message,
                "file": path,
                "line": getattr(exc, "line", 0),
                "column": getattr(exc, "column", 0),
            }
        ]
    return [
        {"code": "E_FILE", "message": getattr(exc, "strerror", None) or str(exc), "file": path, "line": 0, "column": 0}
    ]


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
            "policy file %s refused (%d error(s)%s); still serving the stored active version %s",
            path,
            len(errors),
            "" if first else ", logged above",
            serving[:12],
        )
        first_error = errors[0]
        return {
            "valid": False,
            "file": path,
            "at": at,
            "code": first_error["code"],
            "line": first_error["line"],
            "column": first_error["column"],
            "message": first_error["message"],
            "errors": errors,
            "serving_version": serving,
            "first_report": first,
        }
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
