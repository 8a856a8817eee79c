"""The document context: everything a template may read, as typed immutable records.

Money is integer minor units (fen) with the context's currency; templates format it with the `money`
filter. The field names of these records are the template language: `check_templates` checks templates
against them, so renaming a field is a breaking change for every template folder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .money import currency_exponent, to_minor

from .errors import DocumentError

# the action types that speak to the customer, and the document each one sends
ACTION_DOCUMENTS: Mapping[str, str] = {
    "payment_reminder": "payment_reminder",  # 付款提醒, before and on the due date (stage 0)
    "email_reminder": "overdue_reminder",  # 初级催收 e-mail
    "sms_reminder": "overdue_reminder",  # 初级催收 SMS (its `sms` part)
    "written_demand": "written_demand",  # 书面催款通知
    "lawyer_letter": "lawyer_letter",  # 律师函
}
STATEMENT = "statement"  # 对账单: from the monthly statement job, not an action
KINDS = ("payment_reminder", "overdue_reminder", "written_demand", "lawyer_letter", STATEMENT)
# demands list only what is overdue and collectable; reminders and statements list what they are about
_DEMANDS = {"overdue_reminder", "written_demand", "lawyer_letter"}


def document_kind(action_type: str) -> str | None:
    """The document an action type sends, or None for actions no customer reads (calls, visits, litigation)."""
    return ACTION_DOCUMENTS.get(action_type)


# ---------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Contact:
    """How to reach a party; every part is optional (templates test before printing)."""

    person: str | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class Creditor:
    """Our company (债权人), from configuration; bank details tell the customer where to pay."""

    name: str
    contact: Contact = Contact()
    bank_name: str | None = None
    bank_account: str | None = None
    account_name: str | None = None  # 户名, when it differs from `name`


@dataclass(frozen=True)
class LawFirm:
    """The firm that issues a lawyer's letter (律师函) on the creditor's behalf."""

    name: str
    lawyer: str
    contact: Contact = Contact()


@dataclass(frozen=True)
class CustomerParty:
    id: str
    name: str
    contact: Contact = Contact()


@dataclass(frozen=True)
class InvoiceLine:
    """One invoice as the document shows it; days_overdue = as_of − due_on (negative: not yet due)."""

    invoice_id: str
    issued_on: dt.date | None
    due_on: dt.date
    amount_minor: int  # the invoice's original amount
    open_minor: int  # what is still owed on it
    days_overdue: int
    interest_minor: int = 0  # late interest (逾期罚息) to date, when the caller computed it

    @property
    def overdue(self) -> bool:
        return self.days_overdue > 0


@dataclass(frozen=True)
class StatementLine:
    date: dt.date
    type: str  # invoice, credit_note, payment
    reference: str
    invoice_id: str | None
    due_on: dt.date | None
    debit_minor: int
    credit_minor: int
    balance_minor: int


@dataclass(frozen=True)
class Statement:
    """A statement of account (对账单) for a period: api.reports.statement's figures in minor units."""

    period_start: dt.date
    period_end: dt.date
    opening_minor: int
    lines: tuple[StatementLine, ...]
    invoices_minor: int
    credit_notes_minor: int
    payments_minor: int
    closing_minor: int
    unapplied_minor: int


@dataclass(frozen=True)
class DocumentContext:
    """What one document says. Built by build_context / build_statement_context, never by templates."""

    kind: str  # one of KINDS
    action_type: str  # the action's type ('statement' for a statement)
    action_id: int | None
    reference: str  # the document's number, stable for the action (printed, cited back)
    channel: str
    stage: int
    as_of: dt.date
    currency: str
    creditor: Creditor
    customer: CustomerParty
    invoice_id: str | None  # the invoice the action is about (the anchor, or the reminded invoice)
    invoices: tuple[InvoiceLine, ...]
    total_open_minor: int  # Σ open_minor of `invoices`
    total_interest_minor: int  # Σ interest_minor of `invoices`
    total_due_minor: int  # total_open_minor + total_interest_minor
    max_days_overdue: int
    deadline: dt.date | None  # pay by (还款期限); a reminder's is its invoice's due date
    law_firm: LawFirm | None = None
    statement: Statement | None = None

    def template_vars(self) -> dict[str, Any]:
        """Top-level template names: the fields themselves (nested records stay objects)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


TEMPLATE_NAMES = frozenset(f.name for f in dataclasses.fields(DocumentContext))


@dataclass(frozen=True)
class DocumentSettings:
    """Configuration of the documents: who writes them and the deadlines they set.

    deadline_days: days from as_of a demand gives the customer to pay, per document kind."""

    creditor: Creditor
    law_firm: LawFirm | None = None
    deadline_days: Mapping[str, int] = dataclasses.field(
        default_factory=lambda: {"overdue_reminder": 7, "written_demand": 7, "lawyer_letter": 7}
    )
    default_locale: str = "zh_CN"

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> DocumentSettings:
        """From configuration, e.g. {"creditor": {"name": …, "address": …, "bank_name": …},
        "law_firm": {"name": …, "lawyer": …}, "deadline_days": {"written_demand": 10}, "default_locale": "en"}."""

        def contact(m: Mapping) -> Contact:
            return Contact(**{k: m.get(k) for k in ("person", "email", "phone", "address")})

        c = config.get("creditor") or {}
        if not c.get("name"):
            raise DocumentError("E_DOCUMENT_CONFIG", "documents.creditor.name is required")
        creditor = Creditor(
            name=c["name"],
            contact=contact(c),
            bank_name=c.get("bank_name"),
            bank_account=c.get("bank_account"),
            account_name=c.get("account_name"),
        )
        law_firm = None
        if lf := config.get("law_firm"):
            if not lf.get("name") or not lf.get("lawyer"):
                raise DocumentError("E_DOCUMENT_CONFIG", "documents.law_firm needs name and lawyer")
            law_firm = LawFirm(name=lf["name"], lawyer=lf["lawyer"], contact=contact(lf))
        days = dict(cls.__dataclass_fields__["deadline_days"].default_factory())
        for kind, n in (config.get("deadline_days") or {}).items():
            if kind not in KINDS or type(n) is not int or n < 0:
                raise DocumentError(
                    "E_DOCUMENT_CONFIG",
                    f"documents.deadline_days.{kind}: a kind of {KINDS} and a whole number of days ≥ 0",
                )
            days[kind] = n
        return cls(
            creditor=creditor,
            law_firm=law_firm,
            deadline_days=days,
            default_locale=config.get("default_locale", "zh_CN"),
        )


# ---------------------------------------------------------------------------------------- builders
class ActionLike(Protocol):
    """An `actions` row (api.db.Action) or anything with its fields."""

    id: int | None
    customer_id: str
    invoice_id: str
    type: str
    channel: str
    stage: int
    due_on: dt.date
    amount_minor: int


class CustomerLike(Protocol):
    id: str
    name: str


class InvoiceLike(Protocol):
    """engine.facts.InvoiceState, or anything with these fields (paused / disputed optional)."""

    id: str
    amount_minor: int
    open_minor: int
    issued_on: dt.date | None
    due_on: dt.date


def reference_for(action: ActionLike) -> str:
    """Stable per action: the fields the actions table is unique on, not the database id, so a
    document re-rendered (or rendered on a restored database) carries the same number."""
    return f"{action.customer_id}-{action.type}-{action.stage}-{action.due_on:%Y%m%d}-{action.invoice_id}"


def _check_minor(name: str, value) -> int:
    if type(value) is not int:  # bool and float are refused: money is never a float
        raise DocumentError("E_DOCUMENT_INPUT", f"{name} must be integer minor units, not {type(value).__name__}")
    return value


def build_context(
    action: ActionLike,
    customer: CustomerLike,
    invoices: Iterable[InvoiceLike],
    *,
    settings: DocumentSettings,
    as_of: dt.date,
    currency: str,
    contact: Contact | None = None,
    interest_minor: Mapping[str, int] | None = None,
) -> DocumentContext:
    """The context of the document `action` sends.

    `invoices` are the customer's invoices as of `as_of` (settled ones are skipped). A reminder lists
    the invoice it reminds about; a demand lists the overdue, open invoices whose collection is not
    paused (disputed, promised, in a kept instalment plan), most overdue first. `interest_minor` maps
    invoice ids to their late interest to date. Raises DocumentError when the action sends no document,
    a lawyer's letter has no law firm configured, or nothing is left to demand."""
    kind = document_kind(action.type)
    if kind is None:
        raise DocumentError("E_DOCUMENT_KIND", f"action type '{action.type}' sends no document to the customer")
    if kind == "lawyer_letter" and settings.law_firm is None:
        raise DocumentError("E_DOCUMENT_CONFIG", "a lawyer's letter needs documents.law_firm configured")
    currency_exponent(currency)  # an unknown currency fails here, not half way through a template
    interest_minor = interest_minor or {}
    lines = []
    for inv in invoices:
        open_minor = _check_minor(f"invoice {inv.id} open_minor", inv.open_minor)
        if open_minor <= 0:
            continue
        if kind == "payment_reminder" and inv.id != action.invoice_id:
            continue
        days = (as_of - inv.due_on).days
        if kind in _DEMANDS and (days <= 0 or getattr(inv, "paused", None) or getattr(inv, "disputed", False)):
            continue
        lines.append(
            InvoiceLine(
                invoice_id=inv.id,
                issued_on=inv.issued_on,
                due_on=inv.due_on,
                amount_minor=_check_minor(f"invoice {inv.id} amount_minor", inv.amount_minor),
                open_minor=open_minor,
                days_overdue=days,
                interest_minor=_check_minor(f"interest of {inv.id}", interest_minor.get(inv.id, 0)),
            )
        )
    if not lines:
        raise DocumentError("E_DOCUMENT_NOTHING_DUE", f"no open invoice for a {kind} to customer '{customer.id}'")
    lines.sort(key=lambda line: (-line.days_overdue, line.due_on, line.invoice_id))
    if kind == "payment_reminder":
        deadline = lines[0].due_on
    else:
        deadline = as_of + dt.timedelta(days=settings.deadline_days.get(kind, 7))
    total_open = sum(line.open_minor for line in lines)
    total_interest = sum(line.interest_minor for line in lines)
    return DocumentContext(
        kind=kind,
        action_type=action.type,
        action_id=getattr(action, "id", None),
        reference=reference_for(action),
        channel=action.channel,
        stage=action.stage,
        as_of=as_of,
        currency=currency,
        creditor=settings.creditor,
        customer=CustomerParty(id=customer.id, name=customer.name or customer.id, contact=contact or Contact()),
        invoice_id=action.invoice_id,
        invoices=tuple(lines),
        total_open_minor=total_open,
        total_interest_minor=total_interest,
        total_due_minor=total_open + total_interest,
        max_days_overdue=max(line.days_overdue for line in lines),
        deadline=deadline,
        law_firm=settings.law_firm if kind == "lawyer_letter" else None,
    )


def build_statement_context(
    statement: Mapping[str, Any], *, settings: DocumentSettings, as_of: dt.date, contact: Contact | None = None
) -> DocumentContext:
    """The context of a statement of account from api.reports.statement()'s result (decimal strings)."""
    currency = statement["currency"]
    exp = currency_exponent(currency)

    def m(value: str) -> int:
        return to_minor(value, exp)

    def day(value: str | None) -> dt.date | None:
        return dt.date.fromisoformat(value) if value else None

    end = dt.date.fromisoformat(statement["to"])
    lines = tuple(
        StatementLine(
            date=day(ln["date"]),
            type=ln["type"],
            reference=ln["reference"],
            invoice_id=ln["invoice_id"],
            due_on=day(ln["due_on"]),
            debit_minor=m(ln["debit"]),
            credit_minor=m(ln["credit"]),
            balance_minor=m(ln["balance"]),
        )
        for ln in statement["lines"]
    )
    invoices = tuple(
        InvoiceLine(
            invoice_id=i["invoice_id"],
            issued_on=day(i["issued_on"]),
            due_on=day(i["due_on"]),
            amount_minor=m(i["amount"]),
            open_minor=m(i["open_balance"]),
            days_overdue=i["days_overdue"],
        )
        for i in statement["open_invoices"]
    )
    totals = statement["totals"]
    st = Statement(
        period_start=dt.date.fromisoformat(statement["from"]),
        period_end=end,
        opening_minor=m(statement["opening_balance"]),
        lines=lines,
        invoices_minor=m(totals["invoices"]),
        credit_notes_minor=m(totals["credit_notes"]),
        payments_minor=m(totals["payments"]),
        closing_minor=m(statement["closing_balance"]),
        unapplied_minor=m(statement["reconciliation"]["unapplied"]),
    )
    total_open = sum(i.open_minor for i in invoices)
    cust = statement["customer"]
    return DocumentContext(
        kind=STATEMENT,
        action_type=STATEMENT,
        action_id=None,
        reference=f"{cust['id']}-statement-{st.period_start:%Y%m%d}-{end:%Y%m%d}",
        channel="email",
        stage=0,
        as_of=as_of,
        currency=currency,
        creditor=settings.creditor,
        customer=CustomerParty(id=cust["id"], name=cust.get("name") or cust["id"], contact=contact or Contact()),
        invoice_id=None,
        invoices=invoices,
        total_open_minor=total_open,
        total_interest_minor=0,
        total_due_minor=total_open,
        max_days_overdue=max((i.days_overdue for i in invoices), default=0),
        deadline=None,
        statement=st,
    )
