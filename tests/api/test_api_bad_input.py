"""Bad input gets one JSON error shape {code, message, errors: {field: [messages]}}, a 4xx that
fits (never a 5xx) and writes nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from api_harness import day, uid


@pytest.fixture(scope="session")
def target(shared):
    """A customer with an invoice and a dispute, and a second customer with an invoice of its own."""
    cid = shared.customer()
    inv = shared.invoice(cid, "1000.00", due=-5)
    ids = {k: uid(k) for k in ("D", "PAY", "CN", "PR", "PL")}
    shared.event(cid, "dispute_opened", {"id": ids["D"], "invoice_id": inv, "opened_on": day(-1)})
    shared.event(cid, "payment_received", {"id": ids["PAY"], "amount": "1.00", "paid_on": day(0)})
    shared.event(cid, "credit_note", {"id": ids["CN"], "invoice_id": inv, "amount": "1.00", "issued_on": day(0)})
    shared.event(cid, "promise_to_pay", {"id": ids["PR"], "amount": "1.00", "made_on": day(0), "promised_on": day(3)})
    shared.event(
        cid,
        "instalment_plan_agreed",
        {
            "id": ids["PL"],
            "invoice_ids": [inv],
            "agreed_on": day(0),
            "instalments": [{"due_on": day(30), "amount": "998.00"}],
        },
    )
    other = shared.customer()
    other_inv = shared.invoice(other, "1000.00", due=-5)
    return SimpleNamespace(
        cid=cid,
        inv=inv,
        dispute=ids["D"],
        payment=ids["PAY"],
        credit_note=ids["CN"],
        promise=ids["PR"],
        plan=ids["PL"],
        other_inv=other_inv,
    )


@dataclass
class Bad:
    id: str
    method: str
    path: str
    body: object = None  # JSON-encoded unless bytes
    status: int = 422
    code: str = "E_INPUT_INVALID"
    fields: tuple = ()  # keys that must be in errors
    role: str = "admin"
    headers: dict = field(default_factory=dict)


def cc(**over):
    body = {"customer_id": "{cid}", "order_id": "ORD-bad", "amount": "100.00", "currency": "CNY", "reserve": True}
    body.update(over)
    return {k: v for k, v in body.items() if v is not ...}


def ev(type_, data, **over):
    body = {"event_id": "{eid}", "type": type_, "customer_id": "{cid}", "data": data}
    body.update(over)
    return {k: v for k, v in body.items() if v is not ...}


def inv(**over):
    data = {"id": "{new_inv}", "amount": "100.00", "currency": "CNY", "issued_on": day(-1), "due_on": day(29)}
    data.update(over)
    return {k: v for k, v in data.items() if v is not ...}


CUSTOMER = {"type": "enterprise", "industry": "services", "region": "local", "size": "large", "since": "2015-01-01"}
CASE = {
    "customer": {"id": "S-1", **CUSTOMER},
    "invoices": [{"id": "I1", "amount": "100.00", "currency": "CNY", "issued_on": day(-40), "due_on": day(-10)}],
}


def case(**over):
    out = json.loads(json.dumps(CASE))
    for k, v in over.items():
        if k.startswith("invoice_"):
            out["invoices"][0][k[len("invoice_") :]] = v
        else:
            out[k] = v
    return out


HUGE = "1" + "0" * 30
BAD = [
    # credit checks
    Bad("cc amount 3 decimals", "POST", "/v1/credit-checks", cc(amount="100.001"), fields=("amount",)),
    Bad(
        "cc amount 3 decimals as number",
        "POST",
        "/v1/credit-checks",
        b'{"customer_id": "{cid}", "order_id": "O-1", "amount": 100.001, "currency": "CNY"}',
        fields=("amount",),
    ),
    Bad("cc amount float-like exponent", "POST", "/v1/credit-checks", cc(amount="1e-3"), fields=("amount",)),
    Bad("cc currency USD", "POST", "/v1/credit-checks", cc(currency="USD"), fields=("currency",)),
    Bad("cc currency lowercase", "POST", "/v1/credit-checks", cc(currency="cny"), fields=("currency",)),
    Bad("cc negative amount", "POST", "/v1/credit-checks", cc(amount="-100.00"), fields=("amount",)),
    Bad("cc zero amount", "POST", "/v1/credit-checks", cc(amount="0.00"), fields=("amount",)),
    Bad("cc amount not a number", "POST", "/v1/credit-checks", cc(amount="lots"), fields=("amount",)),
    Bad("cc amount huge", "POST", "/v1/credit-checks", cc(amount=HUGE), fields=("amount",)),
    Bad("cc as_of impossible date", "POST", "/v1/credit-checks", cc(as_of="2026-02-30"), fields=("as_of",)),
    Bad("cc as_of words", "POST", "/v1/credit-checks", cc(as_of="yesterday"), fields=("as_of",)),
    Bad("cc expires_on bad", "POST", "/v1/credit-checks", cc(expires_on="15/01/2027"), fields=("expires_on",)),
    Bad("cc unknown field", "POST", "/v1/credit-checks", cc(colour="red"), fields=("colour",)),
    Bad("cc missing order_id", "POST", "/v1/credit-checks", cc(order_id=...), fields=("order_id",)),
    Bad("cc order_id too long", "POST", "/v1/credit-checks", cc(order_id="o" * 129), fields=("order_id",)),
    Bad("cc NUL in customer_id", "POST", "/v1/credit-checks", cc(customer_id="C\u0000x"), fields=("customer_id",)),
    Bad(
        "cc unknown customer",
        "POST",
        "/v1/credit-checks",
        cc(customer_id="nobody-at-all"),
        status=404,
        code="E_NOT_FOUND",
    ),
    Bad(
        "cc malformed JSON",
        "POST",
        "/v1/credit-checks",
        b'{"customer_id": "x", "amount": ',
        status=400,
        code="E_MALFORMED_JSON",
    ),
    Bad(
        "cc not UTF-8", "POST", "/v1/credit-checks", b'{"customer_id": "\xff\xfe"}', status=400, code="E_MALFORMED_JSON"
    ),
    Bad("cc empty body", "POST", "/v1/credit-checks", b"", status=400, code="E_BAD_REQUEST"),
    Bad("cc array body", "POST", "/v1/credit-checks", [1, 2], status=400, code="E_BAD_REQUEST"),
    # events
    Bad(
        "invoice amount 3 decimals",
        "POST",
        "/v1/events",
        ev("invoice_issued", inv(amount="10.005")),
        fields=("data.amount",),
    ),
    Bad(
        "invoice currency USD",
        "POST",
        "/v1/events",
        ev("invoice_issued", inv(currency="USD")),
        fields=("data.currency",),
    ),
    Bad("invoice negative", "POST", "/v1/events", ev("invoice_issued", inv(amount="-100.00")), fields=("data.amount",)),
    Bad("invoice zero", "POST", "/v1/events", ev("invoice_issued", inv(amount="0")), fields=("data.amount",)),
    Bad("invoice huge", "POST", "/v1/events", ev("invoice_issued", inv(amount=HUGE)), fields=("data.amount",)),
    Bad(
        "invoice due before issue",
        "POST",
        "/v1/events",
        ev("invoice_issued", inv(due_on=day(-2))),
        fields=("data.due_on",),
    ),
    Bad(
        "invoice impossible date",
        "POST",
        "/v1/events",
        ev("invoice_issued", inv(issued_on="2026-13-01")),
        fields=("data.issued_on",),
    ),
    Bad("invoice unknown field", "POST", "/v1/events", ev("invoice_issued", inv(vat="13%")), fields=("data.vat",)),
    Bad("invoice missing amount", "POST", "/v1/events", ev("invoice_issued", inv(amount=...)), fields=("data.amount",)),
    Bad(
        "invoice order_id not a string",
        "POST",
        "/v1/events",
        ev("invoice_issued", inv(order_id=5)),
        fields=("data.order_id",),
    ),
    Bad(
        "invoice order_id too long",
        "POST",
        "/v1/events",
        ev("invoice_issued", inv(order_id="o" * 129)),
        fields=("data.order_id",),
    ),
    Bad(
        "invoice id exists", "POST", "/v1/events", ev("invoice_issued", inv(id="{inv}")), status=409, code="E_CONFLICT"
    ),
    Bad(
        "invoice id of another customer",
        "POST",
        "/v1/events",
        ev("invoice_issued", inv(id="{other_inv}")),
        status=409,
        code="E_CONFLICT",
    ),
    Bad(
        "payment id exists",
        "POST",
        "/v1/events",
        ev("payment_received", {"id": "{payment}", "amount": "10.00", "paid_on": day(0)}),
        status=409,
        code="E_CONFLICT",
    ),
    Bad(
        "credit note id exists",
        "POST",
        "/v1/events",
        ev("credit_note", {"id": "{credit_note}", "invoice_id": "{inv}", "amount": "1.00", "issued_on": day(0)}),
        status=409,
        code="E_CONFLICT",
    ),
    Bad(
        "promise id exists",
        "POST",
        "/v1/events",
        ev("promise_to_pay", {"id": "{promise}", "amount": "1.00", "made_on": day(0), "promised_on": day(1)}),
        status=409,
        code="E_CONFLICT",
    ),
    Bad(
        "dispute id exists",
        "POST",
        "/v1/events",
        ev("dispute_opened", {"id": "{dispute}", "invoice_id": "{inv}", "opened_on": day(0)}),
        status=409,
        code="E_CONFLICT",
    ),
    Bad(
        "plan id exists",
        "POST",
        "/v1/events",
        ev(
            "instalment_plan_agreed",
            {
                "id": "{plan}",
                "invoice_ids": ["{inv}"],
                "agreed_on": day(0),
                "instalments": [{"due_on": day(5), "amount": "1.00"}],
            },
        ),
        status=409,
        code="E_CONFLICT",
    ),
    Bad(
        "payment to unknown invoice",
        "POST",
        "/v1/events",
        ev("payment_received", {"invoice_id": "INV-nope", "amount": "10.00", "paid_on": day(0)}),
        fields=("data.invoice_id",),
    ),
    Bad(
        "payment to another customer's invoice",
        "POST",
        "/v1/events",
        ev("payment_received", {"invoice_id": "{other_inv}", "amount": "10.00", "paid_on": day(0)}),
        fields=("data.invoice_id",),
    ),
    Bad(
        "payment 3 decimals",
        "POST",
        "/v1/events",
        ev("payment_received", {"invoice_id": "{inv}", "amount": "10.001", "paid_on": day(0)}),
        fields=("data.amount",),
    ),
    Bad(
        "payment currency USD",
        "POST",
        "/v1/events",
        ev("payment_received", {"amount": "10.00", "currency": "USD", "paid_on": day(0)}),
        fields=("data.currency",),
    ),
    Bad(
        "payment date unparseable",
        "POST",
        "/v1/events",
        ev("payment_received", {"amount": "10.00", "paid_on": "15/12/2026"}),
        fields=("data.paid_on",),
    ),
    Bad(
        "payment negative",
        "POST",
        "/v1/events",
        ev("payment_received", {"amount": "-10.00", "paid_on": day(0)}),
        fields=("data.amount",),
    ),
    Bad(
        "credit note unknown invoice",
        "POST",
        "/v1/events",
        ev("credit_note", {"invoice_id": "INV-nope", "amount": "10.00", "issued_on": day(0)}),
        fields=("data.invoice_id",),
    ),
    Bad(
        "promise before it was made",
        "POST",
        "/v1/events",
        ev("promise_to_pay", {"amount": "10.00", "made_on": day(0), "promised_on": day(-1)}),
        fields=("data.promised_on",),
    ),
    Bad(
        "dispute on unknown invoice",
        "POST",
        "/v1/events",
        ev("dispute_opened", {"invoice_id": "INV-nope", "opened_on": day(0)}),
        fields=("data.invoice_id",),
    ),
    Bad(
        "dispute_resolved unknown dispute",
        "POST",
        "/v1/events",
        ev("dispute_resolved", {"dispute_id": "D-nope", "resolved_on": day(0)}),
        fields=("data.dispute_id",),
    ),
    Bad(
        "dispute_resolved bad date",
        "POST",
        "/v1/events",
        ev("dispute_resolved", {"dispute_id": "{dispute}", "resolved_on": "soon"}),
        fields=("data.resolved_on",),
    ),
    Bad(
        "plan instalment 3 decimals",
        "POST",
        "/v1/events",
        ev(
            "instalment_plan_agreed",
            {
                "id": "P-bad",
                "invoice_ids": ["{inv}"],
                "agreed_on": day(0),
                "instalments": [{"due_on": day(5), "amount": "1.001"}],
            },
        ),
        fields=("data.instalments[0].amount",),
    ),
    Bad(
        "plan unknown invoice",
        "POST",
        "/v1/events",
        ev(
            "instalment_plan_agreed",
            {
                "id": "P-bad",
                "invoice_ids": ["INV-nope"],
                "agreed_on": day(0),
                "instalments": [{"due_on": day(5), "amount": "1.00"}],
            },
        ),
        fields=("data.invoice_ids[0]",),
    ),
    Bad(
        "arrears reason unknown",
        "POST",
        "/v1/events",
        ev("arrears_reason_recorded", {"reason": "lazy"}),
        fields=("data.reason",),
    ),
    Bad(
        "customer_updated unknown region",
        "POST",
        "/v1/events",
        ev("customer_updated", {"region": "mars"}),
        fields=("data.region",),
    ),
    Bad(
        "customer_updated unknown field",
        "POST",
        "/v1/events",
        ev("customer_updated", {"colour": "red"}),
        fields=("data.colour",),
    ),
    Bad(
        "customer_updated name too long",
        "POST",
        "/v1/events",
        ev("customer_updated", {"name": "n" * 257}),
        fields=("data.name",),
    ),
    Bad("event unknown type", "POST", "/v1/events", ev("invoice_paid", {}), fields=("type",)),
    Bad(
        "event unknown field",
        "POST",
        "/v1/events",
        ev("payment_received", {"amount": "1.00", "paid_on": day(0)}, source="erp"),
        fields=("source",),
    ),
    Bad("event data not an object", "POST", "/v1/events", ev("payment_received", [1, 2]), fields=("data",)),
    Bad("event missing data", "POST", "/v1/events", ev("payment_received", ...), fields=("data",)),
    Bad(
        "event as_of unparseable",
        "POST",
        "/v1/events",
        ev("payment_received", {"amount": "1.00", "paid_on": day(0)}, as_of="2026-12-32"),
        fields=("as_of",),
    ),
    Bad(
        "event empty id",
        "POST",
        "/v1/events",
        ev("payment_received", {"amount": "1.00", "paid_on": day(0)}, event_id=""),
        fields=("event_id",),
    ),
    Bad(
        "event NUL in event_id",
        "POST",
        "/v1/events",
        ev("payment_received", {"amount": "1.00", "paid_on": day(0)}, event_id="ev\u0000"),
        fields=("event_id",),
    ),
    Bad(
        "event unknown customer",
        "POST",
        "/v1/events",
        ev("payment_received", {"amount": "1.00", "paid_on": day(0)}, customer_id="nobody-at-all"),
        status=404,
        code="E_NOT_FOUND",
    ),
    Bad(
        "event malformed JSON",
        "POST",
        "/v1/events",
        b"{'event_id': 'single quotes'}",
        status=400,
        code="E_MALFORMED_JSON",
    ),
    # customers
    Bad(
        "customer impossible since",
        "PUT",
        "/v1/customers/{new_cid}",
        {**CUSTOMER, "since": "2015-02-29"},
        fields=("since",),
    ),
    Bad(
        "customer unknown region", "PUT", "/v1/customers/{new_cid}", {**CUSTOMER, "region": "mars"}, fields=("region",)
    ),
    Bad(
        "customer score out of range",
        "PUT",
        "/v1/customers/{new_cid}",
        {**CUSTOMER, "credit_score": 101},
        fields=("credit_score",),
    ),
    Bad(
        "customer score as string",
        "PUT",
        "/v1/customers/{new_cid}",
        {**CUSTOMER, "credit_score": "85"},
        fields=("credit_score",),
    ),
    Bad("customer unknown field", "PUT", "/v1/customers/{new_cid}", {**CUSTOMER, "vip": True}, fields=("vip",)),
    Bad(
        "customer missing type",
        "PUT",
        "/v1/customers/{new_cid}",
        {k: v for k, v in CUSTOMER.items() if k != "type"},
        fields=("type",),
    ),
    Bad("customer name too long", "PUT", "/v1/customers/{new_cid}", {**CUSTOMER, "name": "n" * 257}, fields=("name",)),
    Bad(
        "customer collector too long",
        "PUT",
        "/v1/customers/{new_cid}",
        {**CUSTOMER, "collector": "c" * 129},
        fields=("collector",),
    ),
    Bad("customer NUL in name", "PUT", "/v1/customers/{new_cid}", {**CUSTOMER, "name": "a\u0000b"}, fields=("name",)),
    Bad("customer id too long", "PUT", "/v1/customers/" + "C" * 129, CUSTOMER, fields=("id",)),
    Bad(
        "customer malformed JSON",
        "PUT",
        "/v1/customers/{new_cid}",
        b'{"type": "enterprise",}',
        status=400,
        code="E_MALFORMED_JSON",
    ),
    Bad("customer as_of unparseable", "GET", "/v1/customers/{cid}?as_of=2026-1-5", fields=("as_of",)),
    Bad("customer unknown", "GET", "/v1/customers/nobody-at-all", status=404, code="E_NOT_FOUND"),
    Bad("customer NUL in path", "GET", "/v1/customers/a%00b", status=404, code="E_NOT_FOUND"),
    Bad(
        "evaluate unknown customer", "POST", "/v1/customers/nobody-at-all/evaluate", {}, status=404, code="E_NOT_FOUND"
    ),
    Bad("evaluate customer as_of bad", "POST", "/v1/customers/{cid}/evaluate", {"as_of": "today"}, fields=("as_of",)),
    Bad("evaluate customer unknown field", "POST", "/v1/customers/{cid}/evaluate", {"when": day(0)}, fields=("when",)),
    # stateless evaluation
    Bad("stateless 3 decimals", "POST", "/v1/evaluate", case(invoice_amount="1.005"), fields=("invoices[0].amount",)),
    Bad(
        "stateless currency USD", "POST", "/v1/evaluate", case(invoice_currency="USD"), fields=("invoices[0].currency",)
    ),
    Bad(
        "stateless negative invoice",
        "POST",
        "/v1/evaluate",
        case(invoice_amount="-1.00"),
        fields=("invoices[0].amount",),
    ),
    Bad("stateless huge invoice", "POST", "/v1/evaluate", case(invoice_amount=HUGE), fields=("invoices[0].amount",)),
    Bad("stateless huge order", "POST", "/v1/evaluate", case(order_amount=HUGE), fields=("order_amount",)),
    Bad(
        "stateless bad date", "POST", "/v1/evaluate", case(invoice_due_on="2026-02-31"), fields=("invoices[0].due_on",)
    ),
    Bad("stateless as_of bad", "POST", "/v1/evaluate", case(as_of="2026/12/15"), fields=("as_of",)),
    Bad("stateless unknown field", "POST", "/v1/evaluate", case(notes="x"), fields=("notes",)),
    Bad("stateless missing customer", "POST", "/v1/evaluate", {"invoices": []}, fields=("customer",)),
    Bad("stateless order negative", "POST", "/v1/evaluate", case(order_amount="-5"), fields=("order_amount",)),
    # dates the calendar holds but arithmetic on them overflows (year 1, year 9999): refused, not a 500
    Bad("cc as_of year 1", "POST", "/v1/credit-checks", cc(as_of="0001-01-01"), fields=("as_of",)),
    Bad("cc as_of year 9999", "POST", "/v1/credit-checks", cc(as_of="9999-12-31"), fields=("as_of",)),
    Bad("cc expires_on year 9999", "POST", "/v1/credit-checks", cc(expires_on="9999-12-31"), fields=("expires_on",)),
    Bad(
        "event as_of year 1",
        "POST",
        "/v1/events",
        ev("payment_received", {"amount": "1.00", "paid_on": day(0)}, as_of="0001-01-01"),
        fields=("as_of",),
    ),
    Bad(
        "invoice due year 9999",
        "POST",
        "/v1/events",
        ev("invoice_issued", inv(due_on="9999-12-31")),
        fields=("data.due_on",),
    ),
    Bad(
        "payment paid year 1",
        "POST",
        "/v1/events",
        ev("payment_received", {"amount": "1.00", "paid_on": "0001-01-01"}),
        fields=("data.paid_on",),
    ),
    Bad(
        "plan instalment year 9999",
        "POST",
        "/v1/events",
        ev(
            "instalment_plan_agreed",
            {
                "id": "P-bad",
                "invoice_ids": ["{inv}"],
                "agreed_on": day(0),
                "instalments": [{"due_on": "9999-12-31", "amount": "1.00"}],
            },
        ),
        fields=("data.instalments[0].due_on",),
    ),
    Bad(
        "dispute resolved year 9999",
        "POST",
        "/v1/events",
        ev("dispute_resolved", {"dispute_id": "{dispute}", "resolved_on": "9999-12-31"}),
        fields=("data.resolved_on",),
    ),
    Bad(
        "customer since year 9999",
        "PUT",
        "/v1/customers/{new_cid}",
        {**CUSTOMER, "since": "9999-12-01"},
        fields=("since",),
    ),
    Bad(
        "customer_updated reviewed year 1",
        "POST",
        "/v1/events",
        ev("customer_updated", {"last_reviewed_on": "0001-01-01"}),
        fields=("data.last_reviewed_on",),
    ),
    Bad("customer as_of year 1", "GET", "/v1/customers/{cid}?as_of=0001-01-01", fields=("as_of",)),
    Bad(
        "evaluate customer as_of year 9999",
        "POST",
        "/v1/customers/{cid}/evaluate",
        {"as_of": "9999-12-31"},
        fields=("as_of",),
    ),
    Bad("stateless as_of year 9999", "POST", "/v1/evaluate", case(as_of="9999-12-31"), fields=("as_of",)),
    Bad(
        "stateless since year 9999",
        "POST",
        "/v1/evaluate",
        {**case(), "customer": {**CASE["customer"], "since": "9999-12-01"}},
        fields=("customer.since",),
    ),
    Bad(
        "stateless due year 1",
        "POST",
        "/v1/evaluate",
        case(invoice_issued_on="0001-01-01", invoice_due_on="0001-01-01"),
        fields=("invoices[0].issued_on", "invoices[0].due_on"),
    ),
    # the trail
    Bad("decisions limit 0", "GET", "/v1/decisions?limit=0", fields=("limit",)),
    Bad("decisions limit text", "GET", "/v1/decisions?limit=ten", fields=("limit",)),
    Bad("decisions since bad", "GET", "/v1/decisions?since=2026-99-01", fields=("since",)),
    Bad("decisions format xml", "GET", "/v1/decisions?format=xml", fields=("format",)),
    Bad("decisions unknown parameter", "GET", "/v1/decisions?sort=desc", fields=("sort",)),
    Bad("decisions garbage cursor", "GET", "/v1/decisions?cursor=not-a-cursor", fields=("cursor",)),
    Bad("decisions forged cursor", "GET", "/v1/decisions?cursor=MjAyNi0xMi0xNVQxMDowMDowMHwAAA==", fields=("cursor",)),
    Bad("decisions NUL in filter", "GET", "/v1/decisions?customer=a%00b", fields=("customer",)),
    Bad("decision unknown", "GET", "/v1/decisions/0123456789abcdef0123456789abcdef", status=404, code="E_NOT_FOUND"),
    Bad(
        "replay unknown",
        "POST",
        "/v1/decisions/0123456789abcdef0123456789abcdef/replay",
        status=404,
        code="E_NOT_FOUND",
    ),
    # actions
    Bad("actions status bogus", "GET", "/v1/actions?status=bogus", fields=("status",)),
    Bad("actions cursor text", "GET", "/v1/actions?cursor=abc", fields=("cursor",)),
    Bad("actions cursor huge", "GET", "/v1/actions?cursor=99999999999999999999999", fields=("cursor",)),
    Bad("actions cursor past int32", "GET", "/v1/actions?cursor=2147483648", fields=("cursor",)),
    Bad("action unknown", "POST", "/v1/actions/987654/complete", {"outcome": "sent"}, status=404, code="E_NOT_FOUND"),
    Bad(
        "action id huge",
        "POST",
        "/v1/actions/99999999999999999999999/complete",
        {"outcome": "sent"},
        status=404,
        code="E_NOT_FOUND",
    ),
    Bad(
        "action id past int32",
        "POST",
        "/v1/actions/2147483648/complete",
        {"outcome": "sent"},
        status=404,
        code="E_NOT_FOUND",
    ),
    Bad("action missing outcome", "POST", "/v1/actions/1/complete", {"note": "x"}, fields=("outcome",)),
    Bad(
        "action channel too long",
        "POST",
        "/v1/actions/1/complete",
        {"outcome": "sent", "channel": "c" * 33},
        fields=("channel",),
    ),
    # policies
    Bad("policy unknown version", "GET", "/v1/policies/" + "0" * 64, status=404, code="E_NOT_FOUND"),
    Bad("policy validate without text", "POST", "/v1/policies/validate", {"source": "x"}, fields=("text",)),
    Bad(
        "policy publish source too long",
        "POST",
        "/v1/policies",
        {"text": "policy: {}", "source": "s" * 513},
        fields=("source",),
    ),
    Bad("policy publish malformed JSON", "POST", "/v1/policies", b'{"text": "x"', status=400, code="E_MALFORMED_JSON"),
    Bad("policy publish text not a string", "POST", "/v1/policies", {"text": 42}, fields=("text",)),
    # routing
    Bad("unknown route", "GET", "/v1/nothing-here", status=404, code="E_NOT_FOUND"),
    Bad("wrong method", "PATCH", "/v1/credit-checks", {}, status=405, code="E_METHOD_NOT_ALLOWED"),
]


def _fill(value, t):
    subst = {
        "{cid}": t.cid,
        "{inv}": t.inv,
        "{other_inv}": t.other_inv,
        "{dispute}": t.dispute,
        "{payment}": t.payment,
        "{credit_note}": t.credit_note,
        "{promise}": t.promise,
        "{plan}": t.plan,
        "{eid}": uid("ev-bad"),
        "{new_inv}": uid("INV-bad"),
        "{new_cid}": uid("C-bad"),
    }
    if isinstance(value, str):
        for k, v in subst.items():
            value = value.replace(k, v)
        return value
    if isinstance(value, bytes):
        return _fill(value.decode("latin-1"), t).encode("latin-1")
    if isinstance(value, dict):
        return {k: _fill(v, t) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, t) for v in value]
    return value


def test_case_ids_are_unique():
    assert len({b.id for b in BAD}) == len(BAD)


@pytest.mark.parametrize("bad", BAD, ids=lambda b: b.id)
def test_bad_input(api, target, bad):
    path, body = _fill(bad.path, target), _fill(bad.body, target)
    kwargs = (
        {"data": body, "headers": {"Content-Type": "application/json"}}
        if isinstance(body, bytes)
        else ({"json": body} if body is not None else {})
    )
    before = api.counts()
    r = api.request(bad.method, path, bad.role, **kwargs)
    assert r.status_code == bad.status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    err = r.json()
    assert set(err) == {"code", "message", "errors"}, err
    assert err["code"] == bad.code, err
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["errors"], dict)
    assert all(
        isinstance(k, str) and isinstance(v, list) and v and all(isinstance(m, str) for m in v)
        for k, v in err["errors"].items()
    ), err
    for f in bad.fields:
        assert f in err["errors"], err
    assert api.counts() == before, "a rejected request wrote to the database"


def test_a_long_or_binary_request_id_does_not_break_the_request(api):
    cid = api.customer()

    def check(rid):
        body = {"customer_id": cid, "order_id": uid("O"), "amount": "10.00", "currency": "CNY"}
        return api.post("/v1/credit-checks", body, role="sales", headers={"X-Request-Id": rid})

    for rid in ("r" * 65, "x" * 500, "tab\there"):
        r = check(rid)
        assert r.status_code == 201, r.text
        recorded = api.get(f"/v1/decisions/{r.json()['decision_id']}", role="auditor").json()["request_id"]
        assert recorded == r.headers["X-Request-Id"] and recorded != rid and 0 < len(recorded) <= 64
    r = check("erp-4711")
    assert r.headers["X-Request-Id"] == "erp-4711"
    assert api.get(f"/v1/decisions/{r.json()['decision_id']}", role="auditor").json()["request_id"] == "erp-4711"
