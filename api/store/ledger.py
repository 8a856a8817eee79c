"""The ledger in the database ↔ the engine's customer case (engine/facts.py input shape).

`load_cases` reads a batch of customers' ledgers with one query per table and gives each case in
two forms built from the same rows: `plain`, the JSON-able input that engine.evaluate() validates
and the trail stores as the decision's facts (and replays), and `typed`, what engine.facts.load_case
would make of it (dates, Decimals, defaults), which engine.evaluate_loaded() takes without running
marshmallow again: the rows were validated when they were written. tests/api/test_api_reports.py
checks that the two forms agree.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import and_, bindparam, or_, select

from engine.facts import CaseSchema
from rules.money import from_minor, minor_str

from .tables import (
    Action,
    CreditNote,
    Customer,
    Dispute,
    DunningState,
    InstalmentPlan,
    Invoice,
    LegalCase,
    LimitGrant,
    Payment,
    Promise,
    Reservation,
)


# reservation statuses that count in exposure: an approved order's hold, and the provisional hold of a
# referred order while its referral is open (api/service/referrals.py)
HOLDING = ("held", "provisional")


class LedgerCase(NamedTuple):
    plain: dict
    typed: dict


def customer_dict(c: Customer) -> dict:
    return {"id": c.id, "name": c.name, "type": c.type, "industry": c.industry, "region": c.region,
            "size": c.size, "since": c.since.isoformat(), "credit_score": c.credit_score,
            "external_rating": c.external_rating, "collector": c.collector,
            "last_reviewed_on": c.last_reviewed_on.isoformat() if c.last_reviewed_on else None,
            "arrears_reason": c.arrears_reason, "deal_type": c.deal_type, "tags": list(c.tags or []),
            "approved_limit": None if c.approved_limit_minor is None else minor_str(c.approved_limit_minor, 2),
            "approved_terms_days": c.approved_terms_days}


_CASE_DEFAULTS: dict | None = None


def _case_defaults() -> dict:
    """The top-level defaults engine.facts.CaseSchema fills in (previous, dunning, …), once."""
    global _CASE_DEFAULTS
    if _CASE_DEFAULTS is None:
        loaded = CaseSchema().load({"customer": {"id": "x", "type": "x", "industry": "x", "region": "x",
                                                 "size": "x", "since": "2000-01-01"}})
        _CASE_DEFAULTS = {k: v for k, v in loaded.items() if k != "customer"}
    return _CASE_DEFAULTS


def _typed_customer(c: Customer, plain: dict) -> dict:
    customer = dict(plain, since=c.since, last_reviewed_on=c.last_reviewed_on, tags=list(plain["tags"]))
    if c.approved_limit_minor is not None:
        customer["approved_limit"] = from_minor(c.approved_limit_minor, 2)
    return customer


def _by_customer(model, columns, order):
    """SELECT customer_id, columns … WHERE customer_id IN :ids ORDER BY customer_id, order: built once,
    since building a statement costs more than running it for one customer (~3 ms for the 8 reads)."""
    return (select(model.customer_id, *columns).where(model.customer_id.in_(bindparam("ids", expanding=True)))
            .order_by(model.customer_id, *order))


_INVOICES = _by_customer(Invoice, (Invoice.id, Invoice.amount_minor, Invoice.currency, Invoice.issued_on,
                                   Invoice.due_on), (Invoice.due_on, Invoice.id))
_PAYMENTS = _by_customer(Payment, (Payment.id, Payment.invoice_id, Payment.amount_minor, Payment.paid_on),
                         (Payment.paid_on, Payment.id))
_CREDIT_NOTES = _by_customer(CreditNote, (CreditNote.id, CreditNote.invoice_id, CreditNote.amount_minor,
                                          CreditNote.issued_on), (CreditNote.issued_on, CreditNote.id))
_PROMISES = _by_customer(Promise, (Promise.id, Promise.invoice_id, Promise.amount_minor, Promise.made_on,
                                   Promise.promised_on), (Promise.made_on, Promise.id))
_DISPUTES = _by_customer(Dispute, (Dispute.id, Dispute.invoice_id, Dispute.opened_on, Dispute.resolved_on,
                                   Dispute.reason), (Dispute.opened_on, Dispute.id))
_PLANS = _by_customer(InstalmentPlan, (InstalmentPlan.id, InstalmentPlan.invoice_ids, InstalmentPlan.agreed_on,
                                       InstalmentPlan.instalments), (InstalmentPlan.agreed_on, InstalmentPlan.id))
_RESERVATIONS = _by_customer(Reservation, (Reservation.order_id, Reservation.amount_minor, Reservation.status,
                                           Reservation.expires_on), (Reservation.order_id,))
_GRANTS = _by_customer(LimitGrant, (LimitGrant.limit_minor, LimitGrant.until, LimitGrant.granted_by,
                                     LimitGrant.person), ())
_LEGAL = _by_customer(LegalCase, (LegalCase.id, LegalCase.invoice_ids, LegalCase.opened_on, LegalCase.status,
                                   LegalCase.closed_on), (LegalCase.id,))
_STATES = select(DunningState.__table__).where(DunningState.customer_id.in_(bindparam("ids", expanding=True)))
# the stage actions already created for a customer (not cancelled, due before the evaluation day), so `once`
# and `until_done` actions are not created again: with a dunning state, those of its current stage episode
# (either of the states a day may steps from); without one, the few that decisions before the first sweep made
_TAKEN_ACTIONS = (
    select(Action.customer_id, Action.type, Action.stage, Action.due_on, Action.status)
    .outerjoin(DunningState, DunningState.customer_id == Action.customer_id)
    .where(Action.customer_id.in_(bindparam("ids", expanding=True)), Action.due_on < bindparam("as_of"),
           Action.stage > 0, Action.status != "cancelled",
           or_(DunningState.customer_id.is_(None),
               and_(Action.stage == DunningState.stage, Action.due_on >= DunningState.entered_on),
               and_(Action.stage == DunningState.prev_stage, Action.due_on >= DunningState.prev_entered_on)))
    .order_by(Action.customer_id, Action.due_on, Action.id))


def load_cases(s, customers, exponent: int, as_of: dt.date, *, states: dict | None = None) -> dict[str, LedgerCase]:
    """Each customer's case as of `as_of`, by id. `states` (customer id → DunningState) spares the
    query when the caller has already read them."""
    ids = [c.id for c in customers]
    defaults = _case_defaults()
    plain: dict[str, dict] = {}
    typed: dict[str, dict] = {}
    for c in customers:
        customer = customer_dict(c)
        plain[c.id] = {"customer": customer, "invoices": [], "payments": [], "credit_notes": [],
                       "promises": [], "disputes": [], "instalment_plans": [], "reservations": []}
        typed[c.id] = {**{k: (list(v) if isinstance(v, list) else v) for k, v in defaults.items()},
                       "customer": _typed_customer(c, customer)}

    conn = s.connection()          # Core: plain column rows need none of the ORM's per-statement work

    def rows(statement):
        return conn.execute(statement, {"ids": ids}).all() if ids else ()   # one fetchall

    def add(cid, key, plain_item, typed_item):
        plain[cid][key].append(plain_item)
        typed[cid][key].append(typed_item)

    def money(minor):
        return minor_str(minor, exponent)

    def amount(text, minor):      # the Decimal of the canonical string: exact, cheaper than Decimal arithmetic
        return {"amount": Decimal(text), "amount_minor": minor}

    for cid, iid, minor, cur, issued, due in rows(_INVOICES):
        text = money(minor)
        add(cid, "invoices",
            {"id": iid, "amount": text, "currency": cur, "issued_on": issued.isoformat(), "due_on": due.isoformat()},
            {"id": iid, **amount(text, minor), "currency": cur, "issued_on": issued, "due_on": due})
    for cid, pid, inv, minor, paid in rows(_PAYMENTS):
        text = money(minor)
        add(cid, "payments",
            {"id": pid, "invoice_id": inv, "amount": text, "paid_on": paid.isoformat()},
            {"id": pid, "invoice_id": inv, **amount(text, minor), "currency": None, "paid_on": paid})
    for cid, nid, inv, minor, issued in rows(_CREDIT_NOTES):
        text = money(minor)
        add(cid, "credit_notes",
            {"id": nid, "invoice_id": inv, "amount": text, "issued_on": issued.isoformat()},
            {"id": nid, "invoice_id": inv, **amount(text, minor), "currency": None, "issued_on": issued})
    for cid, pid, inv, minor, made, promised in rows(_PROMISES):
        text = money(minor)
        add(cid, "promises",
            {"id": pid, "invoice_id": inv, "amount": text, "made_on": made.isoformat(),
             "promised_on": promised.isoformat()},
            {"id": pid, "invoice_id": inv, **amount(text, minor), "made_on": made, "promised_on": promised})
    for cid, did, inv, opened, resolved, reason in rows(_DISPUTES):
        add(cid, "disputes",
            {"id": did, "invoice_id": inv, "opened_on": opened.isoformat(),
             "resolved_on": resolved.isoformat() if resolved else None, "reason": reason},
            {"id": did, "invoice_id": inv, "opened_on": opened, "resolved_on": resolved, "reason": reason})
    for cid, pid, invoice_ids, agreed, instalments in rows(_PLANS):
        add(cid, "instalment_plans",
            {"id": pid, "invoice_ids": list(invoice_ids), "agreed_on": agreed.isoformat(),
             "instalments": [{"due_on": i["due_on"], "amount": money(i["amount_minor"])} for i in instalments]},
            {"id": pid, "invoice_ids": list(invoice_ids), "agreed_on": agreed,
             "instalments": [{"due_on": dt.date.fromisoformat(i["due_on"]),
                              **amount(money(i["amount_minor"]), i["amount_minor"])} for i in instalments]})
    for cid, order_id, minor, status, expires in rows(_RESERVATIONS):
        if status in HOLDING and expires >= as_of:
            text = money(minor)
            add(cid, "reservations", {"order_id": order_id, "amount": text}, {"order_id": order_id, **amount(text, minor)})

    for cid, minor, until, granted_by, person in rows(_GRANTS):     # a controller's grant (api/service/grants.py)
        text, by = money(minor), granted_by if not person or person == granted_by else f"{person} ({granted_by})"
        plain[cid]["grant"] = {"limit": text, "until": until.isoformat() if until else None, "granted_by": by}
        typed[cid]["grant"] = {"limit": Decimal(text), "limit_minor": minor, "until": until, "granted_by": by}

    for cid, case_id, invoice_ids, opened, status, closed in rows(_LEGAL):
        if opened <= as_of:         # the key only when there is one: every other case's facts stay byte-identical
            plain[cid].setdefault("legal_cases", []).append(
                {"id": case_id, "invoice_ids": list(invoice_ids), "opened_on": opened.isoformat(), "status": status,
                 "closed_on": closed.isoformat() if closed else None})
            typed[cid]["legal_cases"].append({"id": case_id, "invoice_ids": list(invoice_ids), "opened_on": opened,
                                              "status": status, "closed_on": closed})

    if states is None:
        states = {st.customer_id: st for st in rows(_STATES)}
    taken: dict[str, list] = {cid: [] for cid in ids}
    for cid, kind, stage, due, status in (conn.execute(_TAKEN_ACTIONS, {"ids": ids, "as_of": as_of}).all()
                                          if ids else ()):
        taken[cid].append((kind, stage, due, status == "open"))
    for c in customers:
        state = states.get(c.id)
        if state is not None:
            # a second evaluation on the same day steps from that day's starting state (prev_*), not from
            # its own result, so it lands on the same stage (docs/dunning.md)
            stage, entered = (state.stage, state.entered_on) if state.as_of < as_of else (state.prev_stage,
                                                                                         state.prev_entered_on)
            plain[c.id]["dunning"] = {"stage": stage, "entered_on": entered.isoformat() if entered else None}
            typed[c.id]["dunning"] = {"stage": stage, "entered_on": entered}
        plain[c.id]["actions_taken"] = [{"type": kind, "stage": st, "due_on": due.isoformat(), "open": is_open}
                                        for kind, st, due, is_open in taken[c.id]]
        typed[c.id]["actions_taken"] = [{"type": kind, "stage": st, "due_on": due, "open": is_open}
                                        for kind, st, due, is_open in taken[c.id]]
        # the customer's last recorded decision, whatever made it (event, credit check, sweep, review), also
        # one of the same day: a "since the last evaluation" alert then fires once, on the decision that saw
        # the change, and never again on the next one (which compares with what that decision recorded)
        if c.last_as_of is not None and c.last_as_of <= as_of:
            plain[c.id]["previous"] = {"as_of": c.last_as_of.isoformat(), "aging_bucket": c.last_bucket,
                                       "credit_score": c.last_score}
            typed[c.id]["previous"] = {"as_of": c.last_as_of, "aging_bucket": c.last_bucket,
                                       "credit_score": c.last_score}
    return {cid: LedgerCase(plain[cid], typed[cid]) for cid in ids}


def load_case(session, customer: Customer, exponent: int, as_of: dt.date) -> dict:
    """Everything the engine needs about one customer, as plain JSON-able data."""
    return load_cases(session, [customer], exponent, as_of)[customer.id].plain
