"""Referrals (issue 12): a `refer` credit check opens a referral, with reserve a provisional hold that counts
in exposure; controllers release (within their authority), reject or recheck; open referrals expire. Every
step is a record in the customer's chain and the trail verifies after each flow (real HTTP, SQLite and
PostgreSQL)."""
from __future__ import annotations

import datetime as dt
import json
import pathlib
import subprocess
import sys
from decimal import Decimal

import pytest
from sqlalchemy import select

from api.service.auth import create_key
from api.store.tables import DecisionRecord
from api_harness import NOW, POLICY_FILE, ROOT, day, uid


def _key(api, role: str, authority: str | None) -> str:
    """A key of `role` with an authority level; its name is its role."""
    name = f"{role}-{authority}-{uid('k')}"
    with api.service.tx() as s:
        raw = create_key(s, name, role, NOW, person=f"{authority} person", authority=authority)
    api.keys[name], api.key_names[name] = raw, name
    return name


def _exposure(api, cid) -> Decimal:
    r = api.get(f"/v1/customers/{cid}", role="controller")
    assert r.status_code == 200, r.text
    return Decimal(r.json()["credit"]["exposure"])


def _chain(api, cid) -> list[DecisionRecord]:
    with api.service.tx() as s:
        return s.execute(select(DecisionRecord).where(DecisionRecord.subject == cid)
                         .order_by(DecisionRecord.seq)).scalars().all()


def _verified(api) -> None:
    r = api.get("/v1/audit/verify", role="auditor")
    assert r.status_code == 200 and r.json()["ok"] is True, r.text


def _holding_policy(text: str | None = None) -> str:
    """The shipped policy with authority.provisional_hold on (referred orders with reserve hold their amount)."""
    text = text or pathlib.Path(POLICY_FILE).read_text(encoding="utf-8")
    assert "  provisional_hold: false" in text
    return text.replace("  provisional_hold: false", "  provisional_hold: true", 1)


def _publish(api, text: str) -> None:
    r = api.post("/v1/policies", {"text": text, "source": "governance-test"}, role="admin")
    assert r.status_code == 201, r.text


@pytest.fixture
def gov(fresh):
    """A new database whose live policy holds referred orders provisionally."""
    _publish(fresh, _holding_policy())
    return fresh


def _refer(api, cid, amount="460000.00", reserve=True, **extra) -> dict:
    """Limit 500,000 (score 85): 460,000 is 92 % > 90 % → check.high_utilisation refers."""
    r = api.credit_check(cid, amount, reserve=reserve, role="sales", **extra)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["outcome"] == "refer" and body["reserved"] is False, body
    return body


def _refer_days_ago(api, cid, days: int, **extra) -> dict:
    """A referral opened `days` ago: the service's clock is set back for the check (a salesperson checks
    as of today; an as_of in the past would be a controller's what-if, which opens nothing)."""
    clock = api.service.clock
    api.service.clock = lambda: NOW - dt.timedelta(days=days)
    try:
        return _refer(api, cid, **extra)
    finally:
        api.service.clock = clock


def test_refer_holds_provisionally_and_a_controller_releases(gov):
    api = gov
    cid = api.customer()
    body = _refer(api, cid)
    ref = body["referral"]
    assert ref["status"] == "open" and ref["amount"] == "460000.00" and ref["limit"] == "500000.00"
    assert ref["exposure"] == "0.00" and ref["over_limit"] == "0.00" and ref["requested_by"] == "test-sales"
    assert [x["rule"] for x in ref["reasons"]] == ["check.high_utilisation"]
    assert ref["expires_on"] == day(7)                          # policies.yaml: referral_expiry_days 7
    assert _exposure(api, cid) == Decimal("460000.00")          # the provisional hold counts in exposure
    # so the next order sees it: 460,000 + 60,000 > 500,000
    assert api.credit_check(cid, "60000.00").json()["outcome"] == "reject"

    order = body["order_id"]
    mine = api.get(f"/v1/credit-checks/{order}", role="sales")
    assert mine.status_code == 200, mine.text
    assert mine.json()["status"] == "referred" and mine.json()["reservation"] == {
        "status": "provisional", "amount": "460000.00", "expires_on": day(7)}
    other = api.get(f"/v1/credit-checks/{order}", role="sales2")
    assert other.status_code == 403 and other.json()["code"] == "E_FORBIDDEN"

    listed = api.get("/v1/referrals", role="controller", params={"customer": cid}).json()["referrals"]
    assert [x["id"] for x in listed] == [ref["id"]] and listed[0]["age_days"] == 0

    again = api.credit_check(cid, "100.00", order_id=order, reserve=True)
    assert again.status_code == 409 and again.json()["code"] == "E_REFERRAL_OPEN"
    assert ref["id"] in again.json()["message"]

    lead = _key(api, "controller", "team_lead")
    before = api.counts()
    blank = api.post(f"/v1/referrals/{ref['id']}/release", {"reason": "  "}, role=lead)
    assert blank.status_code == 422 and "reason" in blank.json()["errors"], blank.text
    assert api.post(f"/v1/referrals/{ref['id']}/release", {}, role=lead).json()["errors"].keys() == {"reason"}
    bad = api.post(f"/v1/referrals/{ref['id']}/release",
                   {"reason": "ok", "conditions": [{"type": "deposit", "amount": "1.001"}]}, role=lead)
    assert bad.status_code == 422 and "conditions[0].amount" in bad.json()["errors"], bad.text
    assert api.counts() == before
    sales = api.post(f"/v1/referrals/{ref['id']}/release", {"reason": "please"}, role="sales")
    assert sales.status_code == 403

    r = api.post(f"/v1/referrals/{ref['id']}/release",
                 {"reason": "long-standing customer; 30 % deposit taken",
                  "conditions": [{"type": "deposit", "amount": "138000.00", "note": "paid by wire"}]}, role=lead)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "released" and out["closed_by"] == lead
    assert out["conditions"] == [{"type": "deposit", "amount": "138000.00", "note": "paid by wire"}]
    order_now = api.get(f"/v1/credit-checks/{order}", role="sales").json()
    assert order_now["status"] == "released" and order_now["reservation"]["status"] == "held"
    assert order_now["reservation"]["expires_on"] == day(30)
    assert _exposure(api, cid) == Decimal("460000.00")          # now an ordinary hold
    twice = api.post(f"/v1/referrals/{ref['id']}/release", {"reason": "again"}, role=lead)
    assert twice.status_code == 409 and twice.json()["code"] == "E_REFERRAL_CLOSED"

    chain = _chain(api, cid)
    kinds = [(rec.kind, rec.outcome, rec.actor) for rec in chain]
    assert kinds == [("credit_check", "refer", "test-sales"), ("credit_check", "reject", "test-sales"),
                     ("referral_release", "released", lead)]
    assert chain[0].id == ref["decision_id"]                    # the referring check opened it
    released = json.loads(chain[-1].result)
    assert released["reason"] == "long-standing customer; 30 % deposit taken"
    assert released["authority"] == "team_lead" and released["authority_needed"] == "team_lead"
    assert released["person"] == "team_lead person"
    _verified(api)
    replay = api.post(f"/v1/decisions/{chain[-1].id}/replay", role="auditor")
    assert replay.status_code == 409 and replay.json()["code"] == "E_NOT_REPLAYABLE"


def test_reject_frees_the_provisional_hold(gov):
    api = gov
    cid = api.customer()
    ref = _refer(api, cid)["referral"]
    lead = _key(api, "controller", "team_lead")
    r = api.post(f"/v1/referrals/{ref['id']}/reject", {"reason": "group under review"}, role=lead)
    assert r.status_code == 200 and r.json()["status"] == "rejected", r.text
    assert r.json()["close_reason"] == "group under review"
    assert _exposure(api, cid) == 0
    order = api.get(f"/v1/credit-checks/{ref['order_id']}", role="sales").json()
    assert order["status"] == "rejected" and order["reservation"]["status"] == "released"
    # reservations go one way (issue 10): the released order is never held again; a new order id is
    again = api.credit_check(cid, "1000.00", order_id=ref["order_id"], reserve=True)
    assert again.status_code == 409 and again.json()["code"] == "E_RESERVATION_CLOSED", again.text
    assert _chain(api, cid)[-1].kind == "referral_reject"
    fresh_order = api.credit_check(cid, "1000.00", reserve=True)
    assert fresh_order.json()["outcome"] == "approve" and fresh_order.json()["reserved"] is True
    _verified(api)


def test_recheck_under_todays_ledger(gov):
    api = gov
    cid = api.customer()
    inv = api.invoice(cid, "100000.00", due=16, issued=-14)
    ref = _refer(api, cid, "360000.00")["referral"]            # 100,000 + 360,000 = 92 %
    assert ref["exposure"] == "100000.00"
    controller = _key(api, "controller", None)                  # a recheck needs no authority level
    still = api.post(f"/v1/referrals/{ref['id']}/recheck", role=controller)
    assert still.status_code == 200 and still.json()["outcome"] == "refer", still.text
    assert still.json()["referral"]["status"] == "open"
    api.event(cid, "payment_received", {"invoice_id": inv, "amount": "100000.00", "paid_on": day(0)})
    r = api.post(f"/v1/referrals/{ref['id']}/recheck", role=controller)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "approve" and r.json()["referral"]["status"] == "released"
    assert api.get(f"/v1/credit-checks/{ref['order_id']}", role="sales").json()["reservation"]["status"] == "held"
    assert _exposure(api, cid) == Decimal("360000.00")
    rechecks = [rec for rec in _chain(api, cid) if rec.kind == "referral_recheck"]
    assert [rec.outcome for rec in rechecks] == ["refer", "approve"]
    replay = api.post(f"/v1/decisions/{rechecks[-1].id}/replay", role="auditor")
    assert replay.status_code == 200 and replay.json()["identical"] is True
    _verified(api)


def test_a_hold_placed_after_the_referral_blocks_its_release_and_rejects_its_recheck(gov):
    """停止赊销 wins over a referral opened before it: the release is refused (E_ON_HOLD, naming the hold, nothing
    written) while the customer's own hold or its group's is in force; a recheck rejects with the hold's reason
    and frees the provisional hold; once the hold is lifted a release goes through."""
    api = gov
    lead = _key(api, "controller", "team_lead")
    own, member = api.customer(), api.customer()
    own_ref, member_ref = _refer(api, own)["referral"], _refer(api, member)["referral"]
    gid = uid("G")
    assert api.put(f"/v1/groups/{gid}", {"name": "华东集团", "limit": "5000000.00", "reason": "集团授信"},
                   role="controller").status_code == 200
    assert api.put(f"/v1/customers/{member}/group", {"group_id": gid, "reason": "subsidiary"},
                   role="controller").status_code == 200
    assert api.put(f"/v1/customers/{own}/hold", {"reason": "担保失效 guarantee lapsed"},
                   role="controller").status_code == 200
    assert api.put(f"/v1/groups/{gid}/hold", {"reason": "母公司违约 parent defaulted"},
                   role="controller").status_code == 200

    before = api.counts()
    for ref, words in ((own_ref, "guarantee lapsed"), (member_ref, "parent defaulted")):
        r = api.post(f"/v1/referrals/{ref['id']}/release", {"reason": "good customer"}, role=lead)
        assert r.status_code == 409 and r.json()["code"] == "E_ON_HOLD", r.text
        assert words in r.json()["message"] and ref["order_id"] in r.json()["message"]
    assert api.counts() == before
    assert api.get(f"/v1/credit-checks/{own_ref['order_id']}", role="sales").json()["status"] == "referred"

    r = api.post(f"/v1/referrals/{member_ref['id']}/recheck", role=lead)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["outcome"] == "reject" and out["referral"]["status"] == "rejected", out
    assert out["reasons"][0]["rule"] == "credit.group_hold" and "parent defaulted" in out["reasons"][0]["message"]
    assert "parent defaulted" in out["referral"]["close_reason"]
    assert _exposure(api, member) == 0                          # the provisional hold is freed
    recheck = [rec for rec in _chain(api, member) if rec.kind == "referral_recheck"][-1]
    assert recheck.outcome == "reject" and json.loads(recheck.facts)["group_hold"]["group_id"] == gid
    replay = api.post(f"/v1/decisions/{recheck.id}/replay", role="auditor")
    assert replay.status_code == 200 and replay.json()["identical"] is True

    assert api.post(f"/v1/customers/{own}/hold/lift", {"reason": "new guarantee signed"},
                    role="controller").status_code == 200
    r = api.post(f"/v1/referrals/{own_ref['id']}/release", {"reason": "guarantee renewed"}, role=lead)
    assert r.status_code == 200 and r.json()["status"] == "released", r.text
    _verified(api)


def test_expiry_frees_the_hold_once(gov):
    api = gov
    cid = api.customer()
    ref = _refer_days_ago(api, cid, 10)["referral"]         # opened 10 days ago: last open day was day -3
    assert ref["expires_on"] == day(-3)
    assert _exposure(api, cid) == 0                              # past its last day the hold no longer counts
    lead = _key(api, "controller", "team_lead")
    late = api.post(f"/v1/referrals/{ref['id']}/release", {"reason": "late"}, role=lead)
    assert late.status_code == 409 and late.json()["code"] == "E_REFERRAL_CLOSED"
    r = api.post("/v1/referrals/expire", role="controller")
    assert r.status_code == 200 and r.json()["expired"] == 1 and r.json()["referral_ids"] == [ref["id"]], r.text
    assert api.post("/v1/referrals/expire", role="controller").json()["expired"] == 0
    order = api.get(f"/v1/credit-checks/{ref['order_id']}", role="sales").json()
    assert order["status"] == "expired" and order["reservation"]["status"] == "released"
    last = _chain(api, cid)[-1]
    assert last.kind == "referral_expire" and last.actor == "api:test-controller"
    assert api.get("/v1/referrals", role="auditor", params={"status": "expired"}).json()["referrals"][0]["id"] \
        == ref["id"]
    _verified(api)


def test_list_filters_and_order(gov):
    api = gov
    a, b = api.customer(), api.customer()
    old = _refer_days_ago(api, a, 3)["referral"]
    big = _refer(api, b, "470000.00")["referral"]
    small = _refer(api, a, "20000.00", order_id=uid("O"))      # 460,000 held + 20,000: 96 %
    listed = api.get("/v1/referrals", role="controller").json()["referrals"]
    # oldest first (the test clock stands still: the two opened today tie on time)
    assert [x["id"] for x in listed][0] == old["id"]
    assert set(x["id"] for x in listed[1:]) == {big["id"], small["referral"]["id"]}
    q = lambda **p: [x["id"] for x in api.get("/v1/referrals", role="controller", params=p).json()["referrals"]]  # noqa: E731
    assert q(min_amount="465000") == [big["id"]]
    assert q(max_amount="20000.00") == [small["referral"]["id"]]
    assert q(min_age_days=2) == [old["id"]]
    assert set(q(max_age_days=0)) == {big["id"], small["referral"]["id"]}
    assert q(customer=b) == [big["id"]]
    assert q(status="released") == []
    bad = api.get("/v1/referrals", role="controller", params={"status": "pending", "min_amount": "x"})
    assert bad.status_code == 422 and set(bad.json()["errors"]) == {"status", "min_amount"}
    assert api.get("/v1/referrals", role="sales").status_code == 403
    assert api.get("/v1/referrals", role="backoffice").status_code == 403


def _refer_over_limit_policy() -> str:
    text = pathlib.Path(POLICY_FILE).read_text(encoding="utf-8")
    head, rule = text.split("    - id: check.over_limit\n", 1)
    return head + "    - id: check.over_limit\n" + rule.replace("outcome: reject", "outcome: refer", 1)


def test_authority_matrix(fresh):
    api = fresh
    _publish(api, _refer_over_limit_policy())
    cid = api.customer()
    ref = _refer(api, cid, "650000.00")["referral"]            # 150,000 over the 500,000 limit
    assert ref["over_limit"] == "150000.00"
    lead, manager, nobody = (_key(api, "controller", "team_lead"), _key(api, "controller", "credit_manager"),
                             _key(api, "admin", None))
    before = api.counts()
    for key in (lead, nobody):
        r = api.post(f"/v1/referrals/{ref['id']}/release", {"reason": "ok"}, role=key)
        assert r.status_code == 403 and r.json()["code"] == "E_AUTHORITY_REQUIRED", r.text
        assert "'credit_manager'" in r.json()["message"] and "150,000.00" in r.json()["message"]
    assert api.counts() == before
    r = api.post(f"/v1/referrals/{ref['id']}/release", {"reason": "manager signs off"}, role=manager)
    assert r.status_code == 200 and r.json()["status"] == "released", r.text
    assert json.loads(_chain(api, cid)[-1].result)["authority_needed"] == "credit_manager"
    # above 1,000,000 over the limit only the CFO
    big = _refer(api, api.customer(), "1600000.00")["referral"]
    assert api.post(f"/v1/referrals/{big['id']}/release", {"reason": "x"}, role=manager).json()["message"] \
        .count("'cfo'") == 1
    cfo = _key(api, "controller", "cfo")
    assert api.post(f"/v1/referrals/{big['id']}/release", {"reason": "board approved"}, role=cfo).status_code == 200
    _verified(api)


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180)


def test_command_line_keys_with_authority_and_expiry(fresh):
    api = fresh
    url = api.database_url
    bad = _cli("keys", "create", "x", "--role", "controller", "--authority", "Team Lead", "--database-url", url)
    assert bad.returncode == 2 and "authority level" in bad.stderr
    made = _cli("keys", "create", "li.na", "--role", "controller", "--authority", "team_lead",
                "--person", "李娜", "--database-url", url)
    assert made.returncode == 0, made.stderr
    raw = made.stdout.strip()
    assert raw.startswith("cc_controller_")
    api.keys["li.na"] = raw
    cid = api.customer()
    ref = _refer_days_ago(api, cid, 8)["referral"]            # last open day: yesterday
    ok = _refer(api, cid, reserve=False)["referral"]            # the expired hold no longer counts: refers again
    r = api.post(f"/v1/referrals/{ok['id']}/release", {"reason": "CLI key"}, role="li.na")
    assert r.status_code == 200 and r.json()["closed_by"] == "li.na", r.text
    assert json.loads(_chain(api, cid)[-1].result)["person"] == "李娜"
    out = _cli("referrals", "expire", "--database-url", url, "--as-of", day(0))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["referral_ids"] == [ref["id"]]
    assert _cli("referrals", "expire", "--as-of", "2026-13-01", "--database-url", url).returncode == 2
    _verified(api)


def test_without_provisional_hold_a_referral_holds_nothing(api):
    """The shipped policy (provisional_hold: false): the referral opens, exposure is untouched."""
    cid = api.customer()
    ref = _refer(api, cid)["referral"]
    assert ref["reserve"] is False and _exposure(api, cid) == 0
    order = api.get(f"/v1/credit-checks/{ref['order_id']}", role="sales").json()
    assert order["status"] == "referred" and order["reservation"] is None
    r = api.post(f"/v1/referrals/{ref['id']}/release", {"reason": "fine"}, role="controller")
    assert r.status_code == 200 and r.json()["status"] == "released", r.text
    assert api.get(f"/v1/credit-checks/{ref['order_id']}", role="sales").json()["reservation"] is None
    _verified(api)
