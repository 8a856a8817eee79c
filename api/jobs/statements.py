"""Monthly statements of account (对账单) through the outbox: `creditctl statements`, and the scheduler's
monthly-statements job when delivery is configured.

For a month, every customer whose balance at the month's end is not zero (invoices − credit notes − payments
to that day, the statement's closing balance) gets one queued delivery (statement_period 'YYYY-MM', unique per
customer and month, so a second run queues nothing) and one trail record (kind statement, outcome queued,
actor, reason) in the same transaction. The outbox worker renders the statement when it sends it
(api/jobs/outbox.py): from the ledger for that month, in the contact's language, with its PDF. docs/delivery.md.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from engine.decision import canonical_json
from rules.money import minor_str

from ..delivery import statement_key
from ..documents.context import Contact as DocumentContact
from ..documents.context import DocumentSettings, build_statement_context
from ..documents.render import DocumentRenderer
from ..errors import DomainError
from ..reports import book as reports
from ..store import trail
from ..store.database import insert_ignoring_duplicates
from ..store.tables import CreditNote, Customer, Delivery, Invoice, Payment

TRAIL_KIND = "statement"
CHANNEL = "email"  # a statement is a document with its PDF: mailed (or posted to the webhook)


def previous_month(as_of: dt.date) -> str:
    """The month a run on `as_of` states: the calendar month before it ('YYYY-MM'), as the CSV job does."""
    return (as_of.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")


def period_bounds(period: str) -> tuple[dt.date, dt.date]:
    """'2026-11' → (2026-11-01, 2026-11-30); anything else is E_INPUT_INVALID naming the field."""
    try:
        start = dt.datetime.strptime(period, "%Y-%m").date()
    except (TypeError, ValueError):
        msg = "a month as YYYY-MM, e.g. 2026-11"
        raise DomainError("E_INPUT_INVALID", f"period: {msg}", {"period": [msg]}) from None
    end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    return start, end


def open_balances(s, end: dt.date) -> dict[str, int]:
    """{customer: closing balance at the end of `end`} of every customer whose balance is not zero."""

    def sums(model, column):
        return dict(
            s.execute(
                select(model.customer_id, func.sum(model.amount_minor)).where(column <= end).group_by(model.customer_id)
            ).all()
        )

    invoices, notes, payments = (
        sums(Invoice, Invoice.issued_on),
        sums(CreditNote, CreditNote.issued_on),
        sums(Payment, Payment.paid_on),
    )
    balances = {}
    for cid in set(invoices) | set(notes) | set(payments):
        balance = int(invoices.get(cid, 0) or 0) - int(notes.get(cid, 0) or 0) - int(payments.get(cid, 0) or 0)
        if balance:
            balances[cid] = balance
    return balances


def queue_statements(service, as_of: dt.date, actor: str, reason: str | None = None, period: str | None = None) -> dict:
    """Queue the statement of `period` (default: the month before `as_of`) for every customer with an open
    balance at its end: counts and the period. A month not over by `as_of` is refused."""
    period = period or previous_month(as_of)
    start, end = period_bounds(period)
    if end >= as_of:
        msg = f"{period} has not ended by {as_of.isoformat()} (a statement states a closed month)"
        raise DomainError("E_INPUT_INVALID", f"period: {msg}", {"period": [msg]})
    reason = reason or f"monthly statement of account for {period}"
    with service.read_tx() as s:
        balances = open_balances(s, end)
        known = set(s.execute(select(Customer.id)).scalars()) & set(balances)  # no IN list of the whole book
        exponent = service.registry.active(s).exponent
    queued = already = 0
    for cid in sorted(known):
        now = service.clock()
        key = statement_key(cid, period)
        with service.tx() as s:
            # the unique (customer, month) makes a second run, or a concurrent one, insert nothing
            delivery_id = (
                s.connection()
                .execute(
                    insert_ignoring_duplicates(
                        s,
                        Delivery.__table__,
                        {
                            "action_id": None,
                            "customer_id": cid,
                            "statement_period": period,
                            "channel": CHANNEL,
                            "idempotency_key": key,
                            "status": "queued",
                            "attempts": 0,
                            "attempt_base": 0,
                            "requeues": 0,
                            "created_at": now,
                            "updated_at": now,
                        },
                    ).returning(Delivery.__table__.c.id)
                )
                .scalar_one_or_none()
            )
            if delivery_id is None:
                already += 1
                continue
            closing = minor_str(balances[cid], exponent)
            rec = trail.append(
                s,
                subject=cid,
                kind=TRAIL_KIND,
                actor=actor,
                request_id=key,
                as_of=end,
                facts=canonical_json(
                    {"period": period, "from": start.isoformat(), "to": end.isoformat(), "closing_balance": closing}
                ),
                policy_version=service.registry.active(s).version,
                result=canonical_json(
                    {
                        "delivery_id": delivery_id,
                        "status": "queued",
                        "channel": CHANNEL,
                        "period": period,
                        "closing_balance": closing,
                        "reason": reason,
                        "idempotency_key": key,
                    }
                ),
                outcome="queued",
                created_at=now,
            )
            s.execute(
                Delivery.__table__.update().where(Delivery.__table__.c.id == delivery_id).values(decision_id=rec.id)
            )
            queued += 1
    return {
        "period": period,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "customers": len(known),
        "queued": queued,
        "already_queued": already,
    }


def render_statement(
    service,
    customer_id: str,
    period: str,
    documents,
    templates: str,
    locale: str | None,
    contact: DocumentContact | None = None,
    *,
    pdf: bool = True,
):
    """The customer's statement of `period` as a RenderedDocument (raises DocumentError), dated the day
    after the month's end, so a re-render (a retry, a requeue) says the same."""
    start, end = period_bounds(period)
    st = reports.statement(service, customer_id, start, end)
    settings = DocumentSettings.from_mapping(documents)
    context = build_statement_context(st, settings=settings, as_of=end + dt.timedelta(days=1), contact=contact)
    return DocumentRenderer(templates, settings.default_locale).render(context, locale, pdf=pdf)
