"""The ledger in the database ↔ the engine's customer case (engine/facts.py input shape)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from engine.money import minor_str

from .db import CreditNote, Customer, Dispute, DunningState, InstalmentPlan, Invoice, Payment, Promise, Reservation


def customer_dict(c: Customer) -> dict:
    return {"id": c.id, "name": c.name, "type": c.type, "industry": c.industry, "region": c.region,
            "size": c.size, "since": c.since.isoformat(), "credit_score": c.credit_score,
            "external_rating": c.external_rating, "collector": c.collector,
            "last_reviewed_on": c.last_reviewed_on.isoformat() if c.last_reviewed_on else None,
            "arrears_reason": c.arrears_reason, "deal_type": c.deal_type, "tags": list(c.tags or []),
            "approved_limit": None if c.approved_limit_minor is None else minor_str(c.approved_limit_minor, 2),
            "approved_terms_days": c.approved_terms_days}


def load_case(session, customer: Customer, exponent: int, as_of: dt.date) -> dict:
    """Everything the engine needs about one customer, as plain JSON-able data."""
    cid = customer.id

    def rows(model, order):
        return session.execute(select(model).where(model.customer_id == cid).order_by(*order)).scalars().all()

    def money(v):
        return minor_str(v, exponent)

    invoices = rows(Invoice, (Invoice.due_on, Invoice.id))
    case = {
        "customer": customer_dict(customer),
        "invoices": [{"id": i.id, "amount": money(i.amount_minor), "currency": i.currency,
                      "issued_on": i.issued_on.isoformat(), "due_on": i.due_on.isoformat()} for i in invoices],
        "payments": [{"id": p.id, "invoice_id": p.invoice_id, "amount": money(p.amount_minor),
                      "paid_on": p.paid_on.isoformat()} for p in rows(Payment, (Payment.paid_on, Payment.id))],
        "credit_notes": [{"id": n.id, "invoice_id": n.invoice_id, "amount": money(n.amount_minor),
                          "issued_on": n.issued_on.isoformat()} for n in rows(CreditNote, (CreditNote.issued_on,
                                                                                           CreditNote.id))],
        "promises": [{"id": p.id, "invoice_id": p.invoice_id, "amount": money(p.amount_minor),
                      "made_on": p.made_on.isoformat(), "promised_on": p.promised_on.isoformat()}
                     for p in rows(Promise, (Promise.made_on, Promise.id))],
        "disputes": [{"id": d.id, "invoice_id": d.invoice_id, "opened_on": d.opened_on.isoformat(),
                      "resolved_on": d.resolved_on.isoformat() if d.resolved_on else None, "reason": d.reason}
                     for d in rows(Dispute, (Dispute.opened_on, Dispute.id))],
        "instalment_plans": [{"id": p.id, "invoice_ids": list(p.invoice_ids), "agreed_on": p.agreed_on.isoformat(),
                              "instalments": [{"due_on": i["due_on"], "amount": money(i["amount_minor"])}
                                              for i in p.instalments]}
                             for p in rows(InstalmentPlan, (InstalmentPlan.agreed_on, InstalmentPlan.id))],
        "reservations": [{"order_id": r.order_id, "amount": money(r.amount_minor)}
                         for r in rows(Reservation, (Reservation.order_id,))
                         if r.status == "held" and r.expires_on >= as_of],
    }
    state = session.get(DunningState, cid)
    if state is not None:
        stage, entered = (state.stage, state.entered_on) if state.as_of < as_of else (state.prev_stage,
                                                                                     state.prev_entered_on)
        case["dunning"] = {"stage": stage, "entered_on": entered.isoformat() if entered else None}
    if customer.last_as_of is not None and customer.last_as_of < as_of:
        case["previous"] = {"as_of": customer.last_as_of.isoformat(), "aging_bucket": customer.last_bucket,
                            "credit_score": customer.last_score}
    return case
