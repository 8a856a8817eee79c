"""Facts: the input of one customer evaluation, validated, and the flat fact derived from it.

`load_case(data, policy)` validates a customer case (credit file + ledger) and raises
InputInvalid naming every bad field; its second half, `check_case`, is the part that depends
on the policy (and all that `evaluate_loaded` runs for an already-typed case). `build_facts(case, policy, as_of, order_amount)` is a
pure function of its arguments: nothing reads the clock, nothing dated after `as_of`
counts. Amounts become integer minor units of the policy's currency.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from marshmallow import RAISE, Schema, ValidationError, validate, validates_schema

from . import casefields as fields      # marshmallow's fields, with less overhead per value
from rules.common import find_band

from .errors import InputError, InputInvalid
from rules.money import parse_amount, to_minor

ID = validate.Length(min=1, max=128)
MAX_AMOUNT = Decimal(10) ** 15
NOT_AN_AMOUNT, NEGATIVE_AMOUNT = "not an amount: ", "must not be negative"


class AmountField(fields.Field):
    """Decimal string or integer (rules/money.py parse_amount); never a float or a JSON number with a fraction."""

    def _deserialize(self, value, attr, data, **kw):
        try:
            amount = parse_amount(value)
        except ValueError as exc:
            raise ValidationError(f"{NOT_AN_AMOUNT}{exc}") from None
        if amount < 0:
            raise ValidationError(NEGATIVE_AMOUNT)
        if amount > MAX_AMOUNT:
            # keeps every sum inside int64 minor units, which durable_rules would silently saturate
            raise ValidationError(f"{NOT_AN_AMOUNT}above the maximum {MAX_AMOUNT:,}")
        return amount

    def _serialize(self, value, attr, obj, **kw):
        return None if value is None else str(value)


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class CustomerSchema(_Strict):
    id = fields.String(required=True, validate=ID)
    name = fields.String(load_default="")
    type = fields.String(required=True)
    industry = fields.String(required=True)
    region = fields.String(required=True)
    size = fields.String(required=True)
    since = fields.Date(required=True)
    credit_score = fields.Integer(strict=True, load_default=None, allow_none=True,
                                  validate=validate.Range(min=0, max=100))
    external_rating = fields.Integer(strict=True, load_default=None, allow_none=True,
                                     validate=validate.Range(min=0, max=100))
    # limit and terms a controller (or a periodic review) approved: they cap the policy's
    approved_limit = AmountField(load_default=None, allow_none=True)
    approved_terms_days = fields.Integer(strict=True, load_default=None, allow_none=True,
                                         validate=validate.Range(min=0, max=3650))
    collector = fields.String(load_default=None, allow_none=True)
    last_reviewed_on = fields.Date(load_default=None, allow_none=True)
    arrears_reason = fields.String(load_default=None, allow_none=True)
    deal_type = fields.String(load_default=None, allow_none=True)
    tags = fields.List(fields.String(), load_default=list)


class InvoiceSchema(_Strict):
    id = fields.String(required=True, validate=ID)
    amount = AmountField(required=True)
    currency = fields.String(required=True)
    issued_on = fields.Date(required=True)
    due_on = fields.Date(required=True)

    @validates_schema
    def _due_after_issue(self, data, **kw):
        if data["due_on"] < data["issued_on"]:
            raise ValidationError("due_on is before issued_on", "due_on")


class PaymentSchema(_Strict):
    id = fields.String(load_default=None, validate=ID)
    invoice_id = fields.String(load_default=None, allow_none=True)
    amount = AmountField(required=True)
    currency = fields.String(load_default=None)
    paid_on = fields.Date(required=True)


class CreditNoteSchema(_Strict):
    id = fields.String(load_default=None, validate=ID)
    invoice_id = fields.String(required=True)
    amount = AmountField(required=True)
    currency = fields.String(load_default=None)
    issued_on = fields.Date(required=True)


class PromiseSchema(_Strict):
    id = fields.String(load_default=None, validate=ID)
    invoice_id = fields.String(load_default=None, allow_none=True)
    amount = AmountField(required=True)
    made_on = fields.Date(required=True)
    promised_on = fields.Date(required=True)


class DisputeSchema(_Strict):
    id = fields.String(load_default=None, validate=ID)
    invoice_id = fields.String(required=True)
    opened_on = fields.Date(required=True)
    resolved_on = fields.Date(load_default=None, allow_none=True)
    reason = fields.String(load_default="")


class InstalmentSchema(_Strict):
    due_on = fields.Date(required=True)
    amount = AmountField(required=True)


class InstalmentPlanSchema(_Strict):
    id = fields.String(required=True, validate=ID)
    invoice_ids = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    agreed_on = fields.Date(required=True)
    instalments = fields.List(fields.Nested(InstalmentSchema), required=True, validate=validate.Length(min=1))


class ReservationSchema(_Strict):
    order_id = fields.String(required=True, validate=ID)
    amount = AmountField(required=True)


class PreviousSchema(_Strict):
    as_of = fields.Date(required=True)
    aging_bucket = fields.String(load_default=None, allow_none=True)
    credit_score = fields.Integer(strict=True, load_default=None, allow_none=True,
                                  validate=validate.Range(min=0, max=100))


class TakenActionSchema(_Strict):
    """A stage action already created (due before as_of); `open` while not done."""
    type = fields.String(required=True)
    stage = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=9))
    due_on = fields.Date(required=True)
    open = fields.Boolean(load_default=False)


class DunningStateSchema(_Strict):
    """Where the collection workflow stands (kept by the ledger, see docs/dunning.md)."""
    stage = fields.Integer(strict=True, required=True, validate=validate.Range(min=0, max=9))
    entered_on = fields.Date(load_default=None, allow_none=True)


class GrantSchema(_Strict):
    """A limit a controller granted in place of the policy's (api/service/grants.py): it applies up to `until`."""
    limit = AmountField(required=True)
    until = fields.Date(load_default=None, allow_none=True)
    granted_by = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=128))


class CaseLegalSchema(_Strict):
    """A legal case the ledger opened on a litigation referral (api/service/legal_cases.py): its invoices are
    with the legal team from the day after opened_on until it closes (a write-off keeps them there)."""
    id = fields.Integer(strict=True, required=True)
    invoice_ids = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    opened_on = fields.Date(required=True)
    status = fields.String(required=True, validate=validate.Length(min=1, max=16))
    closed_on = fields.Date(load_default=None, allow_none=True)


class CaseSchema(_Strict):
    customer = fields.Nested(CustomerSchema, required=True)
    invoices = fields.List(fields.Nested(InvoiceSchema), load_default=list)
    payments = fields.List(fields.Nested(PaymentSchema), load_default=list)
    credit_notes = fields.List(fields.Nested(CreditNoteSchema), load_default=list)
    promises = fields.List(fields.Nested(PromiseSchema), load_default=list)
    disputes = fields.List(fields.Nested(DisputeSchema), load_default=list)
    instalment_plans = fields.List(fields.Nested(InstalmentPlanSchema), load_default=list)
    reservations = fields.List(fields.Nested(ReservationSchema), load_default=list)
    arrears_reason = fields.String(load_default=None, allow_none=True)
    previous = fields.Nested(PreviousSchema, load_default=None, allow_none=True)
    dunning = fields.Nested(DunningStateSchema, load_default=None, allow_none=True)
    grant = fields.Nested(GrantSchema, load_default=None, allow_none=True)
    # the stage actions already created (the ledger gives them); absent: not known, so a `once` action
    # falls due on its first day only (docs/dunning.md)
    actions_taken = fields.List(fields.Nested(TakenActionSchema), load_default=None, allow_none=True)
    # legal cases (absent: none): their invoices' collection is with the legal team (docs/dunning.md)
    legal_cases = fields.List(fields.Nested(CaseLegalSchema), load_default=list)


_CASE_SCHEMA = CaseSchema()      # reused: building a schema costs more than loading with it


def flatten_messages(messages, prefix="") -> list[InputError]:
    out = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == "_schema":
                out += flatten_messages(value, prefix)
                continue
            name = f"{prefix}[{key}]" if isinstance(key, int) else (f"{prefix}.{key}" if prefix else str(key))
            out += flatten_messages(value, name)
    elif isinstance(messages, list):
        for m in messages:
            if isinstance(m, (dict, list)):
                out += flatten_messages(m, prefix)
            else:
                code = "E_UNKNOWN_FIELD" if m == "Unknown field." else (
                    "E_REQUIRED" if m == "Missing data for required field." else (
                        "E_AMOUNT" if m == NEGATIVE_AMOUNT or str(m).startswith(NOT_AN_AMOUNT) else "E_INVALID"))
                out.append(InputError(prefix or "_", code, str(m)))
    return out


CATEGORY_OF = {"type": "customer_type", "industry": "industry", "region": "region", "size": "company_size",
               "arrears_reason": "arrears_reason", "deal_type": "deal_type"}


def load_case(data, policy) -> dict:
    """Validate a case against the schema and the policy (categories, currency, references)."""
    if not isinstance(data, dict):
        raise InputInvalid([InputError("_", "E_INVALID", "the input must be a JSON object")])
    try:
        case = _CASE_SCHEMA.load(data)
    except ValidationError as exc:
        raise InputInvalid(flatten_messages(exc.messages)) from None
    return check_case(case, policy)


class MinorCase(dict):
    """A typed case that carries each amount in minor units already, in `minor_exponent`'s: every
    `amount_minor` of its invoices, payments, credit notes, promises, reservations and instalments, and its
    grant's `limit_minor`, is what `to_minor(amount, minor_exponent)` gives, without error (the ledger builds
    them: api/store/ledger.py, each Decimal from its row's minor units). `check_case` under a policy of that
    exponent then keeps them instead of converting ~40 amounts again; under any other exponent, or for a plain
    dict (the HTTP evaluate endpoint, policy test cases, `load_case`), it converts as always. Whoever replaces
    an amount of such a case replaces its minor units too (or passes a plain dict: `dict(case)`)."""

    __slots__ = ("minor_exponent",)

    def __init__(self, data=(), minor_exponent: int | None = None):
        super().__init__(data)
        self.minor_exponent = minor_exponent

    def __reduce__(self):                    # copy.deepcopy and pickle keep the exponent with the items
        return (MinorCase, ((), self.minor_exponent), None, None, iter(self.items()))


# above any amount the ledger holds (int64 minor units): a larger one takes to_minor's path and its refusal
_FAST_MINOR = 10 ** 18


def check_case(case: dict, policy) -> dict:
    """The checks of a typed case (what CaseSchema loads) against the policy: categories, currency,
    references, amounts in the currency's unit. Adds each amount in minor units (`amount_minor`)
    and returns the case. Repeating it on a checked case changes nothing. A MinorCase in the policy's
    exponent keeps the minor units it carries (the same integers to_minor would give, and no refusal it
    would make: see MinorCase); its other checks run as for any case."""
    errors: list[InputError] = []
    exponent = policy.exponent
    carried = type(case) is MinorCase and case.minor_exponent == exponent
    enums = policy.content["categories"]
    customer = case["customer"]
    for key, category in CATEGORY_OF.items():
        value = customer.get(key)
        if key == "arrears_reason" and case["arrears_reason"] is not None:
            value = case["arrears_reason"]
            fname = "arrears_reason"
        else:
            fname = f"customer.{key}"
        if value is None:
            continue
        if value not in enums[category]:
            errors.append(InputError(fname, "E_UNKNOWN_VALUE",
                                     f"'{value}' is not a {category} of the policy (one of {', '.join(enums[category])})"))
    previous = case["previous"]
    buckets = policy.band_classes["aging_bucket"].labels
    if previous and previous["aging_bucket"] is not None and previous["aging_bucket"] not in buckets:
        errors.append(InputError("previous.aging_bucket", "E_UNKNOWN_VALUE",
                                 f"'{previous['aging_bucket']}' is not an aging bucket of the policy "
                                 f"(one of {', '.join(buckets)})"))
    if customer.get("approved_limit") is not None:
        try:
            # always converted: the ledger gives the credit file's limit in 2 decimals, whatever the currency
            customer["approved_limit_minor"] = to_minor(customer["approved_limit"], exponent)
        except ValueError as exc:
            errors.append(InputError("customer.approved_limit", "E_AMOUNT", str(exc)))
    grant = case.get("grant")
    if grant is not None and not (carried and _carried(grant.get("limit_minor"))):
        try:
            grant["limit_minor"] = to_minor(grant["limit"], exponent)
        except ValueError as exc:
            errors.append(InputError("grant.limit", "E_AMOUNT", str(exc)))
    invoice_ids = set()
    for i, inv in enumerate(case["invoices"]):
        if inv["id"] in invoice_ids:
            errors.append(InputError(f"invoices[{i}].id", "E_DUPLICATE", f"invoice id '{inv['id']}' appears twice"))
        invoice_ids.add(inv["id"])
    money_lists = [("invoices", "amount"), ("payments", "amount"), ("credit_notes", "amount"),
                   ("promises", "amount"), ("reservations", "amount")]
    for key, amount_key in money_lists:
        for i, item in enumerate(case[key]):
            currency = item.get("currency")
            if currency is not None and currency != policy.currency:
                errors.append(InputError(f"{key}[{i}].currency", "E_CURRENCY",
                                         f"currency '{currency}' is not the policy's currency {policy.currency}"))
            if carried and _carried(item.get("amount_minor")):
                continue
            try:
                item[amount_key + "_minor"] = to_minor(item[amount_key], exponent)
            except ValueError as exc:
                errors.append(InputError(f"{key}[{i}].{amount_key}", "E_AMOUNT", str(exc)))
        for i, item in enumerate(case[key]):
            if key == "invoices" and item["amount"] == 0:
                errors.append(InputError(f"invoices[{i}].amount", "E_AMOUNT", "an invoice amount must be positive"))
    for key in ("payments", "credit_notes", "promises", "disputes"):
        for i, item in enumerate(case[key]):
            ref = item.get("invoice_id")
            if ref is not None and ref not in invoice_ids:
                errors.append(InputError(f"{key}[{i}].invoice_id", "E_UNKNOWN_INVOICE", f"no invoice '{ref}'"))
    for i, plan in enumerate(case["instalment_plans"]):
        for j, ref in enumerate(plan["invoice_ids"]):
            if ref not in invoice_ids:
                errors.append(InputError(f"instalment_plans[{i}].invoice_ids[{j}]", "E_UNKNOWN_INVOICE",
                                         f"no invoice '{ref}'"))
        for j, inst in enumerate(plan["instalments"]):
            if carried and _carried(inst.get("amount_minor")):
                continue
            try:
                inst["amount_minor"] = to_minor(inst["amount"], exponent)
            except ValueError as exc:
                errors.append(InputError(f"instalment_plans[{i}].instalments[{j}].amount", "E_AMOUNT", str(exc)))
    for i, lc in enumerate(case.get("legal_cases") or ()):
        for j, ref in enumerate(lc["invoice_ids"]):
            if ref not in invoice_ids:
                errors.append(InputError(f"legal_cases[{i}].invoice_ids[{j}]", "E_UNKNOWN_INVOICE",
                                         f"no invoice '{ref}'"))
    for i, p in enumerate(case["promises"]):
        if p["promised_on"] < p["made_on"]:
            errors.append(InputError(f"promises[{i}].promised_on", "E_INVALID", "promised_on is before made_on"))
    if type(case) is MinorCase and not carried:
        # converted in full (to_minor set every minor unit): they are now in this exponent; an amount refused
        # may have kept one in another, so the next check converts them all again
        case.minor_exponent = None if any(e.code == "E_AMOUNT" for e in errors) else exponent
    if errors:
        raise InputInvalid(errors)
    return case


def _carried(minor) -> bool:
    return type(minor) is int and -_FAST_MINOR < minor < _FAST_MINOR


class InvoiceState(NamedTuple):
    """One invoice as of the evaluation date. A NamedTuple rather than a frozen dataclass: a case
    has ~15 of them, and a frozen dataclass's __init__ costs several times as much."""
    id: str
    amount_minor: int
    open_minor: int
    issued_on: dt.date
    due_on: dt.date
    days_overdue: int          # as_of − due_on, negative before the due date
    disputed: bool
    paused: str | None         # why collection is paused: legal_case, dispute, promise, instalment_plan
    settled_on: dt.date | None


@dataclass(frozen=True)
class Facts:
    fields: MappingProxyType        # the flat fact (see rules/fields.py), money in minor units
    invoices: tuple                 # InvoiceState, open and settled, in due-date order
    as_of: dt.date
    customer_id: str
    collector: str | None
    last_reviewed_on: dt.date
    anchor_invoice: str | None
    unapplied_minor: int
    previous_as_of: dt.date | None
    previous_bucket: str | None
    previous_score: int | None
    pauses: tuple = field(default=())        # (invoice_id, reason)
    breaches: tuple = field(default=())      # (kind, id, breach date)
    dunning_state: tuple | None = None       # (stage, entered_on) kept by the ledger, or None (stateless)
    approved: tuple = (None, None)           # (limit minor units, terms days) approved on the credit file
    grant: tuple | None = None               # (limit minor units, last day or None, granted by) in place of the policy's
    applied_later: tuple = ()       # ((kind, id, dated), invoice_id, minor, day): unapplied cash applied to a later invoice
    actions_taken: tuple | None = None       # ((type, stage, due_on, open), ...) already created, or None
    legal: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))   # invoice → (case id, status)


def _full_years(start: dt.date, end: dt.date) -> int:
    years = end.year - start.year - ((end.month, end.day) < (start.month, start.day))
    return max(0, years)


def build_facts(case: dict, policy, as_of: dt.date, order_amount_minor: int | None = None,
                order_id: str | None = None) -> Facts:
    customer = case["customer"]
    tolerance = policy.dunning.promise_tolerance_days
    invoices = sorted((i for i in case["invoices"] if i["issued_on"] <= as_of),
                      key=lambda i: (i["due_on"], i["issued_on"], i["id"]))
    open_minor = {i["id"]: i["amount_minor"] for i in invoices}
    settled_on: dict[str, dt.date] = {}
    allocations: list[tuple[str, int, dt.date]] = []     # payments only: (invoice, minor, date)

    def reduce(invoice_id, amount, day, is_payment):
        take = min(amount, open_minor[invoice_id])
        if take > 0:
            open_minor[invoice_id] -= take
            if is_payment:
                allocations.append((invoice_id, take, day))
            if open_minor[invoice_id] == 0:
                settled_on[invoice_id] = day
        return amount - take

    # in date order: an invoice's issue (first on its day), credit notes, payments
    items = [(i["issued_on"], -1, n, i, None) for n, i in enumerate(invoices)]
    items += [(c["issued_on"], 0, n, c, False) for n, c in enumerate(case["credit_notes"]) if c["issued_on"] <= as_of]
    items += [(p["paid_on"], 1, n, p, True) for n, p in enumerate(case["payments"]) if p["paid_on"] <= as_of]
    pool: list[list] = []           # unapplied cash and credit, oldest first: [minor, is_payment, source]
    applied_later: list[tuple] = []  # (source, invoice, minor, day): unapplied cash applied once its invoice existed
    for day, order, n, item, is_payment in sorted(items, key=lambda t: t[:3]):
        if order < 0:                               # a new invoice: unapplied cash pays the oldest open first
            for entry in pool:
                for inv in invoices:
                    if entry[0] <= 0:
                        break
                    if inv["issued_on"] <= day and open_minor[inv["id"]] > 0:
                        rest = reduce(inv["id"], entry[0], day, entry[1])
                        applied_later.append((entry[2], inv["id"], entry[0] - rest, day))
                        entry[0] = rest
            pool = [entry for entry in pool if entry[0] > 0]
            continue
        rest = item["amount_minor"]
        target = item.get("invoice_id")
        if target is not None and target in open_minor:
            rest = reduce(target, rest, day, is_payment)
        for inv in invoices:                       # unallocated cash and overpayment: oldest first
            if rest <= 0:
                break
            if inv["issued_on"] <= day:
                rest = reduce(inv["id"], rest, day, is_payment)
        if rest > 0:
            source = item["id"] or (f"payment{n}" if is_payment else f"credit_note{n}")
            pool.append([rest, is_payment, ("payment" if is_payment else "credit_note", source, day)])
    unapplied = sum(entry[0] for entry in pool)

    legal = _legal_invoices(case.get("legal_cases") or (), as_of)
    disputed = {d["invoice_id"] for d in case["disputes"]
                if d["opened_on"] <= as_of and (d["resolved_on"] is None or d["resolved_on"] > as_of)}

    def paid_between(invoice_ids, start, end) -> int:
        return sum(a for inv, a, day in allocations if start <= day <= end and (invoice_ids is None or inv in invoice_ids))

    def received_between(start, end) -> int:
        return sum(p["amount_minor"] for p in case["payments"] if start <= p["paid_on"] <= end)

    # promises to pay: open (pauses), kept, or broken (resumes collection, counts against the score). A promise
    # is kept by the cash received from the day it was made to its date + tolerance, whatever invoice that cash
    # was allocated to (docs/dunning.md): a customer who paid what was promised kept the promise.
    grace = tolerance or 0
    promise_paused: set = set()
    broken_promises, breaches = 0, []
    overdue_ids = {i["id"] for i in invoices if i["due_on"] < as_of}
    for n, p in enumerate(sorted(case["promises"], key=lambda p: (p["made_on"], p["promised_on"]))):
        if p["made_on"] > as_of:
            continue
        scope = {p["invoice_id"]} if p["invoice_id"] else None
        deadline = p["promised_on"] + dt.timedelta(days=grace)
        kept = received_between(p["made_on"], min(deadline, as_of)) >= p["amount_minor"]
        if kept:
            continue
        if as_of <= deadline:
            if tolerance is not None:
                promise_paused |= scope if scope else overdue_ids
        else:
            broken_promises += 1
            breaches.append(("promise", p["id"] or f"promise{n}", deadline + dt.timedelta(days=1)))

    plan_paused: set = set()
    kept_plans = 0
    for plan in case["instalment_plans"]:
        if plan["agreed_on"] > as_of:
            continue
        scope = set(plan["invoice_ids"])
        required, missed_on = 0, None
        for inst in sorted(plan["instalments"], key=lambda x: x["due_on"]):
            required += inst["amount_minor"]
            if inst["due_on"] >= as_of:
                break
            if paid_between(scope, plan["agreed_on"], inst["due_on"]) < required:
                missed_on = inst["due_on"] + dt.timedelta(days=1)
                break
        if missed_on is None:
            kept_plans += 1
            plan_paused |= scope
        else:
            broken_promises += 1
            breaches.append(("instalment_plan", plan["id"], missed_on))

    previous = case.get("previous")
    prev_as_of = previous["as_of"] if previous else None
    # what happened "since the previous evaluation" by the day (breaches, invoices entering a bucket) counts
    # from the day before when that evaluation was today's: a second decision of the day sees the same days
    prev_day = prev_as_of if prev_as_of is not None and prev_as_of != as_of else as_of - dt.timedelta(days=1)
    buckets = policy.band_classes["aging_bucket"].bands

    def bucket_at(days):
        return find_band(buckets, max(0, days)).value

    states, pauses = [], []
    entering = {"medium": 0, "long": 0}
    for inv in invoices:
        days = (as_of - inv["due_on"]).days
        is_open = open_minor[inv["id"]] > 0
        reason = None
        if is_open and days > 0:
            if inv["id"] in legal:
                reason = "legal_case"
            elif inv["id"] in disputed and policy.dunning.pause_disputed:
                reason = "dispute"
            elif inv["id"] in promise_paused:
                reason = "promise"
            elif inv["id"] in plan_paused and policy.dunning.pause_instalment_plans:
                reason = "instalment_plan"
            if reason:
                pauses.append((inv["id"], reason))
            now_bucket, then_bucket = bucket_at(days), bucket_at((prev_day - inv["due_on"]).days)
            if now_bucket != then_bucket and now_bucket in entering:
                entering[now_bucket] += 1
        states.append(InvoiceState(inv["id"], inv["amount_minor"], open_minor[inv["id"]], inv["issued_on"],
                                   inv["due_on"], days, inv["id"] in disputed, reason, settled_on.get(inv["id"])))

    open_states = [s for s in states if s.open_minor > 0]
    overdue = [s for s in open_states if s.days_overdue > 0]
    collectable = [s for s in overdue if s.paused is None]
    anchor = max(collectable, key=lambda s: (s.days_overdue, -s.due_on.toordinal()), default=None)
    paid_ids = {a[0] for a in allocations}
    settled = [s for s in states if s.settled_on is not None and s.id in paid_ids]
    on_time = sum(1 for s in settled if s.settled_on <= s.due_on)
    late_days = [max(0, (s.settled_on - s.due_on).days) for s in settled]
    reserved = sum(r["amount_minor"] for r in case["reservations"] if r["order_id"] != order_id)
    outstanding = sum(s.open_minor for s in open_states)
    arrears = case["arrears_reason"] or customer["arrears_reason"] or policy.content["categories"]["arrears_reason"][0]
    score_manual = customer["credit_score"] is not None
    since = customer["since"]
    # fields the scorecard and classification fill in are set by the evaluator
    fact = {
        "t": 1,
        "customer_type": customer["type"], "industry": customer["industry"], "region": customer["region"],
        "company_size": customer["size"], "arrears_reason": arrears,
        "deal_type": customer["deal_type"] or policy.content["categories"]["deal_type"][0],
        "customer_age_days": max(0, (as_of - since).days), "years_as_customer": _full_years(since, as_of),
        "credit_score": customer["credit_score"] if score_manual else 0, "manual_score": score_manual,
        "has_external_rating": customer["external_rating"] is not None,
        "external_rating": customer["external_rating"] or 0,
        "has_collector": bool(customer["collector"]),
        "outstanding": outstanding, "overdue_amount": sum(s.open_minor for s in overdue),
        "reserved": reserved, "exposure": outstanding + reserved,
        "open_invoice_count": len(open_states), "overdue_invoice_count": len(overdue),
        "max_days_overdue": max((s.days_overdue for s in overdue), default=0),
        "collectable_days_overdue": anchor.days_overdue if anchor else 0,
        "collectable_overdue_amount": sum(s.open_minor for s in collectable),
        "disputed_invoice_count": sum(1 for s in open_states if s.disputed),
        "paused_invoice_count": len(pauses),
        "open_promise_count": len(promise_paused & {s.id for s in open_states}),
        "broken_promises": broken_promises,
        "new_broken_promises": sum(1 for _, _, day in breaches if day > prev_day),
        "kept_instalment_plans": kept_plans,
        "has_payment_history": bool(settled),
        "on_time_ratio": on_time * 10000 // len(settled) if settled else 0,     # rounded down
        "avg_days_late": (sum(late_days) * 2 + len(late_days)) // (2 * len(late_days)) if late_days else 0,
        "invoices_entering_medium": entering["medium"], "invoices_entering_long": entering["long"],
        "aging_worsened": False, "score_drop": 0,
        "max_invoice_terms_days": max(((s.due_on - s.issued_on).days for s in open_states), default=0),
        "has_order": order_amount_minor is not None, "order_amount": order_amount_minor or 0,
    }
    return Facts(MappingProxyType(fact), tuple(states), as_of, customer["id"], customer["collector"],
                 customer["last_reviewed_on"] or since, anchor.id if anchor else None, unapplied,
                 prev_as_of, previous["aging_bucket"] if previous else None,
                 previous["credit_score"] if previous else None, tuple(pauses), tuple(breaches),
                 (case["dunning"]["stage"], case["dunning"]["entered_on"]) if case.get("dunning") else None,
                 (customer.get("approved_limit_minor"), customer.get("approved_terms_days")),
                 _grant(case.get("grant")), tuple(applied_later), _actions_taken(case.get("actions_taken")),
                 MappingProxyType(legal))


# a legal case's closing statuses; a written-off one keeps its invoices with the legal team (账销案存)
LEGAL_CLOSED = ("recovered", "settled", "withdrawn", "written_off")


def _legal_invoices(cases, as_of: dt.date) -> dict:
    """invoice id → (case id, status) of the legal cases holding it on as_of: from the day after the case
    opened (the referral's own day decides as before it, so a same-day rerun sees what the first run saw)
    until the day it closed, for ever when written off."""
    out: dict = {}
    for c in cases:
        if c["opened_on"] < as_of and (c["closed_on"] is None or c["closed_on"] > as_of
                                       or c["status"] == "written_off"):
            for invoice_id in c["invoice_ids"]:
                out.setdefault(invoice_id, (c["id"], c["status"]))
    return out


def _grant(grant: dict | None) -> tuple | None:
    return None if grant is None else (grant["limit_minor"], grant["until"], grant["granted_by"])


def _actions_taken(taken: list | None) -> tuple | None:
    if taken is None:
        return None
    return tuple((a["type"], a["stage"], a["due_on"], a["open"]) for a in taken)
