"""A sample document of each kind: what check_templates renders every template against, and what a
reviewer previews (`python -m api.documents.preview`)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from .context import (
    STATEMENT,
    Contact,
    Creditor,
    DocumentContext,
    DocumentSettings,
    LawFirm,
    build_context,
    build_statement_context,
)

AS_OF = dt.date(2026, 12, 15)
SETTINGS = DocumentSettings(
    creditor=Creditor(
        name="华东精密机械有限公司",
        contact=Contact(
            person="王会计",
            email="ar@huadong-jixie.example",
            phone="021-5555 0100",
            address="上海市浦东新区张江路 100 号",
        ),
        bank_name="中国工商银行上海张江支行",
        bank_account="1001 2345 6789 0123 456",
    ),
    law_firm=LawFirm(
        name="上海明诚律师事务所",
        lawyer="李明律师",
        contact=Contact(phone="021-5555 0200", address="上海市黄浦区中山东一路 18 号"),
    ),
)
CUSTOMER = SimpleNamespace(id="C-2002", name="杭州远航贸易有限公司")
CONTACT = Contact(
    person="张经理", email="zhang@yuanhang.example", phone="13800000000", address="浙江省杭州市西湖区文三路 200 号"
)
INVOICES = (
    SimpleNamespace(
        id="INV-1001",
        amount_minor=10_000_000,
        open_minor=10_000_000,
        issued_on=dt.date(2026, 8, 1),
        due_on=dt.date(2026, 8, 31),
        paused=None,
    ),  # 106 days overdue
    SimpleNamespace(
        id="INV-1002",
        amount_minor=5_000_000,
        open_minor=2_050_050,
        issued_on=dt.date(2026, 10, 10),
        due_on=dt.date(2026, 11, 9),
        paused=None,
    ),  # 36 days, part paid
    SimpleNamespace(
        id="INV-1003",
        amount_minor=1_200_000,
        open_minor=1_200_000,
        issued_on=dt.date(2026, 11, 20),
        due_on=dt.date(2026, 12, 18),
        paused=None,
    ),  # due in 3 days
)
_ACTIONS = {
    "payment_reminder": ("payment_reminder", "email", 0, "INV-1003"),
    "overdue_reminder": ("email_reminder", "email", 1, "INV-1001"),
    "written_demand": ("written_demand", "letter", 2, "INV-1001"),
    "lawyer_letter": ("lawyer_letter", "lawyer", 2, "INV-1001"),
}


def sample_action(kind: str):
    type_, channel, stage, invoice = _ACTIONS[kind]
    amount = next(i.open_minor for i in INVOICES if i.id == invoice)
    return SimpleNamespace(
        id=42,
        customer_id=CUSTOMER.id,
        invoice_id=invoice,
        type=type_,
        channel=channel,
        owner="automated",
        stage=stage,
        due_on=AS_OF,
        amount_minor=amount,
    )


SAMPLE_STATEMENT = {
    "customer": {"id": CUSTOMER.id, "name": CUSTOMER.name},
    "from": "2026-11-01",
    "to": "2026-11-30",
    "currency": "CNY",
    "opening_balance": "150000.00",
    "lines": [
        {
            "date": "2026-11-05",
            "type": "payment",
            "reference": "PAY-77",
            "invoice_id": "INV-1002",
            "due_on": None,
            "debit": "0.00",
            "credit": "29499.50",
            "balance": "120500.50",
        },
        {
            "date": "2026-11-20",
            "type": "invoice",
            "reference": "INV-1003",
            "invoice_id": None,
            "due_on": "2026-12-18",
            "debit": "12000.00",
            "credit": "0.00",
            "balance": "132500.50",
        },
    ],
    "totals": {"invoices": "12000.00", "credit_notes": "0.00", "payments": "29499.50"},
    "closing_balance": "132500.50",
    "open_invoices": [
        {
            "invoice_id": "INV-1001",
            "issued_on": "2026-08-01",
            "due_on": "2026-08-31",
            "amount": "100000.00",
            "open_balance": "100000.00",
            "days_overdue": 91,
        },
        {
            "invoice_id": "INV-1002",
            "issued_on": "2026-10-10",
            "due_on": "2026-11-09",
            "amount": "50000.00",
            "open_balance": "20500.50",
            "days_overdue": 21,
        },
        {
            "invoice_id": "INV-1003",
            "issued_on": "2026-11-20",
            "due_on": "2026-12-18",
            "amount": "12000.00",
            "open_balance": "12000.00",
            "days_overdue": -18,
        },
    ],
    "reconciliation": {"open_invoices_total": "132500.50", "unapplied": "0.00", "difference": "0.00"},
}


def sample_context(kind: str) -> DocumentContext:
    if kind == STATEMENT:
        return build_statement_context(SAMPLE_STATEMENT, settings=SETTINGS, as_of=dt.date(2026, 12, 1), contact=CONTACT)
    return build_context(
        sample_action(kind),
        CUSTOMER,
        INVOICES,
        settings=SETTINGS,
        as_of=AS_OF,
        currency="CNY",
        contact=CONTACT,
        interest_minor={"INV-1001": 505_000, "INV-1002": 31_776},
    )
