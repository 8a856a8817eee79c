"""Audit use cases: write a signed checkpoint of the trail, verify the trail against the checkpoints.

Where the key and the log are comes from AuditSettings (the adapters build it from their config
and the environment); the database never holds the private key. See docs/audit.md.
"""

from __future__ import annotations

import logging
import os
from typing import NamedTuple

from ..errors import DomainError
from ..store import checkpoints, trail

log = logging.getLogger("creditctl.audit")
DEFAULT_KEY = os.path.join("var", "audit-key")
DEFAULT_CHECKPOINTS = os.path.join("var", "checkpoints.jsonl")


class AuditSettings(NamedTuple):
    key: str | None = None  # private key: PEM text or a file path (signs checkpoints)
    public_key: str | None = None  # public key (or the private one) that verifies them
    checkpoints: str | None = None  # the JSON-lines log; None: no checkpoints

    @classmethod
    def from_env(cls, key=None, public_key=None, checkpoints_path=None, environ=os.environ) -> AuditSettings:
        """Explicit values first, then CREDITCTL_AUDIT_KEY / CREDITCTL_AUDIT_PUBLIC_KEY / CREDITCTL_CHECKPOINTS,
        then var/audit-key (when that file exists) and var/checkpoints.jsonl."""
        key = key or environ.get("CREDITCTL_AUDIT_KEY") or (DEFAULT_KEY if os.path.exists(DEFAULT_KEY) else None)
        public_key = public_key or environ.get("CREDITCTL_AUDIT_PUBLIC_KEY")
        return cls(key, public_key, checkpoints_path or environ.get("CREDITCTL_CHECKPOINTS") or DEFAULT_CHECKPOINTS)


def _settings(ctx) -> AuditSettings:
    return getattr(ctx, "audit", None) or AuditSettings()


def checkpoint(ctx) -> dict:
    """Sign and append one checkpoint of every chain as it is now."""
    cfg = _settings(ctx)
    if not cfg.key:
        raise DomainError(
            "E_AUDIT_KEY",
            "no audit key: set CREDITCTL_AUDIT_KEY or create one with `creditctl audit keygen --out FILE`",
        )
    if not cfg.checkpoints:
        raise DomainError("E_AUDIT_KEY", "no checkpoint log configured (CREDITCTL_CHECKPOINTS)")
    private = checkpoints.load_private_key(cfg.key)
    now = ctx.clock()
    with ctx.read_tx() as s:
        line = checkpoints.write_checkpoint(s, cfg.checkpoints, private, now)
    return {
        "file": cfg.checkpoints,
        "n": line["n"],
        "time": line["time"],
        "root": line["root"],
        "subjects": line["subjects"],
        "records": line["records"],
        "heads_changed": len(line["heads"]),
        "key_id": line["key_id"],
    }


def checkpoint_if_configured(ctx) -> dict | None:
    """After a sweep: a checkpoint when a key is configured; never fails the caller's work."""
    if not _settings(ctx).key:
        return None
    try:
        return checkpoint(ctx)
    except (DomainError, OSError) as exc:
        log.warning("audit checkpoint not written: %s", exc)
        return None


def verify(ctx) -> dict:
    """The chains (api/store/trail.verify) and, when a checkpoint log is configured, the log's links and
    signatures and that the records still hold what every checkpoint signed. `ok` covers both."""
    cfg = _settings(ctx)
    with ctx.read_tx() as s:
        result = trail.verify(s)
        if not cfg.checkpoints:
            result["checkpoints"] = {"configured": False}
            return result
        public_spec = cfg.public_key or cfg.key
        public = checkpoints.load_public_key(public_spec) if public_spec else None
        lines = checkpoints.read_log(cfg.checkpoints)
        cps, findings = checkpoints.verify_log(lines, public)
        findings += checkpoints.verify_against(s, cps)
    last = cps[-1] if cps else None
    result["checkpoints"] = {
        "configured": True,
        "file": cfg.checkpoints,
        "count": len(cps),
        "signatures": "checked" if public else "unchecked (no public key)",
        "last": None
        if last is None
        else {
            "n": last["n"],
            "time": last["time"].isoformat(),
            "records": last["records"],
            "subjects": last["subjects"],
        },
        "findings": findings,
    }
    result["findings"] = sorted(
        result["findings"] + findings, key=lambda f: (f["subject"] or "", f["seq"] or 0, f["kind"])
    )
    result["ok"] = not result["findings"]
    return result
