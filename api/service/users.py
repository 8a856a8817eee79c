"""Console users: created by `creditctl users create`, signed in with a password (argon2id).

A user acts with its role's permissions (auth.PERMISSIONS, the same table as API keys) and its
name is the actor of everything it changes.
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from ..errors import DomainError, conflict, invalid
from ..store.tables import User
from .auth import AUTHORITY_LEVEL, ROLES, Principal

LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
MIN_PASSWORD = 10
_NAME = re.compile(r"[\w.@-]{1,64}")  # letters of any script (王经理), digits, . _ @ -
_hasher = PasswordHasher()
# verified against when the name is unknown, so a wrong name costs as long as a wrong password
_DUMMY = _hasher.hash("not a password of anyone")


def create_user(
    ctx, name: str, role: str, password: str, locale: str = DEFAULT_LOCALE, authority: str | None = None
) -> dict:
    """authority: the user's level in the policy's authority matrix (rules/authority.py), which a
    referral's release needs when its amount over the limit is beyond the lowest level's."""
    errors = {}
    if not _NAME.fullmatch(name or ""):
        errors["name"] = ["1 to 64 letters, digits or . _ @ -"]
    if role not in ROLES:
        errors["role"] = [f"one of {', '.join(ROLES)}"]
    if len(password or "") < MIN_PASSWORD:
        errors["password"] = [f"at least {MIN_PASSWORD} characters"]
    if locale not in LOCALES:
        errors["locale"] = [f"one of {', '.join(LOCALES)}"]
    if authority is not None and not AUTHORITY_LEVEL.fullmatch(authority):
        errors["authority"] = ["a level of the policy's authority matrix: lower-case letters, digits and _"]
    if errors:
        raise invalid(errors)
    with ctx.tx() as s:
        if s.execute(select(User.id).where(User.name == name)).first() is not None:
            raise conflict(f"user '{name}' already exists", "E_USER_EXISTS")
        s.add(
            User(
                name=name,
                role=role,
                password_hash=_hasher.hash(password),
                locale=locale,
                created_at=ctx.clock(),
                disabled=False,
                authority=authority,
            )
        )
    return {"name": name, "role": role, "locale": locale, "authority": authority}


def sign_in(ctx, name: str, password: str) -> tuple[Principal, str]:
    """(principal, locale) for a right name and password; E_UNAUTHENTICATED otherwise (which one is wrong is not said)."""
    with ctx.read_tx() as s:
        row = s.execute(
            select(User.name, User.role, User.password_hash, User.locale, User.disabled, User.authority).where(
                User.name == (name or "")
            )
        ).one_or_none()
    try:
        _hasher.verify(row.password_hash if row else _DUMMY, password or "")
        ok = row is not None and not row.disabled
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        raise DomainError("E_UNAUTHENTICATED", "unknown user or wrong password")
    return Principal(row.name, row.role, row.name, row.authority), row.locale


def current(ctx, name: str) -> tuple[Principal, str] | None:
    """The user's principal and locale as stored now (a disabled or deleted user is signed out)."""
    with ctx.read_tx() as s:
        row = s.execute(
            select(User.name, User.role, User.locale, User.disabled, User.authority).where(User.name == name)
        ).one_or_none()
    if row is None or row.disabled:
        return None
    return Principal(row.name, row.role, row.name, row.authority), row.locale


def set_locale(ctx, name: str, locale: str) -> None:
    if locale not in LOCALES:
        raise invalid({"locale": [f"one of {', '.join(LOCALES)}"]})
    with ctx.tx() as s:
        user = s.execute(select(User).where(User.name == name)).scalar_one_or_none()
        if user is not None:
            user.locale = locale


def key_principal(ctx, name: str) -> Principal | None:
    """An API key's principal by its name while it is not revoked (a console session signed in
    with a key ends at the key's revocation)."""
    from ..store.tables import ApiKey

    with ctx.read_tx() as s:
        row = s.execute(
            select(ApiKey.name, ApiKey.role, ApiKey.revoked, ApiKey.person, ApiKey.authority).where(ApiKey.name == name)
        ).one_or_none()
    return None if row is None or row.revoked else Principal(row.name, row.role, row.person, row.authority)
