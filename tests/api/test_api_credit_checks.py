"""POST /v1/credit-checks with reservations, DELETE to release; concurrent checks never jointly
exceed what the policy allows (real HTTP, threads, SQLite and PostgreSQL)."""
from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

from sqlalchemy import select

from api.store.tables import Reservation
from api_harness import day, uid


def _held(api, cid) -> list[Reservation]:
    with api.service.tx() as s:
        return s.execute(select(Reservation).where(Reservation.customer_id == cid,
                                                   Reservation.status == "held")).scalars().all()


def _credit(api, cid, **params) -> dict:
    r = api.get(f"/v1/customers/{cid}", role="sales", params=params)
    assert r.status_code == 200, r.text
    return r.json()["credit"]


def test_concurrent_reservations_never_exceed_the_limit(api):
    """60 simultaneous orders of 20,000 for one customer (limit 500,000, 100,000 already invoiced).
    Under the policy an order is approved while exposure after it stays ≤ 90 % of the limit
    (check.high_utilisation refers above that), so exactly 17 fit: 100,000 + 17 × 20,000 = 440,000."""
    cid = api.customer()                                    # manual score 85: high reputation, limit 500,000
    api.invoice(cid, "100000.00", due=16, issued=-14)      # outstanding, not yet due
    limit, outstanding, amount, n = Decimal("500000.00"), Decimal("100000.00"), Decimal("20000.00"), 60
    assert Decimal(_credit(api, cid)["limit"]) == limit
    fits = int((limit * Decimal("0.9") - outstanding) // amount)
    assert fits == 17

    barrier = threading.Barrier(n)
    results: list = [None] * n

    def check(i):
        barrier.wait()
        r = api.credit_check(cid, str(amount), order_id=f"{cid}-order-{i:02d}", reserve=True, role="sales")
        results[i] = (r.status_code, r.json())

    threads = [threading.Thread(target=check, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(status == 201 for status, _ in results), [r for r in results if r[0] != 201][:3]
    approved = [body for _, body in results if body["outcome"] in ("approve", "approve_with_conditions")]
    assert all(body["reserved"] for body in approved)
    assert not any(body["reserved"] for _, body in results if body not in approved)
    assert len(approved) == fits, sorted(body["outcome"] for _, body in results)
    # every approval saw a different exposure: the checks were serialised, none decided on stale data
    assert sorted(Decimal(b["exposure"]) for b in approved) == [outstanding + k * amount for k in range(fits)]

    held = _held(api, cid)
    assert sorted(r.order_id for r in held) == sorted(b["order_id"] for b in approved)
    total = sum(Decimal(r.amount_minor) / 100 for r in held) + outstanding
    assert total <= limit
    assert total == outstanding + fits * amount
    credit = _credit(api, cid)
    assert Decimal(credit["exposure"]) == total and Decimal(credit["reserved"]) == fits * amount


def test_release_frees_the_credit(api):
    cid = api.customer(credit_score=65)                        # medium reputation: limit 200,000
    order = uid("O")
    r = api.credit_check(cid, "150000.00", order_id=order, reserve=True)
    assert r.status_code == 201 and r.json()["outcome"] == "approve" and r.json()["reserved"], r.text
    assert _credit(api, cid)["reserved"] == "150000.00"
    # the next order no longer fits
    r = api.credit_check(cid, "60000.00")
    assert r.json()["outcome"] == "reject" and r.json()["reserved"] is False
    assert [x["rule"] for x in r.json()["reasons"]][0] == "check.over_limit"

    r = api.delete(f"/v1/credit-checks/{order}", role="sales")
    assert r.status_code == 200 and r.json() == {"order_id": order, "status": "released"}
    assert _credit(api, cid)["reserved"] == "0.00"
    assert _held(api, cid) == []
    # releasing again is harmless; an unknown order is a 404 in the usual error shape
    assert api.delete(f"/v1/credit-checks/{order}", role="sales").json()["status"] == "released"
    r = api.delete(f"/v1/credit-checks/{uid('nope')}", role="sales")
    assert r.status_code == 404 and r.json()["code"] == "E_NOT_FOUND" and set(r.json()) == {"code", "message",
                                                                                             "errors"}
    r = api.credit_check(cid, "60000.00", reserve=True)
    assert r.json()["outcome"] == "approve" and r.json()["reserved"] is True


def test_checking_an_order_again_replaces_its_reservation(api):
    cid = api.customer()
    order = uid("O")
    for amount in ("10000.00", "12000.00", "12000.00"):
        r = api.credit_check(cid, amount, order_id=order, reserve=True)
        assert r.status_code == 201 and r.json()["reserved"], r.text
        # the order's own earlier reservation is not counted against it
        assert r.json()["exposure"] == "0.00"
    assert [(x.order_id, x.amount_minor) for x in _held(api, cid)] == [(order, 1200000)]
    assert _credit(api, cid)["reserved"] == "12000.00"


def test_checks_without_reserve_or_not_approved_hold_nothing(api):
    cid = api.customer(credit_score=40, since="2026-11-01")   # new and low reputation: limit 50,000
    counts = api.counts()
    r = api.credit_check(cid, "1000.00")
    assert r.json()["reserved"] is False and r.json()["outcome"] in ("approve", "approve_with_conditions")
    r = api.credit_check(cid, "60000.00", reserve=True)
    assert r.json()["outcome"] == "reject" and r.json()["reserved"] is False
    after = api.counts()
    assert after["reservations"] == counts["reservations"]
    assert after["decisions"] == counts["decisions"] + 2        # both checks are in the trail


def test_low_reputation_approval_with_conditions_is_reserved(api):
    cid = api.customer(credit_score=40)                        # low: limit 50,000 with a 30 % deposit
    r = api.credit_check(cid, "1000.00", reserve=True)
    assert r.json()["outcome"] == "approve_with_conditions", r.text
    assert r.json()["reserved"] is True and r.json()["conditions"]
    assert _credit(api, cid)["reserved"] == "1000.00"


def test_reservations_expire(api):
    cid = api.customer()
    api.credit_check(cid, "5000.00", reserve=True)                           # held for 30 days
    api.credit_check(cid, "7000.00", reserve=True, expires_on=day(3))
    assert _credit(api, cid)["reserved"] == "12000.00"
    assert _credit(api, cid, as_of=day(3))["reserved"] == "12000.00"
    assert _credit(api, cid, as_of=day(4))["reserved"] == "5000.00"
    assert _credit(api, cid, as_of=day(31))["reserved"] == "0.00"


def test_an_order_of_another_customer_is_a_conflict(api):
    a, b = api.customer(), api.customer()
    order = uid("O")
    assert api.credit_check(a, "100.00", order_id=order, reserve=True).json()["reserved"]
    counts = api.counts()
    r = api.credit_check(b, "100.00", order_id=order, reserve=True)
    assert r.status_code == 409 and r.json()["code"] == "E_CONFLICT", r.text
    assert api.counts() == counts


def test_unknown_customer_is_404(api):
    counts = api.counts()
    r = api.credit_check(uid("nobody"), "100.00", reserve=True)
    assert r.status_code == 404 and r.json()["code"] == "E_NOT_FOUND"
    assert api.counts() == counts


def test_one_order_reserved_for_two_customers_at_once(api):
    """The same new order id checked for two customers at the same moment: one holds it, the other is told
    it belongs to someone else (409), never a server error."""
    for attempt in range(5):
        a, b = api.customer(), api.customer()
        order = uid("O")
        barrier = threading.Barrier(2)
        results = {}

        def check(cid):
            barrier.wait()
            results[cid] = api.credit_check(cid, "100.00", order_id=order, reserve=True)

        threads = [threading.Thread(target=check, args=(cid,)) for cid in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        statuses = sorted(r.status_code for r in results.values())
        assert statuses == [201, 409], {c: r.text for c, r in results.items()}
        winner = next(c for c, r in results.items() if r.status_code == 201)
        assert results[winner].json()["reserved"] is True
        loser = next(r for r in results.values() if r.status_code == 409)
        assert loser.json()["code"] == "E_CONFLICT"
        with api.service.tx() as s:
            row = s.get(Reservation, order)
            assert (row.customer_id, row.status) == (winner, "held")


def test_an_approval_carries_its_reasons_and_a_reject_no_moot_deposit(api):
    """Every outcome says why: an approval is within the limit, leaves a utilisation, and nothing overdue
    blocks it; a rejected order of a low-reputation customer lists no deposit it could meet."""
    cid = api.customer(credit_score=85)                             # limit 500,000
    body = api.credit_check(cid, "100000.00").json()
    assert body["outcome"] == "approve"
    assert [(r["rule"], r["message"]) for r in body["reasons"]] == [
        ("credit.check.within_limit",
         "within the limit: exposure 0.00 + order 100,000.00 = 100,000.00 ≤ limit 500,000.00"),
        ("credit.check.utilisation", "utilisation after the order 20.00% of the limit"),
        ("credit.check.overdue", "nothing overdue")]
    low = api.customer(credit_score=59)                             # low reputation: limit 50,000, 30 % deposit
    body = api.credit_check(low, "60000.00").json()
    assert body["outcome"] == "reject" and body["conditions"] == []
    assert [r["rule"] for r in body["reasons"]] == ["check.over_limit", "check.high_utilisation"]


def test_a_payment_between_the_read_and_the_write_is_in_the_decision(api, caplog):
    """A payment lands while a check is between its read and its write: the check's decision is the
    ledger's after the payment. SQLite reads and evaluates before the write lock (a hook posts the payment
    through the API there, so the lock-free read saw the old ledger) and must notice under the lock;
    PostgreSQL decides under the customer's row lock, which the test holds with the payment uncommitted
    (a second real connection) until the check waits for it."""
    from sqlalchemy import text

    from api.service import credit_checks
    from api.service.decide import lock_customer
    from api.store.tables import DecisionRecord, Payment
    cid = api.customer()                                   # limit 500,000; approve while ≤ 90 % after the order
    inv = api.invoice(cid, "400000.00", due=16, issued=-14)
    order = uid("O")
    # before the payment the order would not be approved: 400,000 + 100,000 is over 90 % of the limit
    assert api.credit_check(cid, "100000.00").json()["outcome"] != "approve"
    paid = uid("PAY")
    payment = {"id": paid, "invoice_id": inv, "amount": "300000.00", "paid_on": day(0)}
    fired = []

    def pay_now(req):                                    # SQLite: in the check's own thread, no lock held
        if req["order_id"] == order and not fired:
            fired.append(api.event(cid, "payment_received", payment).json()["decision_id"])
    answer = {}

    def check():
        answer["r"] = api.credit_check(cid, "100000.00", order_id=order, reserve=True)
    caplog.set_level("DEBUG", logger="creditctl.credit_checks")
    if api.backend == "sqlite":
        credit_checks.AFTER_READ.append(pay_now)
        try:
            check()
        finally:
            credit_checks.AFTER_READ.remove(pay_now)
        assert fired, "the check never ran between a read and a write"
        assert any("inputs changed since the read" in r.getMessage() and order in r.getMessage()
                   for r in caplog.records)
    else:
        with api.service.tx() as s:
            lock_customer(s, cid)
            s.add(Payment(id=paid, customer_id=cid, invoice_id=inv, amount_minor=30000000,
                          paid_on=dt.date.fromisoformat(day(0))))
            s.flush()
            worker = threading.Thread(target=check)
            worker.start()
            waiting = 0
            for _ in range(6000):           # until the check's connection waits for the row lock (a guard, not a time)
                with api.engine.connect() as probe:
                    waiting = probe.execute(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'")).scalar()
                if waiting:
                    break
                threading.Event().wait(0.01)
            assert waiting, "the check never waited for the customer's row lock"
        worker.join(60)
    r = answer["r"]
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["outcome"] == "approve" and body["reserved"], body
    assert body["exposure"] == "100000.00" and body["exposure_after_order"] == "200000.00"
    with api.service.read_tx() as s:
        rec = s.get(DecisionRecord, body["decision_id"])
        assert paid in rec.facts and rec.outcome == "approve"
        if fired:                                        # the payment's decision comes first in the chain
            assert s.get(DecisionRecord, fired[0]).seq == rec.seq - 1
    assert [h.order_id for h in _held(api, cid)] == [order]
    replay = api.post(f"/v1/decisions/{body['decision_id']}/replay", role="auditor")
    assert replay.status_code == 200 and replay.json()["identical"] is True, replay.text
