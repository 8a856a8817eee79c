"""API keys (stored as sha256, shown once) and what each role may do.

Every request looks its key up in the database (one indexed read), so a key revoked or rotated
(api/service/keys.py) is refused by every worker from the very next request after the change commits.
A process may opt into caching verified keys (KEY_CACHE_SECONDS > 0 in the app's configuration,
KeyCache): a revoked key then keeps working in a worker that cached it for up to that many seconds.
Unknown and revoked keys are never cached. A rotated key's old secret (previous_hash) keeps working
until its grace ends (previous_until, on the service's clock).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import threading
import time
from typing import NamedTuple

from sqlalchemy import select

from ..errors import DomainError
from ..store.tables import ApiKey

ROLES = ("sales", "backoffice", "controller", "auditor", "admin")
# permission → roles. controller can do everything sales and backoffice can, plus policies.
PERMISSIONS = {
    "customers:read": {"sales", "backoffice", "controller", "admin"},
    "customers:write": {"backoffice", "controller", "admin"},
    "events:write": {"backoffice", "controller", "admin"},
    "credit_checks:write": {"sales", "controller", "admin"},
    "evaluate": {"backoffice", "controller", "admin"},
    "decisions:read": {"sales", "auditor", "controller", "admin"},  # sales: own credit checks only
    "decisions:replay": {"auditor", "controller", "admin"},
    "audit:verify": {"auditor", "controller", "admin"},
    "policies:read": {"controller", "auditor", "admin"},  # auditors read every version and its timeline
    "policies:write": {"controller", "admin"},
    "actions:read": {"backoffice", "controller", "admin"},
    "actions:write": {"backoffice", "controller", "admin"},
    "outbox:write": {"backoffice", "controller", "admin"},  # requeue a dead letter
    "sweeps:write": {"controller", "admin"},
    "sweeps:read": {"controller", "backoffice", "admin"},
    "imports:write": {"backoffice", "controller", "admin"},
    # contacts are personal data: auditors read them masked (a hash per field)
    "contacts:read": {"sales", "backoffice", "controller", "auditor", "admin"},
    "contacts:write": {"backoffice", "controller", "admin"},
    "imports:read": {"backoffice", "controller", "auditor", "admin"},
    "reviews:read": {"controller", "admin"},
    "reviews:write": {"controller", "admin"},
    "reports:read": {"backoffice", "controller", "auditor", "admin"},
    "credit_checks:read": {"sales", "controller", "auditor", "admin"},  # sales: orders it checked only
    "referrals:read": {"controller", "auditor", "admin"},
    "referrals:write": {"controller", "admin"},
    "holds:write": {"controller", "admin"},
    # API keys (api/service/keys.py): auditors read the list (never a secret), only admins change keys
    "keys:read": {"auditor", "admin"},
    "keys:write": {"admin"},
    # a limit granted in place of the policy's (api/service/grants.py); four-eyes approvals (approvals.py)
    "grants:write": {"controller", "admin"},
    "approvals:read": {"controller", "auditor", "admin"},
    "approvals:write": {"controller", "admin"},
    "groups:write": {"controller", "admin"},
    # legal cases (api/service/legal_cases.py): controllers move them, auditors read them (诉讼 evidence)
    "legal:read": {"controller", "auditor", "admin"},
    "legal:write": {"controller", "admin"},  # customer groups and their limits (api/service/groups.py)
}


AUTHORITY_LEVEL = re.compile(r"[a-z][a-z0-9_]{0,31}")  # rules/authority.py LEVEL_NAME


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_key(
    session, name: str, role: str, now: dt.datetime, *, person: str | None = None, authority: str | None = None
) -> str:
    """person: who holds the key (default its name); authority: a level of the policy's authority matrix."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if authority is not None and not AUTHORITY_LEVEL.fullmatch(authority):
        raise ValueError(f"authority level {authority!r}: lower-case letters, digits and _ (e.g. team_lead)")
    raw = f"cc_{role}_{secrets.token_urlsafe(24)}"
    session.add(
        ApiKey(
            name=name,
            role=role,
            key_hash=hash_key(raw),
            created_at=now,
            revoked=False,
            person=person or name,
            authority=authority,
        )
    )
    return raw


class Principal(NamedTuple):
    """Who a verified key belongs to: what the request handlers need, detached from any session."""

    name: str
    role: str
    person: str | None = None
    authority: str | None = None  # a level of the policy's authority matrix (rules/authority.py)


KEY_CACHE_SECONDS = 0.0  # opt-in: the longest a revoked key keeps working in a worker that cached it
KEY_CACHE_MAX = 4096  # distinct keys per worker; beyond that the cache starts over


class KeyCache:
    """key hash → (Principal, verified at) for one process, valid `ttl` seconds (0 disables it)."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS, clock=time.monotonic):
        self.ttl, self.clock = ttl, clock
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> Principal | None:
        hit = self._entries.get(key_hash)
        if hit is None or self.clock() - hit[1] >= self.ttl:
            return None
        return hit[0]

    def put(self, key_hash: str, principal: Principal, verified_at: float) -> None:
        """verified_at: the clock() reading taken *before* the lookup, so the bound holds from the read."""
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= KEY_CACHE_MAX:
                self._entries.clear()
            self._entries[key_hash] = (principal, verified_at)


def bearer_hash(header: str | None) -> str:
    if not header or not header.startswith("Bearer "):
        raise DomainError("E_UNAUTHENTICATED", "send an API key: Authorization: Bearer <key>")
    return hash_key(header[7:].strip())


_KEY_COLUMNS = (
    ApiKey.name,
    ApiKey.role,
    ApiKey.revoked,
    ApiKey.person,
    ApiKey.authority,
    ApiKey.key_hash,
    ApiKey.previous_until,
)


def authenticate(cache: KeyCache, read_tx, header: str | None, now: dt.datetime | None = None) -> Principal:
    """The key's principal, from the cache or (missing, expired) from the database via read_tx().
    now: the service's clock, for a rotated key's grace (default: UTC now)."""
    key_hash = bearer_hash(header)
    principal = cache.get(key_hash)
    if principal is not None:
        return principal
    started = cache.clock()
    with read_tx() as s:
        row = s.execute(select(*_KEY_COLUMNS).where(ApiKey.key_hash == key_hash)).one_or_none()
        if row is None:  # the secret a rotation replaced, during its grace
            row = s.execute(select(*_KEY_COLUMNS).where(ApiKey.previous_hash == key_hash)).one_or_none()
            now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            if row is not None and (row.previous_until is None or row.previous_until <= now):
                row = None
    if row is None or row.revoked:
        raise DomainError("E_UNAUTHENTICATED", "unknown or revoked API key")
    principal = Principal(row.name, row.role, row.person, row.authority)
    if row.key_hash == key_hash:  # an old secret in its grace is never cached: its end is a clock time
        cache.put(key_hash, principal, started)
    return principal


def require(key: Principal, permission: str) -> None:
    if key.role not in PERMISSIONS[permission]:
        raise DomainError("E_FORBIDDEN", f"role '{key.role}' may not {permission.replace(':', ' ')}")
