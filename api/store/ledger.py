"""The ledger in the database ↔ the engine's customer case (engine/facts.py input shape).

`load_cases` reads a batch of customers' ledgers in one query (a UNION ALL over the tables) and gives each case in
two forms built from the same rows: `plain`, the JSON-able input that engine.evaluate() validates
and the trail stores as the decision's facts (and replays), and `typed`, what engine.facts.load_case
would make of it (dates, Decimals, defaults), which engine.evaluate_loaded() takes without running
marshmallow again: the rows were validated when they were written. tests/api/test_api_reports.py
checks that the two forms agree.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from engine.facts import CaseSchema, MinorCase
from rules.money import from_minor, minor_str

from .tables import (
    Action,
    ChainHead,
    CreditHold,
    CreditNote,
    CreditOrder,
    Customer,
    CustomerGroup,
    DecisionRecord,
    Dispute,
    DunningState,
    GroupHold,
    GroupMember,
    InstalmentPlan,
    Invoice,
    LegalCase,
    LimitGrant,
    Payment,
    PolicyState,
    Promise,
    Reservation,
)


# reservation statuses that count in exposure: an approved order's hold, and the provisional hold of a
# referred order while its referral is open (api/service/referrals.py)
HOLDING = ("held", "provisional")


class LedgerCase(NamedTuple):
    plain: dict | None            # None when load_cases was asked for the typed case only (plain=False)
    typed: dict


class _State(NamedTuple):          # the columns of dunning_states load_cases reads
    stage: int
    entered_on: dt.date | None
    as_of: dt.date
    prev_stage: int
    prev_entered_on: dt.date | None


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


# The whole ledger of a batch in ONE statement: a UNION ALL of one SELECT per table, each row tagged with its
# table and cast to one column shape (t1-t3 text, n1-n2 integers, d1-d3 dates, j1-j2 JSON), sorted by tag,
# customer and each table's own order (sd, st, si: the same columns, collation and tie-breaks as one query per
# table gave). Built once: building a statement costs more than running it for one customer, and each
# statement costs ~50-100 µs of SQLAlchemy around a few µs of SQLite.
_SHAPE = (("t1", String), ("t2", String), ("t3", Text), ("n1", BigInteger), ("n2", Integer), ("d1", Date),
          ("d2", Date), ("d3", Date), ("j1", JSON), ("j2", JSON), ("sd", Date), ("st", String), ("si", Integer))
(T_INVOICE, T_PAYMENT, T_CREDIT_NOTE, T_PROMISE, T_DISPUTE, T_PLAN, T_RESERVATION, T_GRANT, T_STATE,
 T_TAKEN, T_LEGAL) = range(11)


def _part(tag: int, model, where=None, join=None, **columns):
    """SELECT tag, customer_id, the shape's columns (NULL typed where the table has none) FROM model."""
    cols = [literal(tag, Integer).label("tag"), model.customer_id.label("customer_id")]
    cols += [(columns[name] if name in columns else cast(null(), type_)).label(name) for name, type_ in _SHAPE]
    stmt = select(*cols)
    if join is not None:
        stmt = stmt.select_from(join)
    return stmt.where(model.customer_id.in_(bindparam("ids", expanding=True)), *(where or ()))


_PARTS = [
    _part(T_INVOICE, Invoice, t1=Invoice.id, t2=Invoice.currency, n1=Invoice.amount_minor, d1=Invoice.issued_on,
          d2=Invoice.due_on, sd=Invoice.due_on, st=Invoice.id),
    _part(T_PAYMENT, Payment, t1=Payment.id, t2=Payment.invoice_id, n1=Payment.amount_minor, d1=Payment.paid_on,
          sd=Payment.paid_on, st=Payment.id),
    _part(T_CREDIT_NOTE, CreditNote, t1=CreditNote.id, t2=CreditNote.invoice_id, n1=CreditNote.amount_minor,
          d1=CreditNote.issued_on, sd=CreditNote.issued_on, st=CreditNote.id),
    _part(T_PROMISE, Promise, t1=Promise.id, t2=Promise.invoice_id, n1=Promise.amount_minor, d1=Promise.made_on,
          d2=Promise.promised_on, sd=Promise.made_on, st=Promise.id),
    _part(T_DISPUTE, Dispute, t1=Dispute.id, t2=Dispute.invoice_id, t3=Dispute.reason, d1=Dispute.opened_on,
          d2=Dispute.resolved_on, sd=Dispute.opened_on, st=Dispute.id),
    _part(T_PLAN, InstalmentPlan, t1=InstalmentPlan.id, j1=InstalmentPlan.invoice_ids, d1=InstalmentPlan.agreed_on,
          j2=InstalmentPlan.instalments, sd=InstalmentPlan.agreed_on, st=InstalmentPlan.id),
    _part(T_RESERVATION, Reservation, t1=Reservation.order_id, t2=Reservation.status, n1=Reservation.amount_minor,
          d1=Reservation.expires_on, st=Reservation.order_id),
    _part(T_GRANT, LimitGrant, t1=LimitGrant.granted_by, t2=LimitGrant.person, n1=LimitGrant.limit_minor,
          d1=LimitGrant.until),
    _part(T_LEGAL, LegalCase, t1=LegalCase.status, n2=LegalCase.id, j1=LegalCase.invoice_ids,
          d1=LegalCase.opened_on, d2=LegalCase.closed_on, si=LegalCase.id),
]
_STATE_PART = _part(T_STATE, DunningState, n1=DunningState.stage, n2=DunningState.prev_stage,
                    d1=DunningState.entered_on, d2=DunningState.as_of, d3=DunningState.prev_entered_on)
# the stage actions already created for a customer (not cancelled, due before the evaluation day), so `once`
# and `until_done` actions are not created again: with a dunning state, those of its current stage episode
# (either of the states a day may steps from); without one, the few that decisions before the first sweep made
_TAKEN_PART = _part(
    T_TAKEN, Action, join=Action.__table__.outerjoin(DunningState, DunningState.customer_id == Action.customer_id),
    where=(Action.due_on < bindparam("as_of"), Action.stage > 0, Action.status != "cancelled",
           or_(DunningState.customer_id.is_(None),
               and_(Action.stage == DunningState.stage, Action.due_on >= DunningState.entered_on),
               and_(Action.stage == DunningState.prev_stage, Action.due_on >= DunningState.prev_entered_on))),
    t1=Action.type, t2=Action.status, n2=Action.stage, d1=Action.due_on, sd=Action.due_on, si=Action.id)


_SORT_ONLY = ("sd", "st", "si")
_RAW_JSON = ("j1", "j2")


def _ledger(*parts):
    # the sort keys order the rows but are not returned: each returned column costs a result processor per row
    # and the JSON columns come back undecoded (SQLite: text), decoded by _json for the few rows that have them
    u = union_all(*parts).subquery("ledger")
    return (select(*(type_coerce(c, Text).label(c.name) if c.name in _RAW_JSON else c
                     for c in u.c if c.name not in _SORT_ONLY))
            .order_by(u.c.tag, u.c.customer_id, u.c.sd, u.c.st, u.c.si))


def _json(value):
    """A JSON column's value as _ledger returns it: text (SQLite) or already decoded (psycopg)."""
    return json.loads(value) if isinstance(value, str) else value


_LEDGER = _ledger(*_PARTS, _STATE_PART, _TAKEN_PART)
_LEDGER_NO_STATES = _ledger(*_PARTS, _TAKEN_PART)         # the caller has read the dunning states

# A credit check's inputs besides the ledger, in the same statement (tags after T_LEGAL; load_cases' parser
# never sees them): the customer's hold, chain head, the order's row and its reservation (whoever's), the
# customer's group with its members and its hold, the policy state, and each customer's row as one text. A
# check evaluated without the write lock re-reads all of it under the lock and writes its decision only if
# every row is the same (api/service/credit_checks.py), so these carry what changes whenever the row does;
# `check_inputs` gives the check what it needs of them, so it reads none of these tables apart.
(T_HOLD, T_HEAD, T_ORDER, T_ORDER_RESERVATION, T_MEMBER, T_GROUP, T_POLICY, T_ORDER_MORE, T_GROUP_HOLD,
 T_CUSTOMER) = range(11, 21)
_GROUP_OF = select(GroupMember.group_id).where(GroupMember.customer_id == bindparam("customer_id"))


class _row_text(FunctionElement):
    """A row's columns as one JSON array text (exact: JSON's encoding is one-to-one), to compare, not parse."""
    type = Text()
    name = "row_text"
    inherit_cache = True


@compiles(_row_text)
def _row_text_sqlite(element, compiler, **kw):
    return f"json_array({compiler.process(element.clauses, **kw)})"


@compiles(_row_text, "postgresql")
def _row_text_postgresql(element, compiler, **kw):
    return f"CAST(json_build_array({compiler.process(element.clauses, **kw)}) AS TEXT)"


def _row(tag: int, key, where, **columns):
    cols = [literal(tag, Integer).label("tag"), (cast(null(), String) if key is None else key).label("customer_id")]
    cols += [(columns[name] if name in columns else cast(null(), type_)).label(name) for name, type_ in _SHAPE]
    return select(*cols).where(where)


_LAST_SEQ = select(func.max(DecisionRecord.seq)).where(DecisionRecord.subject == ChainHead.subject).scalar_subquery()
_CHECK_PARTS = [
    _row(T_HOLD, CreditHold.customer_id, CreditHold.customer_id == bindparam("customer_id"),
         t1=CreditHold.decision_id, t2=CreditHold.placed_by, t3=CreditHold.reason, d1=CreditHold.placed_on,
         d2=CreditHold.until),
    # n2: the chain's last seq, so a head behind its chain is seen here (api/store/trail.append_at)
    _row(T_HEAD, ChainHead.subject, ChainHead.subject == bindparam("customer_id"), t1=ChainHead.hash,
         n1=ChainHead.seq, n2=_LAST_SEQ),
    _row(T_ORDER, CreditOrder.customer_id, CreditOrder.order_id == bindparam("order_id"),
         t1=CreditOrder.decision_id, t2=CreditOrder.status, t3=CreditOrder.request_hash,
         n1=CreditOrder.amount_minor),
    _row(T_ORDER_MORE, CreditOrder.customer_id, CreditOrder.order_id == bindparam("order_id"),
         t1=CreditOrder.requested_by, t2=CreditOrder.referral_id, t3=CreditOrder.answer),
    _row(T_ORDER_RESERVATION, Reservation.customer_id, Reservation.order_id == bindparam("order_id"),
         t1=Reservation.decision_id, t2=Reservation.status, t3=Reservation.owner, n1=Reservation.amount_minor,
         d1=Reservation.expires_on),
    _row(T_MEMBER, GroupMember.customer_id, GroupMember.group_id.in_(_GROUP_OF), t1=GroupMember.group_id,
         st=GroupMember.customer_id),
    _row(T_GROUP, None, CustomerGroup.id.in_(_GROUP_OF), t1=CustomerGroup.id, t2=CustomerGroup.decision_id,
         t3=CustomerGroup.name, n1=CustomerGroup.limit_minor),
    _row(T_GROUP_HOLD, GroupHold.group_id, GroupHold.group_id.in_(_GROUP_OF), t1=GroupHold.decision_id,
         t2=GroupHold.placed_by, t3=GroupHold.reason, d1=GroupHold.placed_on, d2=GroupHold.until),
    _row(T_POLICY, None, PolicyState.id == 1, t1=PolicyState.active_version, n1=PolicyState.timeline_seq),
    _row(T_CUSTOMER, Customer.id, Customer.id.in_(bindparam("ids", expanding=True)),
         t3=_row_text(*Customer.__table__.columns), st=Customer.id),
]
_CHECK = _ledger(*_PARTS, _STATE_PART, _TAKEN_PART, *_CHECK_PARTS)


def read_check(s, ids: list[str], customer_id: str, order_id: str, as_of: dt.date) -> list:
    """One statement: the ledgers of `ids` (the checked customer and, in a group, the other members) and
    the check's other inputs (T_HOLD … T_CUSTOMER), as rows to compare; `cases_from_rows` builds the cases
    and `check_inputs` the rest."""
    return s.connection().execute(_CHECK, {"ids": ids, "as_of": as_of, "customer_id": customer_id,
                                           "order_id": order_id}).all()


class Hold(NamedTuple):            # a credit hold's or a group hold's row, as the check reads it
    reason: str
    placed_on: dt.date
    until: dt.date | None
    placed_by: str
    decision_id: str


class OrderRow(NamedTuple):        # the order's credit_orders row
    customer_id: str
    status: str
    amount_minor: int
    decision_id: str
    request_hash: str | None
    requested_by: str
    referral_id: str | None
    answer: str | None


class OrderReservation(NamedTuple):    # the order's reservation, whoever's
    customer_id: str
    status: str
    owner: str | None
    amount_minor: int
    expires_on: dt.date
    decision_id: str


class Group(NamedTuple):
    id: str
    name: str
    limit_minor: int
    decision_id: str | None


class CheckInputs(NamedTuple):
    hold: Hold | None
    head: tuple[int, str, int | None] | None          # (seq, hash, the chain's last seq); None: no head row
    order: OrderRow | None
    reservation: OrderReservation | None
    group: Group | None
    members: tuple[str, ...]                          # the group's members (the checked customer too), by id
    group_hold: Hold | None
    policy: tuple[str, int] | None                    # (active_version, timeline_seq)


def check_inputs(rows) -> CheckInputs:
    """What read_check's rows after the ledger say (holds whether in force or not: the caller decides)."""
    hold = head = order = more = reservation = group = group_hold = policy = None
    members = []
    for tag, cid, t1, t2, t3, n1, n2, d1, d2, _d3, _j1, _j2 in reversed(rows):
        if tag <= T_LEGAL:
            break
        if tag == T_HOLD:
            hold = Hold(t3, d1, d2, t2, t1)
        elif tag == T_HEAD:
            head = (n1, t1, n2)
        elif tag == T_ORDER:
            order = (cid, t2, n1, t1, t3)
        elif tag == T_ORDER_MORE:
            more = (t1, t2, t3)
        elif tag == T_ORDER_RESERVATION:
            reservation = OrderReservation(cid, t2, t3, n1, d1, t1)
        elif tag == T_MEMBER:
            members.append(cid)
        elif tag == T_GROUP:
            group = Group(t1, t3, n1, t2)
        elif tag == T_GROUP_HOLD:
            group_hold = Hold(t3, d1, d2, t2, t1)
        elif tag == T_POLICY:
            policy = (t1, n1)
    if order is not None:
        order = OrderRow(*order, *more)
    return CheckInputs(hold, head, order, reservation, group, tuple(reversed(members)), group_hold, policy)


def load_cases(s, customers, exponent: int, as_of: dt.date, *, states: dict | None = None,
               plain: bool = True) -> dict[str, LedgerCase]:
    """Each customer's case as of `as_of`, by id. `states` (customer id → DunningState) spares the
    query when the caller has already read them; `plain=False` builds the typed case only (the
    simulation: it records no facts)."""
    ids = [c.id for c in customers]
    rows = (s.connection().execute(_LEDGER if states is None else _LEDGER_NO_STATES, {"ids": ids, "as_of": as_of}).all()
            if ids else ())       # Core: plain column rows need none of the ORM's per-statement work; one fetchall
    return cases_from_rows(customers, rows, exponent, as_of, states=states, plain=plain)


def cases_from_rows(customers, rows, exponent: int, as_of: dt.date, *, states: dict | None = None,
                    plain: bool = True) -> dict[str, LedgerCase]:
    """load_cases' cases from the ledger's rows (rows tagged after T_LEGAL are skipped). The typed case is
    an engine.facts.MinorCase in `exponent`: each amount's minor units come from its row, so the policy's
    check keeps them (engine/facts.py check_case). `plain=False`: the typed case only (LedgerCase.plain None)."""
    ids = [c.id for c in customers]
    defaults = _case_defaults()
    want_plain = plain
    plain: dict[str, dict] = {}
    typed: dict[str, dict] = {}
    for c in customers:
        customer = customer_dict(c)
        plain[c.id] = ({"customer": customer, "invoices": [], "payments": [], "credit_notes": [],
                        "promises": [], "disputes": [], "instalment_plans": [], "reservations": []}
                       if want_plain else None)
        typed[c.id] = MinorCase({**{k: (list(v) if isinstance(v, list) else v) for k, v in defaults.items()},
                                 "customer": _typed_customer(c, customer)}, exponent)

    def money(minor):
        return minor_str(minor, exponent)

    def amount(text, minor):      # the Decimal of the canonical string: exact, cheaper than Decimal arithmetic
        return {"amount": Decimal(text), "amount_minor": minor}

    taken: dict[str, list] = {cid: [] for cid in ids}
    states = {} if states is None else states
    for tag, cid, t1, t2, t3, n1, n2, d1, d2, d3, j1, j2 in rows:
        if tag > T_LEGAL:
            break                     # a credit check's other inputs (read_check), sorted after the ledger
        t = typed.get(cid)
        if t is None:
            continue                  # a customer the caller builds apart (read_check: a group's members)
        p = plain[cid]                # None: the typed case only
        if tag == T_INVOICE:
            text = money(n1)
            if p is not None:
                p["invoices"].append({"id": t1, "amount": text, "currency": t2, "issued_on": d1.isoformat(),
                                      "due_on": d2.isoformat()})
            t["invoices"].append({"id": t1, **amount(text, n1), "currency": t2, "issued_on": d1, "due_on": d2})
        elif tag == T_PAYMENT:
            text = money(n1)
            if p is not None:
                p["payments"].append({"id": t1, "invoice_id": t2, "amount": text, "paid_on": d1.isoformat()})
            t["payments"].append({"id": t1, "invoice_id": t2, **amount(text, n1), "currency": None, "paid_on": d1})
        elif tag == T_CREDIT_NOTE:
            text = money(n1)
            if p is not None:
                p["credit_notes"].append({"id": t1, "invoice_id": t2, "amount": text, "issued_on": d1.isoformat()})
            t["credit_notes"].append({"id": t1, "invoice_id": t2, **amount(text, n1), "currency": None,
                                      "issued_on": d1})
        elif tag == T_PROMISE:
            text = money(n1)
            if p is not None:
                p["promises"].append({"id": t1, "invoice_id": t2, "amount": text, "made_on": d1.isoformat(),
                                      "promised_on": d2.isoformat()})
            t["promises"].append({"id": t1, "invoice_id": t2, **amount(text, n1), "made_on": d1, "promised_on": d2})
        elif tag == T_DISPUTE:
            if p is not None:
                p["disputes"].append({"id": t1, "invoice_id": t2, "opened_on": d1.isoformat(),
                                      "resolved_on": d2.isoformat() if d2 else None, "reason": t3})
            t["disputes"].append({"id": t1, "invoice_id": t2, "opened_on": d1, "resolved_on": d2, "reason": t3})
        elif tag == T_PLAN:
            j1, j2 = _json(j1), _json(j2)
            if p is not None:
                p["instalment_plans"].append(
                    {"id": t1, "invoice_ids": list(j1), "agreed_on": d1.isoformat(),
                     "instalments": [{"due_on": i["due_on"], "amount": money(i["amount_minor"])} for i in j2]})
            t["instalment_plans"].append(
                {"id": t1, "invoice_ids": list(j1), "agreed_on": d1,
                 "instalments": [{"due_on": dt.date.fromisoformat(i["due_on"]),
                                  **amount(money(i["amount_minor"]), i["amount_minor"])} for i in j2]})
        elif tag == T_RESERVATION:
            if t2 in HOLDING and d1 >= as_of:
                text = money(n1)
                if p is not None:
                    p["reservations"].append({"order_id": t1, "amount": text})
                t["reservations"].append({"order_id": t1, **amount(text, n1)})
        elif tag == T_GRANT:            # a controller's grant (api/service/grants.py)
            text, by = money(n1), t1 if not t2 or t2 == t1 else f"{t2} ({t1})"
            if p is not None:
                p["grant"] = {"limit": text, "until": d1.isoformat() if d1 else None, "granted_by": by}
            t["grant"] = {"limit": Decimal(text), "limit_minor": n1, "until": d1, "granted_by": by}
        elif tag == T_STATE:
            states[cid] = _State(n1, d1, d2, n2, d3)
        elif tag == T_LEGAL:            # a legal case (api/service/legal_cases.py): the key only when there is
            if d1 <= as_of:             # one, so every other case's facts stay byte-identical
                j1 = _json(j1)
                if p is not None:
                    p.setdefault("legal_cases", []).append(
                        {"id": n2, "invoice_ids": list(j1), "opened_on": d1.isoformat(), "status": t1,
                         "closed_on": d2.isoformat() if d2 else None})
                t["legal_cases"].append({"id": n2, "invoice_ids": list(j1), "opened_on": d1, "status": t1,
                                         "closed_on": d2})
        else:                            # T_TAKEN
            taken[cid].append((t1, n2, d1, t2 == "open"))
    for c in customers:
        state = states.get(c.id)
        if state is not None:
            # a second evaluation on the same day steps from that day's starting state (prev_*), not from
            # its own result, so it lands on the same stage (docs/dunning.md)
            stage, entered = (state.stage, state.entered_on) if state.as_of < as_of else (state.prev_stage,
                                                                                         state.prev_entered_on)
            if want_plain:
                plain[c.id]["dunning"] = {"stage": stage, "entered_on": entered.isoformat() if entered else None}
            typed[c.id]["dunning"] = {"stage": stage, "entered_on": entered}
        if want_plain:
            plain[c.id]["actions_taken"] = [{"type": kind, "stage": st, "due_on": due.isoformat(), "open": is_open}
                                            for kind, st, due, is_open in taken[c.id]]
        typed[c.id]["actions_taken"] = [{"type": kind, "stage": st, "due_on": due, "open": is_open}
                                        for kind, st, due, is_open in taken[c.id]]
        # the customer's last recorded decision, whatever made it (event, credit check, sweep, review), also
        # one of the same day: a "since the last evaluation" alert then fires once, on the decision that saw
        # the change, and never again on the next one (which compares with what that decision recorded)
        if c.last_as_of is not None and c.last_as_of <= as_of:
            if want_plain:
                plain[c.id]["previous"] = {"as_of": c.last_as_of.isoformat(), "aging_bucket": c.last_bucket,
                                           "credit_score": c.last_score}
            typed[c.id]["previous"] = {"as_of": c.last_as_of, "aging_bucket": c.last_bucket,
                                       "credit_score": c.last_score}
    return {cid: LedgerCase(plain[cid] if want_plain else None, typed[cid]) for cid in ids}


def load_case(session, customer: Customer, exponent: int, as_of: dt.date) -> dict:
    """Everything the engine needs about one customer, as plain JSON-able data."""
    return load_cases(session, [customer], exponent, as_of)[customer.id].plain
