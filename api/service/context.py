"""The unit of work every use case runs in: sessions, the policy registry and the clock.

Built once per process by an adapter (the Flask app, the CLI, the scheduler) and passed to the
use-case functions; nothing here reads a global.
"""

from __future__ import annotations

import contextlib
import datetime as dt

from ..store.policy_store import PolicyRegistry


class Context:
    def __init__(self, sessionmaker, registry: PolicyRegistry, clock=None, audit=None, delivery=None):
        self.sessionmaker = sessionmaker
        # api.jobs.outbox.OutboxSettings: how automated actions are sent (None: the sweep logs them as sent)
        self.delivery = delivery
        self.audit = audit  # api.service.audit.AuditSettings: the checkpoint key and log
        self.registry = registry
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
        registry.clock = self.clock  # "today" for the version in force (effective dates)

    def today(self) -> dt.date:
        return self.clock().date()

    @contextlib.contextmanager
    def tx(self):
        """A write transaction: commits when the block ends, rolls back on an exception."""
        session = self.sessionmaker()
        try:
            with session.begin():
                yield session
        finally:
            session.close()

    @contextlib.contextmanager
    def read_tx(self):
        """A transaction for reads only: on SQLite it does not take the write lock."""
        session = self.sessionmaker()
        try:
            session.connection(execution_options={"creditctl_readonly": True})
            yield session
        finally:
            session.close()  # ends the transaction; unlike rollback() it leaves loaded objects readable
