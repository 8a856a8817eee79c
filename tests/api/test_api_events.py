"""POST /v1/events: every event type changes the ledger and returns a decision; event_id makes
posting idempotent (same body → the first response, byte for byte; other body → 409)."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest

from api.store.tables import Customer, Dispute, Invoice, Reservation
from api_harness import day, uid


def _credit(decision: dict, key: str) -> Decimal:
    return Decimal(decision["credit"][key])


def _paused(decision: dict) -> dict:
    return {p["invoice_id"]: p["reason"] for p in decision["dunning"]["paused"]}


@pytest.fixture
def ledger(api):
    """A customer with invoice A (10,000, 40 days overdue) and B (5,000, due in 10 days)."""
    cid = api.customer()
    a = api.invoice(cid, "10000.00", due=-40, issued=-70)
    b = api.invoice(cid, "5000.00", due=10, issued=-20)
    return cid, a, b


def _dispute(api, cid, invoice):
    dispute_id = uid("D")
    api.event(
        cid,
        "dispute_opened",
        {"id": dispute_id, "invoice_id": invoice, "opened_on": day(-1), "reason": "wrong quantity"},
    )
    return dispute_id


# type → (data builder, table that gains a row or None, check on the returned decision, check on the database)
def _cases():
    def invoice(api, cid, a, b):
        return {"id": uid("INV"), "amount": "2000.00", "currency": "CNY", "issued_on": day(-1), "due_on": day(29)}

    def payment(api, cid, a, b):
        return {"invoice_id": a, "amount": "4000.00", "paid_on": day(0)}

    def credit_note(api, cid, a, b):
        return {"invoice_id": a, "amount": "1000.00", "issued_on": day(0)}

    def promise(api, cid, a, b):
        return {"invoice_id": a, "amount": "10000.00", "made_on": day(0), "promised_on": day(5)}

    def dispute(api, cid, a, b):
        return {"invoice_id": a, "opened_on": day(0), "reason": "damaged goods"}

    def resolved(api, cid, a, b):
        return {"dispute_id": _dispute(api, cid, a), "resolved_on": day(0)}

    def plan(api, cid, a, b):
        return {
            "id": uid("P"),
            "invoice_ids": [a],
            "agreed_on": day(0),
            "instalments": [{"due_on": day(10), "amount": "5000.00"}, {"due_on": day(40), "amount": "5000.00"}],
        }

    def reason(api, cid, a, b):
        return {"reason": "malicious_delay"}

    def updated(api, cid, a, b):
        return {"region": "remote", "collector": "李雷"}

    return {
        "invoice_issued": (
            invoice,
            "invoices",
            lambda d, before, a: _credit(d, "outstanding") == before + Decimal("2000.00"),
        ),
        "payment_received": (
            payment,
            "payments",
            lambda d, before, a: _credit(d, "outstanding") == before - Decimal("4000.00"),
        ),
        "credit_note": (
            credit_note,
            "credit_notes",
            lambda d, before, a: _credit(d, "outstanding") == before - Decimal("1000.00"),
        ),
        "promise_to_pay": (promise, "promises", lambda d, before, a: _paused(d) == {a: "promise"}),
        "dispute_opened": (dispute, "disputes", lambda d, before, a: _paused(d) == {a: "dispute"}),
        "dispute_resolved": (resolved, None, lambda d, before, a: _paused(d) == {}),
        "instalment_plan_agreed": (plan, "instalment_plans", lambda d, before, a: _paused(d) == {a: "instalment_plan"}),
        # malicious delay and > 30 days overdue: straight to stage 3 (dunning.stage3.malicious)
        "arrears_reason_recorded": (
            reason,
            None,
            lambda d, before, a: d["classification"]["arrears_reason"] == "malicious_delay"
            and d["dunning"]["stage"] == 3,
        ),
        "customer_updated": (updated, None, lambda d, before, a: d["classification"]["region"] == "remote"),
    }


CASES = _cases()


def test_every_event_type_is_covered():
    from api.service.validation import EVENT_TYPES

    assert set(CASES) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", list(CASES))
def test_event_updates_the_ledger_and_returns_a_decision(api, ledger, event_type):
    cid, a, b = ledger
    build, table, check = CASES[event_type]
    data = build(api, cid, a, b)
    before = api.get(f"/v1/customers/{cid}").json()
    counts = api.counts()
    event_id = uid("ev")
    # a region is a segment attribute, a decision field: a controller changes it (test_decision_fields.py)
    role = "controller" if event_type == "customer_updated" else "backoffice"
    r = api.event(cid, event_type, data, event_id=event_id, as_of=day(0), role=role)
    body = r.json()
    assert set(body) == {"event_id", "type", "customer_id", "decision_id", "decision"}
    assert (body["event_id"], body["type"], body["customer_id"]) == (event_id, event_type, cid)
    decision = body["decision"]
    assert decision["customer_id"] == cid and decision["as_of"] == day(0)
    assert check(decision, Decimal(before["credit"]["outstanding"]), a), json.dumps(decision, ensure_ascii=False)

    after = api.counts()
    assert after["events"] == counts["events"] + 1
    # a controller's change of decision fields is a record of its own (before/after), then the event's decision
    # a controller's change of decision fields is a record of its own; so is the legal case that malicious
    # delay's stage-3 litigation referral opens (docs/dunning.md "Legal cases")
    opened = event_type == "arrears_reason_recorded"
    assert after["decisions"] == counts["decisions"] + (
        2 if event_type in ("customer_updated", "arrears_reason_recorded") else 1
    )
    assert after["legal_cases"] == counts["legal_cases"] + opened
    if table:
        assert after[table] == counts[table] + 1
    # the event's decision is in the trail, as the customer's latest
    rec = api.get(f"/v1/decisions/{body['decision_id']}", role="auditor").json()
    assert rec["kind"] == "event" and rec["subject"] == cid and rec["decision"] == decision
    # and the ledger now says so: a fresh read of the credit file agrees with the event's decision
    now = api.get(f"/v1/customers/{cid}").json()
    assert now["credit"]["outstanding"] == decision["credit"]["outstanding"]
    with api.service.tx() as s:
        c = s.get(Customer, cid)
        if event_type == "arrears_reason_recorded":
            assert c.arrears_reason == "malicious_delay"
        if event_type == "customer_updated":
            assert (c.region, c.collector) == ("remote", "李雷")
        if event_type == "dispute_resolved":
            assert s.get(Dispute, data["dispute_id"]).resolved_on.isoformat() == day(0)


def test_same_event_id_returns_the_first_response_and_changes_nothing(api, ledger):
    cid, a, b = ledger
    body = {
        "event_id": uid("ev"),
        "type": "payment_received",
        "customer_id": cid,
        "data": {"invoice_id": a, "amount": "123.45", "paid_on": day(0)},
    }
    first = api.post("/v1/events", body, role="backoffice")
    assert first.status_code == 201, first.text
    counts = api.counts()
    again = api.post("/v1/events", body, role="controller")
    assert again.status_code == 200
    assert again.content == first.content
    # the same JSON written differently (key order, spacing) is the same body
    reordered = json.dumps(
        {
            "data": {"paid_on": day(0), "amount": "123.45", "invoice_id": a},
            "customer_id": cid,
            "type": "payment_received",
            "event_id": body["event_id"],
        },
        indent=3,
    )
    third = api.request(
        "POST", "/v1/events", "admin", data=reordered.encode(), headers={"Content-Type": "application/json"}
    )
    assert third.status_code == 200 and third.content == first.content
    assert api.counts() == counts


def test_same_event_id_with_another_body_is_a_conflict(api, ledger):
    cid, a, b = ledger
    body = {
        "event_id": uid("ev"),
        "type": "payment_received",
        "customer_id": cid,
        "data": {"invoice_id": a, "amount": "100.00", "paid_on": day(0)},
    }
    first = api.post("/v1/events", body, role="backoffice")
    assert first.status_code == 201, first.text
    counts = api.counts()
    for changed in (
        {**body, "data": {**body["data"], "amount": "100.01"}},
        {**body, "type": "credit_note", "data": {"invoice_id": a, "amount": "100.00", "issued_on": day(0)}},
        {**body, "as_of": day(0)},
    ):
        r = api.post("/v1/events", changed, role="backoffice")
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "E_EVENT_CONFLICT"
        assert set(r.json()) == {"code", "message", "errors"}
    assert api.counts() == counts
    assert api.post("/v1/events", body, role="backoffice").content == first.content


def test_a_rejected_event_does_not_use_up_its_id(api, ledger):
    cid, a, b = ledger
    event_id = uid("ev")
    bad = {
        "event_id": event_id,
        "type": "payment_received",
        "customer_id": cid,
        "data": {"invoice_id": "no-such-invoice", "amount": "10.00", "paid_on": day(0)},
    }
    counts = api.counts()
    assert api.post("/v1/events", bad, role="backoffice").status_code == 422
    assert api.counts() == counts
    good = {**bad, "data": {"invoice_id": a, "amount": "10.00", "paid_on": day(0)}}
    assert api.post("/v1/events", good, role="backoffice").status_code == 201


@pytest.mark.parametrize("event_type", ["invoice_issued", "payment_received", "arrears_reason_recorded"])
def test_concurrent_duplicates_are_processed_once(api, event_type):
    """Twelve clients post the same event at the same moment: one applies it, all get its response."""
    cid = api.customer()
    data = {
        "invoice_issued": {
            "id": uid("INV"),
            "amount": "700.00",
            "currency": "CNY",
            "issued_on": day(-5),
            "due_on": day(25),
        },
        "payment_received": {"amount": "70.00", "paid_on": day(0)},
        "arrears_reason_recorded": {"reason": "cash_flow_problem"},
    }[event_type]
    body = {"event_id": uid("ev"), "type": event_type, "customer_id": cid, "data": data}
    counts = api.counts()
    n = 12
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def post(i):
        barrier.wait()
        r = api.post("/v1/events", body, role="backoffice")
        results[i] = (r.status_code, r.content)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * (n - 1) + [201], [(s, c[:200]) for s, c in results]
    assert len({c for _, c in results}) == 1
    after = api.counts()
    assert after["events"] == counts["events"] + 1
    assert after["decisions"] == counts["decisions"] + 1
    assert after["chain_heads"] == counts["chain_heads"] + 1
    if event_type == "invoice_issued":
        assert after["invoices"] == counts["invoices"] + 1
    if event_type == "payment_received":
        assert after["payments"] == counts["payments"] + 1


@pytest.mark.parametrize("event_type", ["invoice_issued", "credit_note", "instalment_plan_agreed"])
def test_one_new_id_posted_for_two_customers_at_once(api, event_type):
    """Two different events create a record with the same new id for two customers at the same moment:
    one is applied, the other is a 409 conflict; nothing half-written, no server error."""
    customers = [api.customer(), api.customer()]
    invoices = {c: api.invoice(c, "500.00", due=10) for c in customers}
    for attempt in range(4):
        new_id = uid("X")

        def data(c):
            return {
                "invoice_issued": {
                    "id": new_id,
                    "amount": "10.00",
                    "currency": "CNY",
                    "issued_on": day(0),
                    "due_on": day(30),
                },
                "credit_note": {"id": new_id, "invoice_id": invoices[c], "amount": "1.00", "issued_on": day(0)},
                "instalment_plan_agreed": {
                    "id": new_id,
                    "invoice_ids": [invoices[c]],
                    "agreed_on": day(0),
                    "instalments": [{"due_on": day(20), "amount": "500.00"}],
                },
            }[event_type]

        counts = api.counts()
        barrier = threading.Barrier(2)
        results = {}

        def post(c):
            barrier.wait()
            results[c] = api.event(c, event_type, data(c), expect=None)

        threads = [threading.Thread(target=post, args=(c,)) for c in customers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(r.status_code for r in results.values()) == [201, 409], {c: r.text for c, r in results.items()}
        assert [r.json()["code"] for r in results.values() if r.status_code == 409] == ["E_CONFLICT"]
        after = api.counts()
        assert after["events"] == counts["events"] + 1 and after["decisions"] == counts["decisions"] + 1


def test_unallocated_payment_settles_the_oldest_invoice_first(api):
    cid = api.customer()
    newer = api.invoice(cid, "5000.00", due=-10, issued=-40, invoice_id=uid("INV-newer"))  # posted first
    older = api.invoice(cid, "10000.00", due=-30, issued=-60, invoice_id=uid("INV-older"))
    r = api.event(cid, "payment_received", {"amount": "10000.00", "paid_on": day(-1)})  # no invoice_id
    d = r.json()["decision"]
    assert d["credit"]["outstanding"] == "5000.00"
    # the older invoice is settled: only the newer one is still open, overdue and charged interest
    assert d["dunning"]["anchor_invoice_id"] == newer
    assert [i["invoice_id"] for i in d["interest"]["invoices"]] == [newer]
    assert d["classification"]["aging_bucket"] == "short"  # 10 days, not 30
    with api.service.tx() as s:
        assert s.get(Invoice, older) is not None

    # a partial unallocated payment also goes to the oldest open invoice
    cid2 = api.customer()
    newer2 = api.invoice(cid2, "5000.00", due=-10, issued=-40)
    older2 = api.invoice(cid2, "10000.00", due=-30, issued=-60)
    d = api.event(cid2, "payment_received", {"amount": "4000.00", "paid_on": day(-1)}).json()["decision"]
    bases = {i["invoice_id"]: i["base"] for i in d["interest"]["invoices"]}
    assert bases == {older2: "6000.00", newer2: "5000.00"}


def test_invoicing_an_order_converts_its_reservation(api):
    cid = api.customer()
    order = uid("O")
    r = api.credit_check(cid, "30000.00", order_id=order, reserve=True)
    assert r.status_code == 201 and r.json()["reserved"] is True, r.text
    credit = api.get(f"/v1/customers/{cid}").json()["credit"]
    assert (credit["reserved"], credit["outstanding"], credit["exposure"]) == ("30000.00", "0.00", "30000.00")
    api.invoice(cid, "30000.00", due=30, issued=0, order_id=order)
    with api.service.tx() as s:
        assert s.get(Reservation, order).status == "invoiced"
    credit = api.get(f"/v1/customers/{cid}").json()["credit"]
    # counted once, as an invoice, no longer as a reservation
    assert (credit["reserved"], credit["outstanding"], credit["exposure"]) == ("0.00", "30000.00", "30000.00")
    # releasing an invoiced order changes nothing
    r = api.delete(f"/v1/credit-checks/{order}", role="sales")
    assert r.status_code == 200 and r.json() == {"order_id": order, "status": "invoiced"}
    assert api.get(f"/v1/customers/{cid}").json()["credit"]["exposure"] == "30000.00"
