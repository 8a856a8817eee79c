"""Separation of duties on the credit file over real HTTP (SQLite and PostgreSQL): back office keeps identity and
contact data; the fields a decision reads (manual score, approved limit and terms, arrears reason, segment
attributes) it may send only unchanged — a change is 403 E_DECISION_FIELD naming each field and writes nothing —
and a controller's change needs a reason and is a trail record with before/after and actor."""

from __future__ import annotations

import pytest

from api_harness import uid

FILE = {
    "name": "测试客户 test customer",
    "type": "enterprise",
    "industry": "trading",
    "region": "local",
    "size": "large",
    "since": "2015-01-01",
}


def _open(api, **extra) -> str:
    """A file back office opens: identity and segment attributes, no manual score."""
    cid = uid("C")
    r = api.put(f"/v1/customers/{cid}", {**FILE, **extra}, role="backoffice")
    assert r.status_code == 201, r.text
    return cid


def _file(api, cid) -> dict:
    got = api.get(f"/v1/customers/{cid}", role="controller").json()
    return {
        k: got[k]
        for k in (
            *FILE,
            "credit_score",
            "approved_limit",
            "approved_terms_days",
            "arrears_reason",
            "deal_type",
            "collector",
            "external_rating",
        )
    }


@pytest.mark.parametrize(
    "field, value",
    [
        ("credit_score", 95),
        ("approved_limit", "5000000.00"),
        ("approved_terms_days", 90),
        ("arrears_reason", "operating_pressure"),
        ("region", "remote"),
        ("industry", "services"),
        ("since", "2024-01-01"),
    ],
)
def test_back_office_changing_a_decision_field_is_403_naming_it_and_writes_nothing(api, field, value):
    cid = _open(api)
    before, counts = _file(api, cid), api.counts()
    r = api.put(f"/v1/customers/{cid}", {**FILE, field: value}, role="backoffice")
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "E_DECISION_FIELD" and list(r.json()["errors"]) == [field], r.text
    assert field in r.json()["message"]
    assert _file(api, cid) == before and api.counts() == counts


def test_a_manual_score_on_a_new_file_is_the_controllers_too(api):
    cid, counts = uid("C"), api.counts()
    r = api.put(f"/v1/customers/{cid}", {**FILE, "credit_score": 85}, role="backoffice")
    assert r.status_code == 403 and r.json()["errors"].keys() == {"credit_score"}, r.text
    assert api.get(f"/v1/customers/{cid}", role="controller").status_code == 404
    assert api.counts() == counts


def test_the_same_event_way_is_refused_too(api):
    cid = _open(api)
    counts = api.counts()
    r = api.event(cid, "customer_updated", {"credit_score": 99}, role="backoffice", expect=None)
    assert r.status_code == 403 and r.json()["code"] == "E_DECISION_FIELD", r.text
    assert list(r.json()["errors"]) == ["data.credit_score"]
    assert api.counts() == counts


def test_back_office_updates_identity_and_contact_data_and_resends_decision_fields_unchanged(api):
    cid = api.customer()  # opened by a controller with a manual score of 85
    current = {
        k: v
        for k, v in api.get(f"/v1/customers/{cid}", role="controller").json().items()
        if k
        in (
            *FILE,
            "credit_score",
            "approved_limit",
            "approved_terms_days",
            "arrears_reason",
            "deal_type",
            "collector",
            "external_rating",
            "last_reviewed_on",
            "tags",
        )
    }
    r = api.put(f"/v1/customers/{cid}", {**current, "name": "新名字 renamed", "collector": "韩梅梅"}, role="backoffice")
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["credit_score"], r.json()["collector"]) == ("新名字 renamed", 85, "韩梅梅")
    assert "decision_id" not in r.json()  # nothing a decision reads changed: no record


def test_a_controllers_change_needs_a_reason_and_is_a_record_with_before_and_after(api):
    cid = _open(api)
    counts = api.counts()
    r = api.put(f"/v1/customers/{cid}", {**FILE, "credit_score": 70, "region": "remote"}, role="controller")
    assert r.status_code == 422 and "reason" in r.json()["errors"], r.text
    assert api.counts() == counts
    r = api.put(
        f"/v1/customers/{cid}",
        {**FILE, "credit_score": 70, "region": "remote"},
        role="controller",
        params={"reason": "年度评估 annual review"},
    )
    assert r.status_code == 200, r.text
    rec = api.get(f"/v1/decisions/{r.json()['decision_id']}", role="auditor").json()
    assert (rec["kind"], rec["subject"], rec["actor"], rec["outcome"]) == (
        "credit_file_change",
        cid,
        "test-controller",
        "changed",
    )
    assert rec["facts"]["reason"] == "年度评估 annual review"
    assert rec["facts"]["changes"] == {
        "credit_score": {"before": None, "after": 70},
        "region": {"before": "local", "after": "remote"},
    }
    # the change decides: reputation medium (70) → the medium limit
    assert api.get(f"/v1/customers/{cid}", role="controller").json()["credit"]["limit"] == "200000.00"
    assert api.get("/v1/audit/verify", role="auditor").json()["ok"] is True


# ------------------------------------------------------------------------------ aging by customer group
def test_aging_sums_each_groups_members_and_names_its_limit(fresh):
    api = fresh
    gid = uid("G")
    r = api.put(
        f"/v1/groups/{gid}",
        {"name": "鞍钢集团 Ansteel group", "limit": "300000.00", "reason": "parent"},
        role="controller",
    )
    assert r.status_code == 200, r.text
    a, b, alone = api.customer(), api.customer(), api.customer()
    for cid in (a, b):
        r = api.put(f"/v1/customers/{cid}/group", {"group_id": gid, "reason": "subsidiary"}, role="controller")
        assert r.status_code == 200, r.text
    api.invoice(a, "10000.00", due=-40)  # medium bucket
    api.invoice(b, "2500.50", due=5)  # current
    api.invoice(alone, "700.00", due=-3)  # short, in no group
    rep = api.get("/v1/reports/aging", params={"as_of": "2026-12-15"}, role="auditor")
    assert rep.status_code == 200, rep.text
    groups = {g["key"]: g for g in rep.json()["groups"]}
    assert set(groups) == {gid, None}
    g = groups[gid]
    assert (g["name"], g["limit"], g["customers"], g["outstanding"], g["overdue"], g["open_invoices"]) == (
        "鞍钢集团 Ansteel group",
        "300000.00",
        2,
        "12500.50",
        "10000.00",
        2,
    )
    assert (g["buckets"]["medium"], g["buckets"]["current"]) == ("10000.00", "2500.50")
    none = groups[None]
    assert (none["name"], none["limit"], none["customers"], none["outstanding"]) == (None, None, 1, "700.00")
    # the groups partition the book
    total = rep.json()["total"]
    assert sum(x["customers"] for x in groups.values()) == total["customers"] == 3
