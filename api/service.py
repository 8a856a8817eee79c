"""Service functions: one transaction each; the API, the CLI and the scheduler all call these.

Every write that belongs together commits together: a ledger change, the decision that
evaluates it, its trail record and its actions — or nothing.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
from decimal import Decimal

from marshmallow import ValidationError
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from engine.errors import EngineFailure
from engine.evaluator import evaluate, evaluate_loaded
from engine.facts import (CaseSchema, CreditNoteSchema, CustomerSchema, DisputeSchema, InstalmentPlanSchema,
                          InvoiceSchema, PaymentSchema, PromiseSchema)
from engine.money import minor_str, to_minor

from . import trail
from .db import (Action, CreditNote, Customer, DecisionRecord, Dispute, InstalmentPlan, Invoice, Payment,
                 ProcessedEvent, Promise, Reservation, insert_ignoring_duplicates)
from .errors import ApiError, conflict, invalid, marshmallow_errors, not_found
from .ledger import customer_dict, load_cases
from .policies import PolicyRegistry, with_retry

RESERVATION_DAYS = 30
CUSTOMER_TEXT_LIMITS = {"name": 256, "collector": 128}      # api/db.py Customer columns
MAX_ACTION_ID = 2**31 - 1                                    # actions.id is a 32-bit integer
_DECISION_ID = re.compile(r"[0-9a-f]{1,64}")                 # trail.append: uuid4().hex
# dates the API accepts: the engine adds days and months to them, which overflows near year 1 and 9999
DATE_MIN, DATE_MAX = dt.date(1900, 1, 1), dt.date(2999, 12, 31)
DATE_RANGE_MESSAGE = f"must be between {DATE_MIN} and {DATE_MAX}"


def dates_out_of_range(value, path: str = "") -> list[str]:
    """Fields of a loaded (marshmallow) value holding a date outside DATE_MIN..DATE_MAX."""
    if isinstance(value, dt.date):
        return [] if DATE_MIN <= value <= DATE_MAX else [path or "_"]
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out += dates_out_of_range(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            out += dates_out_of_range(v, f"{path}[{i}]")
    return out


def check_dates(value, prefix: str = "") -> None:
    bad = dates_out_of_range(value, prefix)
    if bad:
        raise invalid({f: [DATE_RANGE_MESSAGE] for f in bad})


EVENT_TYPES = ("invoice_issued", "payment_received", "credit_note", "promise_to_pay", "dispute_opened",
               "dispute_resolved", "instalment_plan_agreed", "arrears_reason_recorded", "customer_updated")


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def action_rows(customer_id: str, data: dict, decision_id: str, exponent: int) -> list[dict]:
    """A decision's actions as rows of `actions`; each is created once (uq_actions_once)."""
    return [{"customer_id": customer_id, "invoice_id": a["invoice_id"], "type": a["type"], "channel": a["channel"],
             "owner": a["owner"], "stage": a["stage"], "due_on": dt.date.fromisoformat(a["due_on"]),
             "amount_minor": to_minor(a["amount"], exponent), "status": "open", "decision_id": decision_id}
            for a in data["dunning"]["actions"]]


# built once: building a statement costs more than running it for one customer
_ACTIONS = Action.__table__.c
_CLOSE_SETTLED = (update(Action.__table__)
                  .where(_ACTIONS.customer_id == bindparam("b_customer_id"), _ACTIONS.status == "open",
                         _ACTIONS.due_on <= bindparam("b_as_of"),
                         _ACTIONS.invoice_id.not_in(bindparam("b_still_open", expanding=True)))
                  .values(status="closed", outcome="invoice_settled"))


class Service:
    def __init__(self, sessionmaker, registry: PolicyRegistry, clock=None):
        self.sessionmaker = sessionmaker
        self.registry = registry
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))

    def today(self) -> dt.date:
        return self.clock().date()

    @contextlib.contextmanager
    def tx(self):
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
            session.close()      # ends the transaction; unlike rollback() it leaves loaded objects readable

    # ------------------------------------------------------------------ customers
    def _lock_customer(self, s, customer_id: str) -> Customer:
        c = s.execute(self._LOCK_CUSTOMER, {"customer_id": customer_id}).scalar_one_or_none()
        if c is None:
            raise not_found("customer", customer_id)
        return c

    def put_customer(self, customer_id: str, data: dict) -> tuple[bool, dict]:
        payload = dict(data, id=customer_id)
        try:
            loaded = CustomerSchema().load(payload)
        except ValidationError as exc:
            raise invalid(marshmallow_errors(exc.messages)) from None
        self._check_lengths(loaded, "")
        check_dates(loaded)
        with self.tx() as s:
            policy = self.registry.active(s)
            self._check_categories(policy, loaded, "")
            c = s.execute(select(Customer).where(Customer.id == customer_id).with_for_update()).scalar_one_or_none()
            created = c is None
            if created:
                c = Customer(id=customer_id)
                s.add(c)
            self._set_customer_fields(c, loaded, policy)
            c.updated_at = self.clock()
            return created, customer_dict(c)

    @staticmethod
    def _check_lengths(customer: dict, prefix: str):
        """What the database columns hold (PostgreSQL refuses longer text)."""
        errors = {f"{prefix}{key}": [f"at most {n} characters"] for key, n in CUSTOMER_TEXT_LIMITS.items()
                  if isinstance(customer.get(key), str) and len(customer[key]) > n}
        if errors:
            raise invalid(errors)

    @staticmethod
    def _set_customer_fields(c: Customer, loaded: dict, policy, prefix: str = "") -> None:
        for key in ("name", "type", "industry", "region", "size", "since", "credit_score", "external_rating",
                    "collector", "last_reviewed_on", "arrears_reason", "deal_type", "tags", "approved_terms_days"):
            setattr(c, key, loaded[key])
        try:
            c.approved_limit_minor = (None if loaded["approved_limit"] is None
                                      else to_minor(loaded["approved_limit"], policy.exponent))
        except ValueError as exc:
            raise invalid({f"{prefix}approved_limit": [str(exc)]}) from None

    @staticmethod
    def _check_categories(policy, customer: dict, prefix: str):
        from engine.facts import CATEGORY_OF
        cats = policy.content["categories"]
        errors = {}
        for key, category in CATEGORY_OF.items():
            value = customer.get(key)
            if value is not None and value not in cats[category]:
                errors[f"{prefix}{key}"] = [f"'{value}' is not a {category} of the policy "
                                            f"(one of {', '.join(cats[category])})"]
        if errors:
            raise invalid(errors)

    def get_customer(self, customer_id: str, as_of: dt.date | None = None) -> dict:
        as_of = as_of or self.today()
        with self.read_tx() as s:
            c = s.get(Customer, customer_id)
            if c is None:
                raise not_found("customer", customer_id)
            policy = self.registry.active(s)
            case = load_cases(s, [c], policy.exponent, as_of)[c.id].typed
            d = with_retry(lambda: evaluate_loaded(self.registry.active(s), case, as_of)).data
            return {**customer_dict(c), "as_of": as_of.isoformat(), "policy_version": d["policy_version"],
                    "classification": d["classification"], "score": d["score"]["value"],
                    "credit": {k: d["credit"][k] for k in ("limit", "terms_days", "exposure", "available",
                                                            "outstanding", "overdue", "reserved", "utilisation_pct")},
                    "dunning_stage": d["dunning"]["stage"], "alerts": d["alerts"]}

    # ------------------------------------------------------------------ decisions
    def _decide(self, s, customer: Customer, as_of: dt.date, *, kind, actor, request_id, order=None,
                persist_actions=True, outcome_of=None):
        """Evaluate the customer from the ledger, record the decision, persist its actions."""
        def run():
            policy = self.registry.active(s)
            # typed rows go straight to evaluate_loaded (they were validated when written); the plain
            # form is the snapshot the trail keeps, which a replay validates and evaluates in full
            case = load_cases(s, [customer], policy.exponent, as_of)[customer.id]
            return policy, case.plain, evaluate_loaded(policy, case.typed, as_of, order=order)
        try:
            policy, case, decision = with_retry(run)
        except EngineFailure as exc:
            raise ApiError(503, "E_ENGINE", f"the rules engine failed; no decision was made: {exc}") from None
        data = decision.data
        outcome = outcome_of(data) if outcome_of else decision.outcome    # hashed into the trail: decide it first
        facts = canonical({"case": case, "as_of": as_of, "order": order})
        rec = trail.append(s, subject=customer.id, kind=kind, actor=actor, request_id=request_id, as_of=as_of,
                           facts=facts, policy_version=policy.version, result=decision.json, outcome=outcome,
                           created_at=self.clock())
        if customer.last_as_of is None or as_of >= customer.last_as_of:
            customer.last_as_of = as_of
            customer.last_bucket = data["classification"]["aging_bucket"]
            customer.last_score = data["score"]["value"]
        if persist_actions:
            self._persist_actions(s, customer.id, data, rec.id, policy.exponent)
            self._close_settled_actions(s, customer.id, data, as_of)
        return rec, decision

    @staticmethod
    def _close_settled_actions(s, customer_id, data, as_of):
        """Payment in full (or a credit note) closes the open actions of that invoice."""
        still_open = [i["invoice_id"] for i in data["dunning"]["open_invoices"]]
        s.execute(_CLOSE_SETTLED, {"b_customer_id": customer_id, "b_as_of": as_of, "b_still_open": still_open})

    def _persist_actions(self, s, customer_id, data, decision_id, exponent):
        rows = action_rows(customer_id, data, decision_id, exponent)
        if rows:
            s.execute(insert_ignoring_duplicates(s, Action, rows))

    @staticmethod
    def decision_view(rec: DecisionRecord, include_facts: bool = False) -> dict:
        out = {"id": rec.id, "kind": rec.kind, "subject": rec.subject, "seq": rec.seq, "actor": rec.actor,
               "request_id": rec.request_id, "as_of": rec.as_of.isoformat(), "policy_version": rec.policy_version,
               "outcome": rec.outcome, "created_at": rec.created_at.isoformat() + "Z", "hash": rec.hash,
               "prev_hash": rec.prev_hash, "decision": json.loads(rec.result)}
        if include_facts:
            out["facts"] = json.loads(rec.facts)
        return out

    def evaluate_customer(self, customer_id, as_of, actor, request_id) -> dict:
        as_of = as_of or self.today()
        with self.tx() as s:
            c = self._lock_customer(s, customer_id)
            rec, decision = self._decide(s, c, as_of, kind="evaluate", actor=actor, request_id=request_id)
            return {"decision_id": rec.id, "decision": decision.data}

    def evaluate_stateless(self, body: dict, actor, request_id) -> dict:
        body = dict(body)
        as_of_raw = body.pop("as_of", None)
        order = body.pop("order_amount", None)
        try:
            as_of = dt.date.fromisoformat(as_of_raw) if as_of_raw else self.today()
        except (TypeError, ValueError):
            raise invalid({"as_of": [f"'{as_of_raw}' is not an ISO date"]}) from None
        check_dates(as_of, "as_of")
        try:
            check_dates(CaseSchema().load(body))
        except ValidationError:
            pass                                 # evaluate() reports every problem of the case
        with self.tx() as s:
            def run():
                policy = self.registry.active(s)
                return policy, evaluate(policy, body, as_of, order=order)
            try:
                policy, decision = with_retry(run)
            except EngineFailure as exc:
                raise ApiError(503, "E_ENGINE", f"the rules engine failed; no decision was made: {exc}") from None
            subject = f"stateless:{body['customer']['id']}"
            rec = trail.append(s, subject=subject, kind="evaluate_stateless", actor=actor, request_id=request_id,
                               as_of=as_of, facts=canonical({"case": body, "as_of": as_of, "order": order}),
                               policy_version=policy.version, result=decision.json, outcome=decision.outcome,
                               created_at=self.clock())
            return {"decision_id": rec.id, "decision": decision.data}

    # ------------------------------------------------------------------ credit checks
    # built once: a statement built per call costs more CPU than SQLite takes to run it
    _LOCK_CUSTOMER = select(Customer).where(Customer.id == bindparam("customer_id")).with_for_update()
    _RESERVATION = select(Reservation).where(Reservation.order_id == bindparam("order_id"))

    def credit_check(self, req: dict, actor, request_id) -> dict:
        try:
            return self._credit_check(req, actor, request_id)
        except IntegrityError:
            # a new order reserved for two customers at once (PostgreSQL: their locks differ); the loser sees
            # the winner's reservation only now
            with self.tx() as s:
                existing = s.get(Reservation, req["order_id"])
                if existing is not None and existing.customer_id != req["customer_id"]:
                    raise conflict(f"order '{req['order_id']}' belongs to another customer") from None
            raise

    def _credit_check(self, req: dict, actor, request_id) -> dict:
        as_of = req.get("as_of") or self.today()
        with self.tx() as s:
            c = self._lock_customer(s, req["customer_id"])
            policy = self.registry.active(s)
            if req["currency"] != policy.currency:
                raise invalid({"currency": [f"'{req['currency']}' is not the policy's currency {policy.currency}"]})
            try:
                amount_minor = to_minor(req["amount"], policy.exponent)
            except ValueError as exc:
                raise invalid({"amount": [str(exc)]}) from None
            if amount_minor <= 0:
                raise invalid({"amount": ["must be positive"]})
            existing = s.execute(self._RESERVATION, {"order_id": req["order_id"]}).scalar_one_or_none()
            if existing is not None and existing.customer_id != c.id:
                raise conflict(f"order '{req['order_id']}' belongs to another customer")
            order = {"amount": str(req["amount"]), "order_id": req["order_id"]}
            rec, decision = self._decide(s, c, as_of, kind="credit_check", actor=actor, request_id=request_id,
                                         order=order, persist_actions=False)
            check = decision.data["credit"]["check"]
            reserved = False
            if req.get("reserve") and check["outcome"] in ("approve", "approve_with_conditions"):
                expires = req.get("expires_on") or (as_of + dt.timedelta(days=RESERVATION_DAYS))
                if existing is None:
                    s.add(Reservation(order_id=req["order_id"], customer_id=c.id, amount_minor=amount_minor,
                                      status="held", expires_on=expires, decision_id=rec.id, created_at=self.clock()))
                else:
                    existing.amount_minor, existing.status, existing.expires_on = amount_minor, "held", expires
                    existing.decision_id = rec.id
                reserved = True
            credit = decision.data["credit"]
            return {"decision_id": rec.id, "policy_version": rec.policy_version, "customer_id": c.id,
                    "order_id": req["order_id"], "outcome": check["outcome"], "conditions": check["conditions"],
                    "reasons": [r for r in decision.data["reasons"] if r["family"] == "credit.check"],
                    "limit": credit["limit"], "exposure": credit["exposure"], "available": credit["available"],
                    "exposure_after_order": check["exposure_after_order"], "reserved": reserved,
                    "as_of": as_of.isoformat()}

    def release_reservation(self, order_id: str) -> dict:
        with self.tx() as s:
            r = s.get(Reservation, order_id)
            if r is None:
                raise not_found("reservation for order", order_id)
            self._lock_customer(s, r.customer_id)
            if r.status == "held":
                r.status = "released"
            return {"order_id": r.order_id, "status": r.status}

    # ------------------------------------------------------------------ events
    def post_event(self, raw: dict, parsed: dict, actor, request_id) -> tuple[int, str]:
        """Returns (status, response JSON). Same event_id + same body → the first response."""
        body_hash = hashlib.sha256(canonical(raw).encode()).hexdigest()
        body = dict(parsed, data=dict(raw.get("data") or {}))
        event_id = body["event_id"]
        with self.tx() as s:
            seen = s.get(ProcessedEvent, event_id)
            if seen is not None:
                return self._replayed(seen, body_hash)
        try:
            with self.tx() as s:
                # the customer's row lock serialises its events (SQLite: BEGIN IMMEDIATE already does), so
                # look again only once it is held: a concurrent twin has committed by then
                c = self._lock_customer(s, body["customer_id"])
                seen = s.get(ProcessedEvent, event_id)
                if seen is not None:
                    return self._replayed(seen, body_hash)
                policy = self.registry.active(s)
                as_of = body.get("as_of") or self.today()
                self._apply_event(s, c, policy, body)
                s.flush()
                rec, decision = self._decide(s, c, as_of, kind="event", actor=actor, request_id=request_id)
                response = canonical({"event_id": event_id, "type": body["type"], "customer_id": c.id,
                                      "decision_id": rec.id, "decision": decision.data})
                s.add(ProcessedEvent(event_id=event_id, body_hash=body_hash, type=body["type"], customer_id=c.id,
                                     response=response, created_at=self.clock()))
            return 201, response
        except IntegrityError:
            with self.tx() as s:              # a concurrent twin won the race
                seen = s.get(ProcessedEvent, event_id)
                if seen is not None:
                    return self._replayed(seen, body_hash)
            # another event, for another customer, wrote a record with the same id at the same moment
            raise conflict("a record this event creates was created at the same moment by another event "
                           "(its id is taken)") from None

    @staticmethod
    def _replayed(seen: ProcessedEvent, body_hash: str) -> tuple[int, str]:
        if seen.body_hash != body_hash:
            raise conflict(f"event '{seen.event_id}' was already processed with a different body",
                           "E_EVENT_CONFLICT")
        return 200, seen.response

    def _load(self, schema, data, policy, money_keys=("amount",)):
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

    @staticmethod
    def _new_id(s, model, ident, what):
        if s.get(model, ident) is not None:
            raise conflict(f"{what} '{ident}' already exists")

    def _own_invoice(self, s, c, invoice_id, field="data.invoice_id"):
        inv = s.get(Invoice, invoice_id)
        if inv is None or inv.customer_id != c.id:
            raise invalid({field: [f"no invoice '{invoice_id}' for customer '{c.id}'"]})
        return inv

    def _apply_event(self, s, c: Customer, policy, body: dict) -> None:
        kind, data, eid = body["type"], body.get("data") or {}, body["event_id"]
        if kind == "invoice_issued":
            order_id = data.pop("order_id", None)
            if order_id is not None and not (isinstance(order_id, str) and 1 <= len(order_id) <= 128):
                raise invalid({"data.order_id": ["an order id is a string of 1 to 128 characters"]})
            inv = self._load(InvoiceSchema, data, policy)
            if inv["amount_minor"] <= 0:
                raise invalid({"data.amount": ["an invoice amount must be positive"]})
            if s.get(Invoice, inv["id"]) is not None:
                raise conflict(f"invoice '{inv['id']}' already exists")
            s.add(Invoice(id=inv["id"], customer_id=c.id, amount_minor=inv["amount_minor"], currency=inv["currency"],
                          issued_on=inv["issued_on"], due_on=inv["due_on"], order_id=order_id))
            if order_id:
                r = s.get(Reservation, order_id)
                if r is not None and r.customer_id == c.id and r.status == "held":
                    r.status = "invoiced"
        elif kind == "payment_received":
            p = self._load(PaymentSchema, data, policy)
            if p["amount_minor"] <= 0:
                raise invalid({"data.amount": ["a payment amount must be positive"]})
            if p["invoice_id"] is not None:
                self._own_invoice(s, c, p["invoice_id"])
            pid = p["id"] or eid
            if s.get(Payment, pid) is not None:
                raise conflict(f"payment '{pid}' already exists")
            s.add(Payment(id=pid, customer_id=c.id, invoice_id=p["invoice_id"], amount_minor=p["amount_minor"],
                          paid_on=p["paid_on"]))
        elif kind == "credit_note":
            n = self._load(CreditNoteSchema, data, policy)
            self._own_invoice(s, c, n["invoice_id"])
            self._new_id(s, CreditNote, n["id"] or eid, "credit note")
            s.add(CreditNote(id=n["id"] or eid, customer_id=c.id, invoice_id=n["invoice_id"],
                             amount_minor=n["amount_minor"], issued_on=n["issued_on"]))
        elif kind == "promise_to_pay":
            p = self._load(PromiseSchema, data, policy)
            if p["invoice_id"] is not None:
                self._own_invoice(s, c, p["invoice_id"])
            if p["promised_on"] < p["made_on"]:
                raise invalid({"data.promised_on": ["promised_on is before made_on"]})
            self._new_id(s, Promise, p["id"] or eid, "promise")
            s.add(Promise(id=p["id"] or eid, customer_id=c.id, invoice_id=p["invoice_id"],
                          amount_minor=p["amount_minor"], made_on=p["made_on"], promised_on=p["promised_on"]))
        elif kind == "dispute_opened":
            d = self._load(DisputeSchema, data, policy, ())
            self._own_invoice(s, c, d["invoice_id"])
            self._new_id(s, Dispute, d["id"] or eid, "dispute")
            s.add(Dispute(id=d["id"] or eid, customer_id=c.id, invoice_id=d["invoice_id"], opened_on=d["opened_on"],
                          resolved_on=None, reason=d["reason"]))
        elif kind == "dispute_resolved":
            dispute_id, resolved = data.get("dispute_id"), data.get("resolved_on")
            d = s.get(Dispute, dispute_id) if isinstance(dispute_id, str) else None
            if d is None or d.customer_id != c.id:
                raise invalid({"data.dispute_id": [f"no dispute '{dispute_id}' for customer '{c.id}'"]})
            try:
                resolved_on = dt.date.fromisoformat(resolved)
            except (TypeError, ValueError):
                raise invalid({"data.resolved_on": ["an ISO date (YYYY-MM-DD) is required"]}) from None
            check_dates(resolved_on, "data.resolved_on")
            d.resolved_on = resolved_on
        elif kind == "instalment_plan_agreed":
            p = self._load(InstalmentPlanSchema, data, policy, ())
            for i, ref in enumerate(p["invoice_ids"]):
                self._own_invoice(s, c, ref, f"data.invoice_ids[{i}]")
            instalments = []
            for i, inst in enumerate(p["instalments"]):
                try:
                    instalments.append({"due_on": inst["due_on"].isoformat(),
                                        "amount_minor": to_minor(inst["amount"], policy.exponent)})
                except ValueError as exc:
                    raise invalid({f"data.instalments[{i}].amount": [str(exc)]}) from None
            self._new_id(s, InstalmentPlan, p["id"], "instalment plan")
            s.add(InstalmentPlan(id=p["id"], customer_id=c.id, agreed_on=p["agreed_on"], invoice_ids=p["invoice_ids"],
                                 instalments=instalments))
        elif kind == "arrears_reason_recorded":
            reason = data.get("reason")
            if reason not in policy.content["categories"]["arrears_reason"]:
                raise invalid({"data.reason": [f"one of {', '.join(policy.content['categories']['arrears_reason'])}"]})
            c.arrears_reason = reason
        elif kind == "customer_updated":
            merged = {**customer_dict(c), **data, "id": c.id}
            try:
                loaded = CustomerSchema().load(merged)
            except ValidationError as exc:
                raise invalid(marshmallow_errors(exc.messages, "data")) from None
            self._check_lengths(loaded, "data.")
            check_dates(loaded, "data")
            self._check_categories(policy, loaded, "data.")
            self._set_customer_fields(c, loaded, policy, "data.")
            c.updated_at = self.clock()

    # ------------------------------------------------------------------ trail
    def list_decisions(self, *, customer=None, kind=None, outcome=None, since=None, until=None, actor=None,
                       cursor=None, limit=100) -> tuple[list[DecisionRecord], str | None]:
        with self.read_tx() as s:
            q = select(DecisionRecord)
            if customer:
                q = q.where(DecisionRecord.subject.in_([customer, f"stateless:{customer}"]))
            if kind:
                q = q.where(DecisionRecord.kind == kind)
            if outcome:
                q = q.where(DecisionRecord.outcome == outcome)
            if since:
                q = q.where(DecisionRecord.as_of >= since)
            if until:
                q = q.where(DecisionRecord.as_of <= until)
            if actor:
                q = q.where(DecisionRecord.actor == actor)
            if cursor:
                created, rid = _decode_cursor(cursor)
                q = q.where((DecisionRecord.created_at > created) |
                            ((DecisionRecord.created_at == created) & (DecisionRecord.id > rid)))
            rows = s.execute(q.order_by(DecisionRecord.created_at, DecisionRecord.id).limit(limit + 1)).scalars().all()
            more = len(rows) > limit
            rows = rows[:limit]
            next_cursor = _encode_cursor(rows[-1]) if more and rows else None
            return rows, next_cursor

    def get_decision(self, decision_id: str) -> DecisionRecord:
        with self.read_tx() as s:
            rec = s.get(DecisionRecord, decision_id)
            if rec is None:
                raise not_found("decision", decision_id)
            return rec

    def replay(self, decision_id: str) -> dict:
        with self.read_tx() as s:
            rec = s.get(DecisionRecord, decision_id)
            if rec is None:
                raise not_found("decision", decision_id)
            if rec.kind == "simulation":          # api/simulate.py: a summary of the whole book, not one case
                raise conflict("a simulation is not replayed: simulate the candidate again", "E_NOT_REPLAYABLE")
            if rec.kind == "interest_accrual":    # api/accrual.py: a job run over the book, not one case
                raise conflict("an interest accrual run is not replayed: its rows are in "
                               "GET /v1/reports/interest-accruals", "E_NOT_REPLAYABLE")
            facts = json.loads(rec.facts, parse_float=Decimal)
            as_of = dt.date.fromisoformat(facts["as_of"])
            decision = with_retry(lambda: evaluate(self.registry.get(s, rec.policy_version), facts["case"], as_of,
                                                   order=facts["order"]))
            identical = decision.json == rec.result
            out = {"decision_id": rec.id, "policy_version": rec.policy_version, "identical": identical}
            if not identical:
                old, new = json.loads(rec.result), decision.data
                out["differences"] = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                out["replayed"] = new
            return out

    def verify(self) -> dict:
        with self.read_tx() as s:
            return trail.verify(s)

    # ------------------------------------------------------------------ actions
    def list_actions(self, *, status="open", owner=None, customer=None, cursor=None, limit=100):
        with self.read_tx() as s:
            q = select(Action)
            if status:
                q = q.where(Action.status == status)
            if owner:
                q = q.where(Action.owner == owner)
            if customer:
                q = q.where(Action.customer_id == customer)
            if cursor:
                q = q.where(Action.id > int(cursor))
            rows = s.execute(q.order_by(Action.id).limit(limit + 1)).scalars().all()
            more = len(rows) > limit
            rows = rows[:limit]
            exps = {}
            return [self.action_view(a, exps) for a in rows], (str(rows[-1].id) if more and rows else None)

    def action_view(self, a: Action, _cache=None) -> dict:
        return {"id": a.id, "customer_id": a.customer_id, "invoice_id": a.invoice_id, "type": a.type,
                "channel": a.channel, "owner": a.owner, "stage": a.stage, "due_on": a.due_on.isoformat(),
                "amount": minor_str(a.amount_minor, 2), "status": a.status, "outcome": a.outcome, "note": a.note,
                "completed_at": a.completed_at.isoformat() + "Z" if a.completed_at else None,
                "completed_by": a.completed_by, "decision_id": a.decision_id}

    def complete_action(self, action_id: int, body: dict, actor: str) -> dict:
        if not 0 < action_id <= MAX_ACTION_ID:          # beyond the id column: cannot exist
            raise not_found("action", action_id)
        with self.tx() as s:
            a = s.execute(select(Action).where(Action.id == action_id).with_for_update()).scalar_one_or_none()
            if a is None:
                raise not_found("action", action_id)
            if a.status != "open":
                raise conflict(f"action {action_id} is already {a.status}")
            a.status, a.outcome, a.note = "done", body["outcome"], body.get("note")
            if body.get("channel"):
                a.channel = body["channel"]
            a.completed_at, a.completed_by = self.clock(), actor
            return self.action_view(a)

    def counts(self) -> dict:
        with self.tx() as s:
            return {"decisions": s.execute(select(func.count()).select_from(DecisionRecord)).scalar_one(),
                    "customers": s.execute(select(func.count()).select_from(Customer)).scalar_one()}


def _encode_cursor(rec: DecisionRecord) -> str:
    import base64
    return base64.urlsafe_b64encode(f"{rec.created_at.isoformat()}|{rec.id}".encode()).decode()


def _decode_cursor(cursor: str):
    import base64
    try:
        created, rid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        if not _DECISION_ID.fullmatch(rid):
            raise ValueError(rid)
        return dt.datetime.fromisoformat(created), rid
    except Exception:
        raise invalid({"cursor": ["not a cursor returned by this API"]}) from None
