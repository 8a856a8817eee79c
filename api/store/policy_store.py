"""Policy versions in the database and their compiled forms in this process.

The live version is one row (policy_state); every worker reads it once per transaction and compiles
a version it has not seen from the stored text, so a publish is live in every worker for each
transaction that starts after the publish commits (no cache, no delay).
A bad policy never reaches the table: it is compiled before it is stored.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import OrderedDict
from typing import NoReturn

from sqlalchemy import select

from engine.compiler import compile_policy
from engine.errors import PolicyInvalid
from engine.matcher import Disposed

from ..errors import DomainError, invalid
from .tables import Customer, Invoice, PolicyState, PolicyVersion

log = logging.getLogger("creditctl.policy")
KEEP_COMPILED = 8
NAME_MAX = 128
# session.info key: (root transaction, active version). A request asks for the active policy several
# times; it reads the row once per transaction and every later ask in that transaction agrees with it.
_ACTIVE = "creditctl.active_version"
_ACTIVE_VERSION = select(PolicyState.active_version).where(PolicyState.id == 1)     # built once
_ANY_INVOICE_CURRENCY = select(Invoice.currency).limit(1)
_ANY_CUSTOMER = select(Customer.id).limit(1)


def _tampered(version: str, hashes_to: str | None) -> NoReturn:
    log.warning("ALERT policy version %s: its stored text hashes to %s; refused", version,
                hashes_to or "nothing (it does not compile)")
    raise DomainError("E_POLICY_TAMPERED", f"the stored text of policy version '{version}' does not match "
                                           "its version hash (it was edited in the database); not loaded")


class PolicyRegistry:
    def __init__(self):
        self._compiled: OrderedDict = OrderedDict()
        self._checked: dict[str, set[str]] = {}      # version → stored texts seen to hash to it (stored_text)
        self._lock = threading.Lock()

    def _compiled_for(self, version: str, text: str, source: str, from_database: bool = False):
        with self._lock:
            policy = self._compiled.get(version)
            if policy is not None and not any(m.disposed for m in policy.matchers.values()):
                self._compiled.move_to_end(version)
                return policy
        try:
            # a stored version was accepted by the language of its day: rules without `when` were allowed
            # before `when: always` was required, and it must still compile to replay its decisions
            policy = compile_policy(text, source, legacy_when=from_database)
        except PolicyInvalid:
            if not from_database:
                raise
            policy = None            # stored text that no longer compiles was edited after it was published
        if from_database and (policy is None or policy.version != version):
            # a version is the hash of its text: text stored under a version it does not hash to was
            # edited in the database, and is never run under a version that was not published
            if policy is not None:
                policy.dispose()
            _tampered(version, policy.version if policy else None)
        with self._lock:
            self._compiled[version] = policy
            while len(self._compiled) > KEEP_COMPILED:
                _, old = self._compiled.popitem(last=False)
                old.dispose()          # a caller still using it gets Disposed and retries
        return policy

    def active(self, session):
        return self.get(session, self.active_version(session))

    def stored_text(self, row: PolicyVersion) -> str:
        """The stored text of a version as the API shows it, checked like a version loaded to run: text
        that does not hash to its version is refused (E_POLICY_TAMPERED, an ALERT), never shown as that
        version. The version compiled in this process may come from the file, so its text is no proof."""
        with self._lock:
            policy = self._compiled.get(row.version)
            if (policy is not None and policy.text == row.text) or row.text in self._checked.get(row.version, ()):
                return row.text
        try:
            compiled = compile_policy(row.text, row.source, legacy_when=True)
        except PolicyInvalid:
            _tampered(row.version, None)
        try:
            if compiled.version != row.version:
                _tampered(row.version, compiled.version)
        finally:
            compiled.dispose()
        with self._lock:
            self._checked.setdefault(row.version, set()).add(row.text)
        return row.text

    @staticmethod
    def active_version(session) -> str:
        memo = session.info.get(_ACTIVE)
        if memo is not None and memo[0] is session.get_transaction():
            return memo[1]
        version = session.execute(_ACTIVE_VERSION).scalar()
        if version is None:
            raise DomainError("E_NO_POLICY", "no policy is active")
        session.info[_ACTIVE] = (session.get_transaction(), version)
        return version

    def get(self, session, version: str):
        with self._lock:
            policy = self._compiled.get(version)
        if policy is not None and not any(m.disposed for m in policy.matchers.values()):
            return policy
        row = session.get(PolicyVersion, version)
        if row is None:
            raise DomainError("E_NOT_FOUND", f"policy version '{version}' not found")
        return self._compiled_for(row.version, row.text, row.source, from_database=True)

    def publish(self, session, text: str, source: str, actor: str, now: dt.datetime,
                from_file: bool = False) -> tuple[object, bool]:
        """Compile (raises PolicyInvalid), store and activate. Returns (policy, changed)."""
        policy = compile_policy(text, source)
        if len(policy.name) > NAME_MAX:            # policy_versions.name; PostgreSQL refuses longer text
            policy.dispose()
            raise invalid({"policy.name": [f"at most {NAME_MAX} characters to be stored"]})
        try:
            self.check_ledger_currency(session, policy)
        except DomainError:
            policy.dispose()
            raise
        with self._lock:
            self._compiled.setdefault(policy.version, policy)
        # lock the live-version row first: concurrent publishes of one new text serialise here, and the
        # second then finds the version stored (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises)
        state = session.execute(select(PolicyState).where(PolicyState.id == 1).with_for_update()).scalar_one_or_none()
        if session.get(PolicyVersion, policy.version) is None:
            session.add(PolicyVersion(version=policy.version, name=policy.name, text=text, source=source,
                                      created_at=now, created_by=actor))
            session.flush()
        changed = state is None or state.active_version != policy.version
        if state is None:
            state = PolicyState(id=1, active_version=policy.version, activated_at=now, activated_by=actor)
            session.add(state)
        elif changed:
            state.active_version, state.activated_at, state.activated_by = policy.version, now, actor
        if from_file:
            state.file_version = policy.version
        session.info[_ACTIVE] = (session.get_transaction(), policy.version)
        return policy, changed

    def ledger_currency(self, session) -> str | None:
        """The currency the stored book is kept in (its amounts are integer minor units of it): its invoices',
        or, with none yet, the active policy's once customers exist (their approved limits are in its
        units). None for an empty book: any currency may be the first."""
        currency = session.execute(_ANY_INVOICE_CURRENCY).scalar()
        if currency is not None:
            return currency
        version = session.execute(_ACTIVE_VERSION).scalar()
        if version is None or session.execute(_ANY_CUSTOMER).scalar() is None:
            return None
        return self.get(session, version).currency

    def check_ledger_currency(self, session, policy) -> None:
        """A policy in another currency than the ledger's would make every credit check and report fail."""
        ledger = self.ledger_currency(session)
        if ledger is not None and policy.currency != ledger:
            message = (f"the policy's currency {policy.currency} is not the ledger's currency {ledger}: the stored "
                       f"invoices, limits and reservations are amounts in {ledger}; keep `currency: {ledger}`")
            exc = DomainError("E_POLICY_CURRENCY", message, {"policy.currency": [message]})
            exc.line = next((n for n, line in enumerate(policy.text.splitlines(), 1)
                             if line.strip().startswith("currency:")), 0)
            exc.column = 0
            raise exc

    def file_version(self, session) -> str | None:
        state = session.get(PolicyState, 1)
        return state.file_version if state else None


def with_retry(fn, attempts: int = 3):
    """Run fn(); a policy version disposed under us (evicted or reloaded) is compiled again."""
    for i in range(attempts):
        try:
            return fn()
        except Disposed:
            if i == attempts - 1:
                raise
