"""Money applied right, through the API (issue 11): cash received before its invoice pays the invoice once it
exists — the customer's file, the decision, the work queue, late interest and the statement of account agree
(real HTTP, SQLite and PostgreSQL)."""

from __future__ import annotations

from api_harness import day


def test_a_prepaid_invoice_is_neither_dunned_nor_charged_and_the_statement_closes_at_zero(api):
    cid = api.customer(industry="manufacturing")
    api.event(cid, "payment_received", {"id": "PRE-1", "amount": "30000.00", "paid_on": day(-90)})
    inv = api.invoice(cid, "30000.00", issued=-80, due=-50)  # 50 days overdue, were it unpaid
    r = api.post(f"/v1/customers/{cid}/evaluate", {}, role="controller")
    assert r.status_code == 201, r.text
    d = r.json()["decision"]
    assert (d["credit"]["outstanding"], d["credit"]["exposure"], d["credit"]["unapplied_cash"]) == (
        "0.00",
        "0.00",
        "0.00",
    )
    assert d["credit"]["cash_applied"] == [
        {
            "source": "payment",
            "source_id": "PRE-1",
            "source_date": day(-90),
            "invoice_id": inv,
            "amount": "30000.00",
            "applied_on": day(-80),
        }
    ]
    assert d["dunning"]["stage"] == 0 and d["dunning"]["actions"] == []
    assert d["interest"]["total"] == "0.00"
    assert any(x["rule"] == "credit.unapplied_cash" and inv in x["message"] for x in d["reasons"])
    assert api.get("/v1/actions", role="backoffice", params={"customer": cid}).json()["actions"] == []
    file = api.get(f"/v1/customers/{cid}", role="sales").json()
    assert (file["credit"]["exposure"], file["dunning_stage"]) == ("0.00", 0)

    st = api.get(f"/v1/customers/{cid}/statement", params={"from": day(-100), "to": day(0)}, role="auditor").json()
    assert [(ln["type"], ln["balance"]) for ln in st["lines"]] == [("payment", "-30000.00"), ("invoice", "0.00")]
    assert st["closing_balance"] == "0.00" and st["open_invoices"] == []
    assert st["reconciliation"]["unapplied"] == "0.00" and st["reconciliation"]["difference"] == "0.00"


def test_a_reminder_asks_only_for_what_the_prepayment_left_open(api):
    full, part = api.customer(), api.customer()
    api.event(full, "payment_received", {"id": "PRE-2", "amount": "800.00", "paid_on": day(-10)})
    api.event(part, "payment_received", {"id": "PRE-3", "amount": "500.00", "paid_on": day(-10)})
    for cid in (full, part):
        api.invoice(cid, "800.00", issued=-5, due=7)  # a reminder is due 7 days before
    assert api.get("/v1/actions", role="backoffice", params={"customer": full}).json()["actions"] == []
    (action,) = api.get("/v1/actions", role="backoffice", params={"customer": part}).json()["actions"]
    assert (action["type"], action["amount"]) == ("payment_reminder", "300.00")


def test_0_01_left_open_at_31_days_is_tolerated_by_the_work_queue_and_the_credit_check(api):
    cid = api.customer(size="small")
    api.event(cid, "payment_received", {"id": "PAY-T", "amount": "29999.99", "paid_on": day(-70)})  # prepaid
    api.invoice(cid, "30000.00", issued=-61, due=-31)  # 0.01 left open, 31 days overdue
    r = api.post(f"/v1/customers/{cid}/evaluate", {}, role="controller")
    d = r.json()["decision"]
    assert d["dunning"]["stage"] == 0 and d["credit"]["overdue"] == "0.01", r.text
    assert any(x["rule"] == "dunning.tolerance" for x in d["reasons"])
    assert api.get("/v1/actions", role="backoffice", params={"customer": cid}).json()["actions"] == []
    check = api.credit_check(cid, "1000.00")
    assert check.status_code == 201 and check.json()["outcome"] == "approve", check.text


def test_an_invoice_beyond_a_new_customer_s_terms_raises_an_alert_and_refers_the_order(api):
    cid = api.customer(since=day(-100))  # new: 15-day terms
    api.invoice(cid, "20000.00", issued=-5, due=80)  # due 85 days after issue
    check = api.credit_check(cid, "1000.00")
    body = check.json()
    assert check.status_code == 201 and body["outcome"] == "refer", check.text
    r = api.get(f"/v1/customers/{cid}", role="sales").json()
    assert [a["id"] for a in r["alerts"]] == ["alert.terms_exceeded"] and r["credit"]["terms_days"] == 15
