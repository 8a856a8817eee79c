"""Policy versions in the database and their compiled forms in this process.

The live version is one row (policy_state); every worker reads it once per transaction and compiles
a version it has not seen from the stored text, so a publish is live in every worker for each
transaction that starts after the publish commits (no cache, no delay).
A bad policy never reaches the table: it is compiled before it is stored.

Effective dates (policy_activations): the version in force on a day D is the last activation (by
effective_from, then id) not cancelled whose effective_from <= D; before the first effective date, the
version in force on that first day (nothing older is recorded). The same state-row read carries
`timeline_seq`, which every change of the timeline bumps: a worker reloads its in-memory timeline only
when it moved, so picking the version for an as_of costs no extra query.
"""
from __future__ import annotations

import bisect
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
from .tables import Customer, Invoice, PolicyActivation, PolicyState, PolicyVersion

log = logging.getLogger("creditctl.policy")
KEEP_COMPILED = 8
NAME_MAX = 128
# session.info key: (root transaction, active version). A request asks for the active policy several
# times; it reads the row once per transaction and every later ask in that transaction agrees with it.
_ACTIVE = "creditctl.active_version"
_DIRTY = "creditctl.timeline_dirty"           # session.info: this transaction changed the timeline
_ACTIVE_VERSION = select(PolicyState.active_version).where(PolicyState.id == 1)     # built once
_STATE = select(PolicyState.active_version, PolicyState.timeline_seq).where(PolicyState.id == 1)
_TIMELINE = (select(PolicyActivation.effective_from, PolicyActivation.id, PolicyActivation.version)
             .where(PolicyActivation.cancelled_at.is_(None))
             .order_by(PolicyActivation.effective_from, PolicyActivation.id))
_ANY_INVOICE_CURRENCY = select(Invoice.currency).limit(1)
_ANY_CUSTOMER = select(Customer.id).limit(1)


def _tampered(version: str, hashes_to: str | None) -> NoReturn:
    log.warning("ALERT policy version %s: its stored text hashes to %s; refused", version,
                hashes_to or "nothing (it does not compile)")
    raise DomainError("E_POLICY_TAMPERED", f"the stored text of policy version '{version}' does not match "
                                           "its version hash (it was edited in the database); not loaded")


class PolicyRegistry:
    def __init__(self, clock=None):
        self._compiled: OrderedDict = OrderedDict()
        self._checked: dict[str, set[str]] = {}      # version → stored texts seen to hash to it (stored_text)
        self._lock = threading.Lock()
        self._timeline: tuple[int, list, list] | None = None       # (seq, [(effective_from, id)], [version])
        # what "today" is for the version in force (the Context sets its clock here)
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))

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

    def active(self, session, as_of: dt.date | None = None):
        """The version in force on `as_of` (default: today), compiled."""
        return self.get(session, self.version_on(session, as_of or self.clock().date()))

    def active_version(self, session) -> str:
        return self.version_on(session, self.clock().date())

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
    def known_state(session, active_version: str, timeline_seq: int) -> None:
        """The policy state row as the caller read it in this transaction (ledger.read_check), so `active`
        reads it no more in this transaction."""
        session.info[_ACTIVE] = (session.get_transaction(), active_version, timeline_seq)

    @staticmethod
    def _state(session) -> tuple[str, int]:
        memo = session.info.get(_ACTIVE)
        if memo is not None and memo[0] is session.get_transaction():
            return memo[1], memo[2]
        row = session.execute(_STATE).first()
        if row is None:
            raise DomainError("E_NO_POLICY", "no policy is active")
        session.info[_ACTIVE] = (session.get_transaction(), row[0], row[1])
        return row[0], row[1]

    def timeline(self, session) -> tuple[list, list]:
        """([(effective_from, id)], [version]) of the activations not cancelled, in order; reloaded only
        when the state row's timeline_seq moved (or this session changed the timeline)."""
        _, seq = self._state(session)
        with self._lock:
            cached = self._timeline
        if cached is not None and cached[0] == seq and not session.info.get(_DIRTY):
            return cached[1], cached[2]
        rows = session.execute(_TIMELINE).all()
        keys, versions = [(r[0], r[1]) for r in rows], [r[2] for r in rows]
        if not session.info.get(_DIRTY):           # uncommitted changes are never shared with other sessions
            with self._lock:
                self._timeline = (seq, keys, versions)
        return keys, versions

    def version_on(self, session, day: dt.date) -> str:
        keys, versions = self.timeline(session)
        if not keys:
            return self._state(session)[0]         # a database from before effective dating, not migrated
        day = max(day, keys[0][0])                 # before the first effective date: as on that first day
        return versions[bisect.bisect_right(keys, (day, float("inf"))) - 1]

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
        """Compile (raises PolicyInvalid), store and activate from today. Returns (policy, changed)."""
        policy, activation = self.publish_dated(session, text, source, actor, now, from_file=from_file)
        return policy, activation is not None

    def publish_dated(self, session, text: str, source: str, actor: str, now: dt.datetime, *,
                      effective_from: dt.date | None = None, reason: str = "",
                      from_file: bool = False) -> tuple[object, PolicyActivation | None]:
        """Compile (raises PolicyInvalid), store, and put in force from `effective_from` (default: today; a
        later day schedules it). Returns (policy, the new activation, or None when nothing changed: the
        version is already in force today, or already scheduled for that day)."""
        today = now.date()
        effective_from = effective_from or today
        if effective_from < today:
            raise invalid({"effective_from": [f"must not be before today ({today.isoformat()}): decisions "
                                              "already made under the version then in force stay as made"]})
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
        if state is None and effective_from > today:
            raise invalid({"effective_from": ["the first policy version is in force from today: nothing else "
                                              "would decide until then"]})
        if session.get(PolicyVersion, policy.version) is None:
            session.add(PolicyVersion(version=policy.version, name=policy.name, text=text, source=source,
                                      created_at=now, created_by=actor))
            session.flush()
        if from_file and state is not None:
            state.file_version = policy.version
        if state is not None:
            session.info.pop(_ACTIVE, None)        # read the locked row afresh
            if effective_from == today:
                unchanged = self.version_on(session, today) == policy.version
            else:
                unchanged = session.execute(select(PolicyActivation.id).where(
                    PolicyActivation.version == policy.version, PolicyActivation.effective_from == effective_from,
                    PolicyActivation.cancelled_at.is_(None))).first() is not None
            if unchanged:
                return policy, None
        activation = PolicyActivation(version=policy.version, effective_from=effective_from, created_at=now,
                                      created_by=actor, reason=reason or "",
                                      activated_at=now if effective_from == today else None)
        session.add(activation)
        if state is None:
            state = PolicyState(id=1, active_version=policy.version, activated_at=now, activated_by=actor,
                                timeline_seq=1, file_version=policy.version if from_file else None)
            session.add(state)
        else:
            state.timeline_seq = (state.timeline_seq or 0) + 1
            if effective_from == today:
                state.active_version, state.activated_at, state.activated_by = policy.version, now, actor
        session.flush()
        self.timeline_changed(session)
        return policy, activation

    def timeline_changed(self, session) -> None:
        """This transaction changed policy_activations or the state row: read them afresh from now on."""
        session.info[_DIRTY] = True
        session.info.pop(_ACTIVE, None)

    def bring_in_force(self, session, now: dt.datetime, actor: str) -> list[PolicyActivation]:
        """Scheduled activations whose day has come: mark them activated (once: under the state row's lock)
        and make the state row name the version in force today. Returns those it marked."""
        state = session.execute(select(PolicyState).where(PolicyState.id == 1).with_for_update()).scalar_one_or_none()
        if state is None:
            return []
        due = session.execute(select(PolicyActivation).where(
            PolicyActivation.activated_at.is_(None), PolicyActivation.cancelled_at.is_(None),
            PolicyActivation.effective_from <= now.date()).order_by(PolicyActivation.effective_from,
                                                                    PolicyActivation.id)).scalars().all()
        if not due:
            return []
        for a in due:
            a.activated_at = now
        state.timeline_seq = (state.timeline_seq or 0) + 1
        session.flush()
        self.timeline_changed(session)
        version = self.version_on(session, now.date())
        if state.active_version != version:
            state.active_version, state.activated_at, state.activated_by = version, now, actor
        return list(due)

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
