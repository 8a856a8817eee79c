"""Collection records are evidence (催收记录 → 诉讼证据, issue 11): completing an action and logging a contact
without one each chain a `collection_record` in the customer's trail, which GET /v1/audit/verify checks; an
edited record fails verify (real HTTP, SQLite and PostgreSQL)."""

from __future__ import annotations

import json

from sqlalchemy import select, update

from api.store.tables import DecisionRecord
from api_harness import NOW, day


def _records(api, cid) -> list[DecisionRecord]:
    with api.service.tx() as s:
        return (
            s.execute(
                select(DecisionRecord)
                .where(DecisionRecord.subject == cid, DecisionRecord.kind == "collection_record")
                .order_by(DecisionRecord.seq)
            )
            .scalars()
            .all()
        )


def test_completing_an_action_chains_a_collection_record(api):
    cid = api.customer()
    inv = api.invoice(cid, "80.00", due=7, issued=-5)  # a reminder due today
    (action,) = api.get("/v1/actions", role="backoffice", params={"customer": cid}).json()["actions"]
    assert _records(api, cid) == []
    r = api.post(
        f"/v1/actions/{action['id']}/complete",
        {"outcome": "promised", "channel": "phone", "note": "王经理：周五付款"},
        role="backoffice",
    )
    assert r.status_code == 200, r.text
    (rec,) = _records(api, cid)
    assert r.json()["record_id"] == rec.id
    assert (rec.actor, rec.outcome, rec.as_of.isoformat()) == ("test-backoffice", "recorded", day(0))
    body = json.loads(rec.result)
    assert body == {
        "customer_id": cid,
        "actor": "test-backoffice",
        "action_id": action["id"],
        "invoice_id": inv,
        "type": "payment_reminder",
        "channel": "phone",
        "outcome": "promised",
        "note": "王经理：周五付款",
        "at": NOW.isoformat() + "Z",
        "stage": action["stage"],
        "amount": "80.00",
    }
    # it reads like every trail record, and is not replayed (nothing was evaluated)
    seen = api.get(f"/v1/decisions/{rec.id}", role="auditor").json()
    assert seen["kind"] == "collection_record" and seen["decision"]["note"] == "王经理：周五付款"
    r = api.post(f"/v1/decisions/{rec.id}/replay", role="auditor")
    assert r.status_code == 409 and r.json()["code"] == "E_NOT_REPLAYABLE", r.text
    assert api.get("/v1/audit/verify", role="auditor").json()["ok"] is True


def test_a_contact_without_an_action_is_logged_as_evidence(api):
    cid = api.customer()
    before = api.counts()
    for body, field in (
        ({"outcome": "x"}, "channel"),
        ({"channel": "phone"}, "outcome"),
        ({"channel": " ", "outcome": "x"}, "channel"),
        ({"channel": "phone", "outcome": "x", "at": "yesterday"}, "at"),
        ({"channel": "phone", "outcome": "x", "at": day(1) + "T00:00:00Z"}, "at"),
        ({"channel": "phone", "outcome": "x", "by": "me"}, "by"),
    ):
        r = api.post(f"/v1/customers/{cid}/collection-records", body, role="backoffice")
        assert r.status_code == 422 and field in r.json()["errors"], (body, r.text)
    assert (
        api.post(
            f"/v1/customers/{cid}/collection-records", {"channel": "phone", "outcome": "x"}, role="sales"
        ).status_code
        == 403
    )
    assert (
        api.post(
            "/v1/customers/nobody/collection-records", {"channel": "phone", "outcome": "x"}, role="backoffice"
        ).status_code
        == 404
    )
    assert api.counts() == before

    r = api.post(
        f"/v1/customers/{cid}/collection-records",
        {"channel": "visit", "outcome": "disputed", "note": "客户称货物有质量问题", "at": day(-2) + "T09:30:00+08:00"},
        role="backoffice",
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["channel"], out["outcome"], out["actor"], out["action_id"]) == (
        "visit",
        "disputed",
        "test-backoffice",
        None,
    )
    assert out["at"] == day(-2) + "T01:30:00Z"  # kept in UTC
    r = api.post(
        f"/v1/customers/{cid}/collection-records", {"channel": "phone", "outcome": "no_answer"}, role="controller"
    )
    assert r.status_code == 201 and r.json()["at"] == NOW.isoformat() + "Z", r.text
    recs = _records(api, cid)
    assert [(rec.id, rec.outcome, rec.actor) for rec in recs] == [
        (out["decision_id"], "recorded", "test-backoffice"),
        (r.json()["decision_id"], "recorded", "test-controller"),
    ]
    assert recs[0].as_of.isoformat() == day(-2)
    listed = api.get("/v1/decisions", role="auditor", params={"customer": cid, "kind": "collection_record"}).json()
    assert len(listed["decisions"]) == 2
    assert api.get("/v1/audit/verify", role="auditor").json()["ok"] is True


def test_an_edited_collection_record_fails_verify(fresh):
    cid = fresh.customer()
    r = fresh.post(
        f"/v1/customers/{cid}/collection-records",
        {"channel": "phone", "outcome": "promised", "note": "will pay 10000 on Friday"},
        role="backoffice",
    )
    assert r.status_code == 201, r.text
    rid = r.json()["decision_id"]
    assert fresh.get("/v1/audit/verify", role="auditor").json()["ok"] is True
    with fresh.service.tx() as s:  # someone with database access rewrites what the customer said
        rec = s.get(DecisionRecord, rid)
        s.execute(
            update(DecisionRecord)
            .where(DecisionRecord.id == rid)
            .values(result=rec.result.replace("will pay 10000", "refused to pay"))
        )
    v = fresh.get("/v1/audit/verify", role="auditor").json()
    assert v["ok"] is False
    assert [(f["subject"], f["decision_id"], f["kind"]) for f in v["findings"]] == [(cid, rid, "hash_mismatch")]
