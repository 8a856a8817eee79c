"""Structured reasons over the API (issue 8): the trail stores reasons as data (format 2), readers get them
rendered in their locale (English by default, Chinese with ?locale=zh or Accept-Language: zh…), and a record
written before (format 1, reasons as English text) still reads and replays as identical."""
from __future__ import annotations

import json
import re

from sqlalchemy import select

from api.store import trail
from api.store.tables import DecisionRecord
from engine.decision import canonical_json
from api_harness import NOW, day, uid

_CJK = re.compile(r"[\u4e00-\u9fff]")


def _record(api, decision_id) -> DecisionRecord:
    with api.service.tx() as s:
        return s.execute(select(DecisionRecord).where(DecisionRecord.id == decision_id)).scalar_one()


def _stateless(api, **headers_and_params):
    cid = uid("Z")
    body = {"customer": {"id": cid, "type": "enterprise", "industry": "trading", "region": "local",
                         "size": "large", "since": "2015-01-01"},
            "invoices": [{"id": "I1", "amount": "120000.00", "currency": "CNY", "issued_on": day(-70),
                          "due_on": day(-40)}],
            "as_of": day(0), "order_amount": "30000.00"}
    return api.post("/v1/evaluate", body, role="backoffice", **headers_and_params)


def test_the_trail_stores_reasons_as_data_and_readers_get_todays_english(api):
    r = _stateless(api)
    assert r.status_code == 201, r.text
    answer = r.json()["decision"]
    assert "format" not in answer and all(set(x) == {"rule", "family", "message"} for x in answer["reasons"])
    rec = _record(api, r.json()["decision_id"])
    stored = json.loads(rec.result)
    assert stored["format"] == 2
    assert all("message" not in x and "values" in x for x in stored["reasons"])
    assert [x["rule"] for x in stored["reasons"]] == [x["rule"] for x in answer["reasons"]]
    got = api.get(f"/v1/decisions/{rec.id}", role="auditor")
    assert got.status_code == 200, got.text
    assert got.json()["decision"] == answer
    # the bytes a client read before structured reasons: the canonical JSON of the English decision
    assert canonical_json(got.json()["decision"]) == canonical_json(answer)
    listed = api.get("/v1/decisions", role="auditor", params={"customer": answer["customer_id"]})
    assert [d["decision"] for d in listed.json()["decisions"]] == [answer]
    assert api.post(f"/v1/decisions/{rec.id}/replay", role="auditor").json() == {
        "decision_id": rec.id, "policy_version": rec.policy_version, "identical": True, "tampered": False}


def test_readers_in_chinese(api):
    zh = _stateless(api, params={"locale": "zh"})
    assert zh.status_code == 201, zh.text
    en = api.get(f"/v1/decisions/{zh.json()['decision_id']}", role="auditor").json()["decision"]
    reasons = zh.json()["decision"]["reasons"]
    assert [x["rule"] for x in reasons] == [x["rule"] for x in en["reasons"]]
    assert all(_CJK.search(x["message"]) for x in reasons), reasons
    assert {k: v for k, v in zh.json()["decision"].items() if k not in ("reasons", "alerts")} == \
           {k: v for k, v in en.items() if k not in ("reasons", "alerts")}
    for headers in ({"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}, {"Accept-Language": "fr, zh-TW;q=0.5"}):
        got = api.get(f"/v1/decisions/{zh.json()['decision_id']}", role="auditor", headers=headers)
        assert got.json()["decision"]["reasons"] == reasons
    for headers in ({"Accept-Language": "en-GB, zh;q=0.5"}, {}):
        got = api.get(f"/v1/decisions/{zh.json()['decision_id']}", role="auditor", headers=headers)
        assert got.json()["decision"] == en
    assert api.get(f"/v1/decisions/{zh.json()['decision_id']}", role="auditor", params={"locale": "en"},
                   headers={"Accept-Language": "zh"}).json()["decision"] == en
    listed = api.get("/v1/decisions", role="auditor", params={"customer": en["customer_id"], "locale": "zh"})
    assert listed.json()["decisions"][0]["decision"]["reasons"] == reasons
    for path in (f"/v1/decisions/{zh.json()['decision_id']}", "/v1/decisions"):
        bad = api.get(path, role="auditor", params={"locale": "fr"})
        assert bad.status_code == 422, bad.text


def test_a_credit_check_answers_in_the_callers_locale(api):
    cid = api.customer()
    api.invoice(cid, "1000.00", due=-10)
    en = api.credit_check(cid, "100.00")
    zh = api.post("/v1/credit-checks", {"customer_id": cid, "order_id": uid("O"), "amount": "100.00", "currency": "CNY",
                                        "reserve": False}, role="sales", headers={"Accept-Language": "zh-CN"})
    assert en.status_code == zh.status_code == 201, (en.text, zh.text)
    assert en.json()["outcome"] == zh.json()["outcome"] == "approve"
    assert [x["rule"] for x in en.json()["reasons"]] == [x["rule"] for x in zh.json()["reasons"]] == [
        "credit.check.within_limit", "credit.check.utilisation", "credit.check.overdue"]
    assert en.json()["reasons"][0]["message"].startswith("within the limit: exposure 1,000.00 + order 100.00 = 1,100.00 ≤ limit 500,000.00")
    assert zh.json()["reasons"][0]["message"].startswith("在额度内：占用 1,000.00 + 订单 100.00 = 1,100.00 ≤ 额度 500,000.00")
    assert zh.json()["reasons"][2]["message"].startswith("逾期 1,000.00，最久 10 天")


def test_a_record_written_before_structured_reasons_reads_and_replays_as_identical(fresh):
    api = fresh                           # its records are edited below: a database of its own
    r = _stateless(api)
    now = _record(api, r.json()["decision_id"])
    english = canonical_json(r.json()["decision"])           # format 1: what the trail stored before
    with api.service.tx() as s:
        old = trail.append(s, subject=now.subject, kind="evaluate_stateless", actor=now.actor,
                           request_id="before-issue-8", as_of=now.as_of, facts=now.facts,
                           policy_version=now.policy_version, result=english, outcome=now.outcome,
                           created_at=NOW)
    assert '"format"' not in english and '"message"' in english
    replay = api.post(f"/v1/decisions/{old.id}/replay", role="auditor").json()
    assert replay == {"decision_id": old.id, "policy_version": now.policy_version, "identical": True,
                      "tampered": False}
    for params in ({}, {"locale": "zh"}):          # a format-1 record keeps its English text
        got = api.get(f"/v1/decisions/{old.id}", role="auditor", params=params).json()
        assert got["decision"] == r.json()["decision"]
    verify = api.get("/v1/audit/verify", role="auditor").json()
    assert verify["ok"] is True, verify
    # an edited format-1 message is a difference of the English text, at its path
    forged = json.loads(english)
    forged["reasons"][0]["message"] = "edited"
    with api.service.tx() as s:
        s.get(DecisionRecord, old.id).result = canonical_json(forged)
    replay = api.post(f"/v1/decisions/{old.id}/replay", role="auditor").json()
    assert replay["identical"] is False and replay["tampered"] is True
    assert replay["diff"] == [{"path": "reasons[0].message", "recorded": "edited",
                               "replayed": r.json()["decision"]["reasons"][0]["message"]}]


def test_an_edited_structured_value_is_a_difference_at_its_path(fresh):
    api = fresh
    r = _stateless(api)
    rec = _record(api, r.json()["decision_id"])
    stored = json.loads(rec.result)
    i, reason = next((i, x) for i, x in enumerate(stored["reasons"]) if x["rule"] == "classification.amount_tier")
    name = "value"                        # the outstanding amount it classified, in fen
    true_value = reason["values"][name]
    reason["values"][name] = 1
    with api.service.tx() as s:
        s.get(DecisionRecord, rec.id).result = canonical_json(stored)
    replay = api.post(f"/v1/decisions/{rec.id}/replay", role="auditor").json()
    assert replay["identical"] is False and replay["tampered"] is True
    assert replay["diff"] == [{"path": f"reasons[{i}].values.{name}", "recorded": 1, "replayed": true_value}]
    assert replay["replayed"]["format"] == 2
