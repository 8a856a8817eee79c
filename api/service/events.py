"""Ledger events: each changes the ledger or the credit file and is decided about at once.

Idempotent by event_id: the same id with the same body answers the first response again; with
another body it is a conflict. The change, its decision and its trail record commit together.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from marshmallow import RAISE, Schema, ValidationError, fields, validate
from sqlalchemy.exc import IntegrityError

from engine.facts import (
    CreditNoteSchema,
    DisputeSchema,
    InstalmentPlanSchema,
    InvoiceSchema,
    PaymentSchema,
    PromiseSchema,
)
from rules.money import to_minor

from ..errors import conflict, invalid, marshmallow_errors
from ..store.ledger import customer_dict
from ..store.tables import (
    CreditNote,
    Customer,
    Dispute,
    InstalmentPlan,
    Invoice,
    Payment,
    ProcessedEvent,
    Promise,
    Reservation,
)
from .customers import decision_changes, guard_decision_fields, load_customer, record_decision_changes, set_fields
from .decide import decide, lock_customer
from .validation import DATE_RANGE_MESSAGE, canonical, check_categories, dates_out_of_range


class DisputeResolvedSchema(Schema):
    class Meta:
        unknown = RAISE

    dispute_id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    resolved_on = fields.Date(required=True)


class ArrearsReasonSchema(Schema):
    class Meta:
        unknown = RAISE

    reason = fields.String(required=True, metadata={"description": "one of the policy's arrears_reason categories"})


class InvoiceEventSchema(InvoiceSchema):
    """invoice_issued's data: the invoice, and the order it invoices (its reservation is then consumed)."""

    order_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=128))


# every event type's `data` (OpenAPI declares each; unknown fields are refused in every one)
EVENT_DATA_SCHEMAS = {
    "invoice_issued": InvoiceEventSchema,
    "payment_received": PaymentSchema,
    "credit_note": CreditNoteSchema,
    "promise_to_pay": PromiseSchema,
    "dispute_opened": DisputeSchema,
    "dispute_resolved": DisputeResolvedSchema,
    "instalment_plan_agreed": InstalmentPlanSchema,
    "arrears_reason_recorded": ArrearsReasonSchema,
    "customer_updated": None,
}  # a credit file


def post_event(ctx, raw: dict, parsed: dict, actor, request_id, role: str | None = None) -> tuple[int, str]:
    """Returns (status, response JSON). Same event_id + same body → the first response."""
    body_hash = hashlib.sha256(canonical(raw).encode()).hexdigest()
    body = dict(parsed, data=dict(raw.get("data") or {}))
    event_id = body["event_id"]
    with ctx.tx() as s:
        seen = s.get(ProcessedEvent, event_id)
        if seen is not None:
            return _replayed(seen, body_hash)
    try:
        with ctx.tx() as s:
            # the customer's row lock serialises its events (SQLite: BEGIN IMMEDIATE already does), so
            # look again only once it is held: a concurrent twin has committed by then
            c = lock_customer(s, body["customer_id"])
            seen = s.get(ProcessedEvent, event_id)
            if seen is not None:
                return _replayed(seen, body_hash)
            policy = ctx.registry.active(s)
            as_of = body.get("as_of") or ctx.today()
            _apply_event(ctx, s, c, policy, body, as_of, role=role, actor=actor, request_id=request_id)
            s.flush()
            rec, decision = decide(ctx, s, c, as_of, kind="event", actor=actor, request_id=request_id)
            response = canonical(
                {
                    "event_id": event_id,
                    "type": body["type"],
                    "customer_id": c.id,
                    "decision_id": rec.id,
                    "decision": decision.data,
                }
            )
            s.add(
                ProcessedEvent(
                    event_id=event_id,
                    body_hash=body_hash,
                    type=body["type"],
                    customer_id=c.id,
                    response=response,
                    created_at=ctx.clock(),
                )
            )
        return 201, response
    except IntegrityError:
        with ctx.tx() as s:  # a concurrent twin won the race
            seen = s.get(ProcessedEvent, event_id)
            if seen is not None:
                return _replayed(seen, body_hash)
        # another event, for another customer, wrote a record with the same id at the same moment
        raise conflict(
            "a record this event creates was created at the same moment by another event (its id is taken)"
        ) from None


def _replayed(seen: ProcessedEvent, body_hash: str) -> tuple[int, str]:
    if seen.body_hash != body_hash:
        raise conflict(f"event '{seen.event_id}' was already processed with a different body", "E_EVENT_CONFLICT")
    return 200, seen.response


def _load(schema, data, policy, money_keys=("amount",)):
    try:
        item = schema().load(data)
    except ValidationError as exc:
        raise invalid(marshmallow_errors(exc.messages, "data")) from None
    errors = {f: [DATE_RANGE_MESSAGE] for f in dates_out_of_range(item, "data")}
    if item.get("currency") not in (None, policy.currency):
        errors["data.currency"] = [f"'{item['currency']}' is not the policy's currency {policy.currency}"]
    for key in money_keys:
        if key in item:
            try:
                item[key + "_minor"] = to_minor(item[key], policy.exponent)
            except ValueError as exc:
                errors[f"data.{key}"] = [str(exc)]
    if errors:
        raise invalid(errors)
    return item


def _happened(item: dict, keys: tuple[str, ...], as_of: dt.date) -> None:
    """Dates of things that have happened (issued, made, opened, agreed) are at most the event's as_of, as
    a payment's is: a ledger dated in the future is a typo the decision would silently ignore until then."""
    errors = {
        f"data.{k}": [f"{k} is at most the event's as_of ({as_of.isoformat()}; today unless given)"]
        for k in keys
        if item.get(k) is not None and item[k] > as_of
    }
    if errors:
        raise invalid(errors)


def _new_id(s, model, ident, what):
    if s.get(model, ident) is not None:
        raise conflict(f"{what} '{ident}' already exists")


def _own_invoice(s, c, invoice_id, field="data.invoice_id"):
    inv = s.get(Invoice, invoice_id)
    if inv is None or inv.customer_id != c.id:
        raise invalid({field: [f"no invoice '{invoice_id}' for customer '{c.id}'"]})
    return inv


def _apply_event(
    ctx,
    s,
    c: Customer,
    policy,
    body: dict,
    as_of: dt.date,
    *,
    role: str | None = None,
    actor: str = "-",
    request_id: str = "-",
) -> None:
    kind, data, eid = body["type"], body.get("data") or {}, body["event_id"]
    if kind == "invoice_issued":
        order_id = data.pop("order_id", None)
        if order_id is not None and not (isinstance(order_id, str) and 1 <= len(order_id) <= 128):
            raise invalid({"data.order_id": ["an order id is a string of 1 to 128 characters"]})
        inv = _load(InvoiceSchema, data, policy)
        _happened(inv, ("issued_on",), as_of)
        if inv["amount_minor"] <= 0:
            raise invalid({"data.amount": ["an invoice amount must be positive"]})
        if s.get(Invoice, inv["id"]) is not None:
            raise conflict(f"invoice '{inv['id']}' already exists")
        s.add(
            Invoice(
                id=inv["id"],
                customer_id=c.id,
                amount_minor=inv["amount_minor"],
                currency=inv["currency"],
                issued_on=inv["issued_on"],
                due_on=inv["due_on"],
                order_id=order_id,
            )
        )
        if order_id:
            r = s.get(Reservation, order_id)
            if r is not None and r.customer_id == c.id and r.status == "held":
                r.status = "invoiced"
    elif kind == "payment_received":
        p = _load(PaymentSchema, data, policy)
        if p["amount_minor"] <= 0:
            raise invalid({"data.amount": ["a payment amount must be positive"]})
        if p["paid_on"] > as_of:  # money not yet received is a promise; the decision would not count it
            raise invalid(
                {
                    "data.paid_on": [
                        f"a payment is dated at most the event's as_of ({as_of.isoformat()}; today unless given)"
                    ]
                }
            )
        if p["invoice_id"] is not None:
            _own_invoice(s, c, p["invoice_id"])
        pid = p["id"] or eid
        if s.get(Payment, pid) is not None:
            raise conflict(f"payment '{pid}' already exists")
        s.add(
            Payment(
                id=pid,
                customer_id=c.id,
                invoice_id=p["invoice_id"],
                amount_minor=p["amount_minor"],
                paid_on=p["paid_on"],
            )
        )
    elif kind == "credit_note":
        n = _load(CreditNoteSchema, data, policy)
        _happened(n, ("issued_on",), as_of)
        _own_invoice(s, c, n["invoice_id"])
        _new_id(s, CreditNote, n["id"] or eid, "credit note")
        s.add(
            CreditNote(
                id=n["id"] or eid,
                customer_id=c.id,
                invoice_id=n["invoice_id"],
                amount_minor=n["amount_minor"],
                issued_on=n["issued_on"],
            )
        )
    elif kind == "promise_to_pay":
        p = _load(PromiseSchema, data, policy)
        _happened(p, ("made_on",), as_of)
        if p["invoice_id"] is not None:
            _own_invoice(s, c, p["invoice_id"])
        if p["promised_on"] < p["made_on"]:
            raise invalid({"data.promised_on": ["promised_on is before made_on"]})
        _new_id(s, Promise, p["id"] or eid, "promise")
        s.add(
            Promise(
                id=p["id"] or eid,
                customer_id=c.id,
                invoice_id=p["invoice_id"],
                amount_minor=p["amount_minor"],
                made_on=p["made_on"],
                promised_on=p["promised_on"],
            )
        )
    elif kind == "dispute_opened":
        d = _load(DisputeSchema, data, policy, ())
        _happened(d, ("opened_on",), as_of)
        _own_invoice(s, c, d["invoice_id"])
        _new_id(s, Dispute, d["id"] or eid, "dispute")
        s.add(
            Dispute(
                id=d["id"] or eid,
                customer_id=c.id,
                invoice_id=d["invoice_id"],
                opened_on=d["opened_on"],
                resolved_on=None,
                reason=d["reason"],
            )
        )
    elif kind == "dispute_resolved":
        r = _load(DisputeResolvedSchema, data, policy, ())
        _happened(r, ("resolved_on",), as_of)
        d = s.get(Dispute, r["dispute_id"])
        if d is None or d.customer_id != c.id:
            raise invalid({"data.dispute_id": [f"no dispute '{r['dispute_id']}' for customer '{c.id}'"]})
        d.resolved_on = r["resolved_on"]
    elif kind == "instalment_plan_agreed":
        p = _load(InstalmentPlanSchema, data, policy, ())
        _happened(p, ("agreed_on",), as_of)
        for i, ref in enumerate(p["invoice_ids"]):
            _own_invoice(s, c, ref, f"data.invoice_ids[{i}]")
        instalments = []
        for i, inst in enumerate(p["instalments"]):
            try:
                instalments.append(
                    {"due_on": inst["due_on"].isoformat(), "amount_minor": to_minor(inst["amount"], policy.exponent)}
                )
            except ValueError as exc:
                raise invalid({f"data.instalments[{i}].amount": [str(exc)]}) from None
        _new_id(s, InstalmentPlan, p["id"], "instalment plan")
        s.add(
            InstalmentPlan(
                id=p["id"],
                customer_id=c.id,
                agreed_on=p["agreed_on"],
                invoice_ids=p["invoice_ids"],
                instalments=instalments,
            )
        )
    elif kind == "arrears_reason_recorded":
        reason = _load(ArrearsReasonSchema, data, policy, ())["reason"]
        if reason not in policy.content["categories"]["arrears_reason"]:
            raise invalid({"data.reason": [f"one of {', '.join(policy.content['categories']['arrears_reason'])}"]})
        c.arrears_reason = reason
    elif kind == "customer_updated":
        loaded = load_customer(
            {**customer_dict(c), **data, "id": c.id}, "data.", ctx.today() if "since" in data else None
        )
        check_categories(policy, loaded, "data.")
        changes = decision_changes(c, loaded, policy, "data.")
        guard_decision_fields(role, False, changes, "data.")  # separation of duties, as PUT /customers
        set_fields(c, loaded, policy, "data.")
        c.updated_at = ctx.clock()
        record_decision_changes(
            ctx,
            s,
            c,
            changes,
            False,
            policy,
            actor=actor,
            request_id=request_id,
            reason=f"customer_updated event {body['event_id']}",
        )
