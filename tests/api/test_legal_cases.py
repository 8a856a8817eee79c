"""Legal cases (issue 11): a litigation referral opens one legal case for the customer, once while one is open;
the case holds its invoices out of the dunning engine (no further stage actions, a `dunning.pause` reason
naming the case) and follows its own one-way status through the API, each change a record in the customer's
hash chain. Also: an `until_done` task whose balance fell below the tolerance is closed as superseded, not left
open for ever (real HTTP and the real sweep, SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select
from test_sweep import MEDIUM, action_rows, d, decision, event, invoice, iso, run, state
from test_sweep_repeat import by_type

from api.store.tables import DecisionRecord
from api_harness import NOW


def _cases(api, cid, role="controller", **params):
    r = api.get(f"/v1/customers/{cid}/legal-cases", role=role, params=params)
    assert r.status_code == 200, r.text
    return r.json()["legal_cases"]


def _records(api, cid):
    with api.service.tx() as s:
        return [
            (r.outcome, r.actor, json.loads(r.facts))
            for r in s.execute(
                select(DecisionRecord)
                .where(DecisionRecord.subject == cid, DecisionRecord.kind == "legal_case")
                .order_by(DecisionRecord.seq)
            ).scalars()
        ]


def _move(api, case_id, status, reason="法务确认 confirmed", role="controller", **extra):
    return api.post(f"/v1/legal-cases/{case_id}/status", {"status": status, "reason": reason, **extra}, role=role)


def _litigated(api, name):
    """A medium account 100 days overdue on day 0 (stage 3) and a newer overdue invoice, swept on day 0."""
    cid = api.customer(name, **MEDIUM)
    old = invoice(api, cid, "20000.00", due=-100)
    newer = invoice(api, cid, "3000.00", due=-95)
    run(api, 0)
    return cid, old, newer


def test_a_litigation_referral_opens_one_case_which_holds_its_invoices(fresh):
    api = fresh
    cid, old, newer = _litigated(api, "L-open")
    assert state(api, cid) == (3, d(-9))
    assert by_type(api, cid)["litigation"] == [iso(0)]
    (case,) = _cases(api, cid)
    litigation = next(
        a
        for a in api.get("/v1/actions", role="controller", params={"customer": cid}).json()["actions"]
        if a["type"] == "litigation"
    )
    assert {
        k: case[k]
        for k in ("invoice_ids", "amount", "opened_on", "status", "status_label", "open", "closed_on", "action_id")
    } == {
        "invoice_ids": [old, newer],
        "amount": "23000.00",
        "opened_on": iso(0),
        "status": "referred",
        "status_label": "已移交法务",
        "open": True,
        "closed_on": None,
        "action_id": litigation["id"],
    }
    ((outcome, actor, facts),) = _records(api, cid)
    assert (outcome, actor, facts["to"], facts["amount"]) == ("referred", "test", "referred", "23000.00")
    assert [(h["status"], h["actor"]) for h in case["history"]] == [("referred", "test")]

    # the next days: the case's invoices are with the legal team; stage 3 is held, no stage action falls due
    for n in (1, 30, 60):  # 30 and 60: stage 3's cadence days
        run(api, n)
        got = decision(api, cid)["dunning"]
        assert (got["stage"], got["actions"], got["stage_detail"]["paused"]) == (3, [], True), got
        assert got["paused"] == [
            {"invoice_id": old, "reason": "legal_case"},
            {"invoice_id": newer, "reason": "legal_case"},
        ]
    reasons = [r["message"] for r in decision(api, cid)["reasons"] if r["rule"] == "dunning.pause"]
    assert reasons == [
        f"collection of invoice {i} paused: legal case {case['id']} (referred) holds it: collection "
        f"is with the legal team (法务)"
        for i in (old, newer)
    ]
    assert by_type(api, cid)["litigation"] == [iso(0)] and len(_cases(api, cid)) == 1
    # the credit check still stops credit: stage 3 is held and the invoices are in the long bucket
    r = api.credit_check(cid, "1000.00")
    assert r.status_code == 201 and r.json()["outcome"] == "reject", r.text
    assert api.get("/v1/audit/verify", role="auditor").json()["ok"] is True


def test_the_case_status_moves_one_way_through_the_api_each_change_in_the_trail(fresh):
    api = fresh
    cid, _, _ = _litigated(api, "L-status")
    (case,) = _cases(api, cid)
    cid_path = f"/v1/legal-cases/{case['id']}/status"
    before = api.counts()
    for body, field in (
        ({"reason": "x"}, "status"),
        ({"status": "filed"}, "reason"),
        ({"status": "filed", "reason": " "}, "reason"),
        ({"status": "appeal", "reason": "x"}, "status"),
        ({"status": "filed", "reason": "x", "by": "me"}, "by"),
    ):
        r = api.post(cid_path, body, role="controller")
        assert r.status_code == 422 and field in r.json()["errors"], (body, r.text)
    assert _move(api, case["id"], "filed", role="auditor").status_code == 403
    assert _move(api, case["id"], "filed", role="backoffice").status_code == 403
    assert _move(api, 999999, "filed").status_code == 404
    r = _move(api, case["id"], "enforcement")  # no enforcement before a judgment
    assert r.status_code == 409 and r.json()["code"] == "E_LEGAL_TRANSITION", r.text
    assert "referred" in r.json()["message"] and "status" in r.json()["errors"]
    assert api.counts() == before

    steps = [
        ("filed", "已向法院提交起诉状 claim filed"),
        ("judgment", "一审判决 judgment for us"),
        ("enforcement", "申请强制执行 enforcement"),
    ]
    for status, reason in steps:
        r = _move(api, case["id"], status, reason, note="案号 (2026) 沪0101民初1号")
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["open"]) == (status, True)
    r = _move(api, case["id"], "filed")  # never back
    assert r.status_code == 409 and r.json()["code"] == "E_LEGAL_TRANSITION"
    r = _move(api, case["id"], "withdrawn")  # no withdrawal after judgment
    assert r.status_code == 409
    r = _move(api, case["id"], "recovered", "执行回款 paid through enforcement")
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["status"], out["status_label"], out["open"], out["closed_on"]) == (
        "recovered",
        "已回款结案",
        False,
        iso(0),
    )
    assert [h["status"] for h in out["history"]] == ["referred", "filed", "judgment", "enforcement", "recovered"]
    assert out["history"][-1]["record_id"] == out["record_id"] and out["history"][-1]["actor"] == "test-controller"
    r = _move(api, case["id"], "settled")  # closed: nothing more
    assert r.status_code == 409 and r.json()["code"] == "E_LEGAL_TRANSITION"
    assert [(o, facts["from"], facts["reason"]) for o, _, facts in _records(api, cid)][1:] == [
        ("filed", "referred", steps[0][1]),
        ("judgment", "filed", steps[1][1]),
        ("enforcement", "judgment", steps[2][1]),
        ("recovered", "enforcement", "执行回款 paid through enforcement"),
    ]
    # auditors read; the list filters by status; sales may not read
    assert [
        c["id"] for c in api.get("/v1/legal-cases", role="auditor", params={"status": "closed"}).json()["legal_cases"]
    ] == [case["id"]]
    assert api.get("/v1/legal-cases", role="auditor", params={"status": "open"}).json()["legal_cases"] == []
    assert api.get("/v1/legal-cases", role="sales").status_code == 403
    assert api.get("/v1/legal-cases", role="auditor", params={"status": "x"}).status_code == 422
    assert api.get("/v1/customers/nobody/legal-cases", role="auditor").status_code == 404
    listed = api.get("/v1/decisions", role="auditor", params={"customer": cid, "kind": "legal_case"}).json()
    assert len(listed["decisions"]) == 5
    assert api.get("/v1/audit/verify", role="auditor").json()["ok"] is True


def test_closing_a_case_written_off_keeps_collection_away_withdrawn_resumes_it(fresh):
    api = fresh
    off, _, _ = _litigated(api, "L-off")
    back, _, _ = _litigated(api, "L-back")
    (off_case,) = _cases(api, off)
    (back_case,) = _cases(api, back)
    run(api, 3)  # held by the cases
    assert decision(api, back)["dunning"]["actions"] == []
    clock = api.service.clock
    api.service.clock = lambda: NOW + dt.timedelta(days=5)  # the cases close on day 5
    try:
        assert _move(api, off_case["id"], "written_off", "债务人注销 debtor deregistered").status_code == 200
        assert _move(api, back_case["id"], "withdrawn", "客户同意付款 customer agreed to pay").status_code == 200
    finally:
        api.service.clock = clock
    run(api, 6)
    # written off (账销案存): its invoices stay out of collection, no new referral, no second case
    got = decision(api, off)["dunning"]
    assert (got["stage"], got["actions"], {p["reason"] for p in got["paused"]}) == (3, [], {"legal_case"})
    assert len(_cases(api, off)) == 1
    # withdrawn: collection resumes in the held stage, a new episode, whose referral opens a new case
    assert state(api, back) == (3, d(6))
    assert [a["type"] for a in decision(api, back)["dunning"]["actions"]] == ["litigation", "asset_preservation"]
    cases = _cases(api, back)
    assert [(c["status"], c["open"], c["opened_on"]) for c in cases] == [
        ("withdrawn", False, iso(0)),
        ("referred", True, iso(6)),
    ]


def test_a_visit_below_the_tolerance_is_closed_as_superseded_and_not_created_again(fresh):
    api = fresh
    cid = api.customer("L-visit", **MEDIUM)
    inv = invoice(api, cid, "20000.00", due=-31)
    run(api, 0)
    assert state(api, cid) == (2, d(0)) and by_type(api, cid)["visit"] == [iso(0)]
    event(
        api,
        cid,
        "payment_received",
        {"id": "P-1", "invoice_id": inv, "amount": "19950.00", "currency": "CNY", "paid_on": iso(1)},
        1,
    )
    run(api, 1)  # 50.00 left: below the 100.00 minimum balance
    assert state(api, cid)[0] == 0
    (visit,) = [a for a in action_rows(api, cid) if a[2] == "visit"]
    assert (visit[6], visit[7]) == ("cancelled", "superseded")
    with api.service.tx() as s:
        from api.store.tables import Action

        note = s.execute(select(Action.note).where(Action.customer_id == cid, Action.type == "visit")).scalar_one()
    assert note.startswith(f"out of collection on {iso(1)}: collectable overdue") and "tolerance" in note
    run(api, 14)  # stage 2's cadence day: no visit for 50.00
    assert by_type(api, cid)["visit"] == [iso(0)]
    assert [a for a in action_rows(api, cid) if a[6] == "open"] == []
