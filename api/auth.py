"""API keys (stored as sha256, shown once) and what each role may do."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select

from .db import ApiKey
from .errors import ApiError

ROLES = ("sales", "backoffice", "controller", "auditor", "admin")
# permission → roles. controller can do everything sales and backoffice can, plus policies.
PERMISSIONS = {
    "customers:read": {"sales", "backoffice", "controller", "admin"},
    "customers:write": {"backoffice", "controller", "admin"},
    "events:write": {"backoffice", "controller", "admin"},
    "credit_checks:write": {"sales", "controller", "admin"},
    "evaluate": {"backoffice", "controller", "admin"},
    "decisions:read": {"sales", "auditor", "controller", "admin"},      # sales: own credit checks only
    "decisions:replay": {"auditor", "controller", "admin"},
    "audit:verify": {"auditor", "controller", "admin"},
    "policies:read": {"controller", "admin"},
    "policies:write": {"controller", "admin"},
    "actions:read": {"backoffice", "controller", "admin"},
    "actions:write": {"backoffice", "controller", "admin"},
    "sweeps:write": {"controller", "admin"},
    "sweeps:read": {"controller", "backoffice", "admin"},
    "reviews:read": {"controller", "admin"},
    "reviews:write": {"controller", "admin"},
    "reports:read": {"backoffice", "controller", "auditor", "admin"},
}


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_key(session, name: str, role: str, now: dt.datetime) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    raw = f"cc_{role}_{secrets.token_urlsafe(24)}"
    session.add(ApiKey(name=name, role=role, key_hash=hash_key(raw), created_at=now, revoked=False))
    return raw


def authenticate(session, header: str | None) -> ApiKey:
    if not header or not header.startswith("Bearer "):
        raise ApiError(401, "E_UNAUTHENTICATED", "send an API key: Authorization: Bearer <key>")
    key = session.execute(select(ApiKey).where(ApiKey.key_hash == hash_key(header[7:].strip()))).scalar_one_or_none()
    if key is None or key.revoked:
        raise ApiError(401, "E_UNAUTHENTICATED", "unknown or revoked API key")
    return key


def require(key: ApiKey, permission: str) -> None:
    if key.role not in PERMISSIONS[permission]:
        raise ApiError(403, "E_FORBIDDEN", f"role '{key.role}' may not {permission.replace(':', ' ')}")
