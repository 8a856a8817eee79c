"""Reading the whole book in batches, in one consistent snapshot: what reports and jobs share."""

from __future__ import annotations

import contextlib
import datetime as dt

from sqlalchemy import select, text

from engine.facts import build_facts

from ..errors import DomainError
from .ledger import load_cases
from .tables import Customer

BATCH = 500


@contextlib.contextmanager
def snapshot(service):
    """One transaction; on PostgreSQL a read-only REPEATABLE READ snapshot, so every batch of a report
    sees the same book. (SQLite: the service's BEGIN IMMEDIATE already gives one consistent view.)"""
    with service.tx() as s:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        yield s


def typed_cases(s, customers, policy, as_of: dt.date) -> dict[str, dict]:
    """For a batch of customers, with one query per ledger table: the typed case (ledger.load_cases)
    that build_facts takes. A report refuses a ledger in another currency than the active policy's."""
    cases = {}
    for cid, case in load_cases(s, customers, policy.exponent, as_of).items():
        for inv in case.typed["invoices"]:
            if inv["currency"] != policy.currency:
                raise DomainError(
                    "E_LEDGER_POLICY_MISMATCH",
                    f"invoice '{inv['id']}' of customer '{cid}' is in "
                    f"{inv['currency']}, not the active policy's currency {policy.currency}",
                )
        cases[cid] = case.typed
    return cases


def iter_facts(s, policy, as_of: dt.date, batch: int | None = None):
    """(customer, facts) for every customer, by id, one batch of customers and their ledger at a time."""
    result = s.execute(select(Customer).order_by(Customer.id).execution_options(yield_per=batch or BATCH))
    for part in result.scalars().partitions():
        cases = typed_cases(s, part, policy, as_of)
        for c in part:
            yield c, build_facts(cases[c.id], policy, as_of)
        for c in part:  # the batch's customers leave the session: memory holds one batch
            s.expunge(c)
