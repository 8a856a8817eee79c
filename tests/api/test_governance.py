"""Governance (issue 12, second part) over real HTTP on SQLite and PostgreSQL: API keys' lifecycle (list
without secrets, revoke at once in every worker, rotate with a grace), granted limits above the policy's within
the key's authority, separation of duties, four-eyes approvals. Each change is a trail record with actor and
reason, and the trail verifies after every flow."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
from sqlalchemy import select

from api.service.auth import create_key
from api.store.tables import DecisionRecord
from api_harness import NOW, ROOT, uid
from test_api_caches import another_worker


def _key(api, role: str, authority: str | None = None, person: str | None = None) -> str:
    """A new key of `role`; registered in api.keys under its name, which is returned."""
    name = f"{role}-{uid('k')}"
    with api.service.tx() as s:
        raw = create_key(s, name, role, NOW, person=person or f"{name} person", authority=authority)
    api.keys[name], api.key_names[name] = raw, name
    return name


def _verified(api) -> None:
    r = api.get("/v1/audit/verify", role="auditor")
    assert r.status_code == 200 and r.json()["ok"] is True, r.text


def _records(api, subject: str) -> list[DecisionRecord]:
    with api.service.tx() as s:
        return (
            s.execute(select(DecisionRecord).where(DecisionRecord.subject == subject).order_by(DecisionRecord.seq))
            .scalars()
            .all()
        )


# ------------------------------------------------------------------------------------------ API keys
class TestKeys:
    def test_list_shows_holders_and_never_a_secret(self, api):
        name = _key(api, "controller", "team_lead", person="李娜")
        r = api.get("/v1/keys", role="auditor")
        assert r.status_code == 200, r.text
        row = next(k for k in r.json()["keys"] if k["name"] == name)
        assert row == {
            "name": name,
            "role": "controller",
            "person": "李娜",
            "authority": "team_lead",
            "created_at": NOW.isoformat(),
            "revoked": False,
            "revoked_at": None,
            "revoked_by": None,
            "revoke_reason": None,
            "rotated_at": None,
            "previous_secret_until": None,
        }
        text = r.text
        assert all(raw not in text for raw in api.keys.values())
        assert "hash" not in text
        assert api.post(f"/v1/keys/{name}/revoke", {"reason": "x"}, role="auditor").status_code == 403

    def test_a_revoked_key_is_refused_at_once_in_every_worker(self, api):
        name = _key(api, "auditor")
        with another_worker(api) as other:
            assert api.get("/v1/audit/verify", role=name).status_code == 200
            assert other("GET", "/v1/audit/verify", name).status_code == 200  # both workers have seen it
            r = api.post(f"/v1/keys/{name}/revoke", {"reason": "离职 left the company"}, role="admin")
            assert r.status_code == 200, r.text
            assert r.json()["revoked"] is True and r.json()["revoked_by"] == "test-admin"
            for call in (
                lambda: api.get("/v1/audit/verify", role=name),
                lambda: other("GET", "/v1/audit/verify", name),
            ):
                r = call()
                assert r.status_code == 401 and r.json()["code"] == "E_UNAUTHENTICATED", r.text
        again = api.post(f"/v1/keys/{name}/revoke", {"reason": "again"}, role="admin")
        assert again.status_code == 409 and again.json()["code"] == "E_KEY_REVOKED"
        (rec,) = _records(api, f"key:{name}")
        assert (rec.kind, rec.outcome, rec.actor) == ("key_revoke", "revoked", "test-admin")
        assert json.loads(rec.result)["reason"] == "离职 left the company"
        listed = {k["name"]: k for k in api.get("/v1/keys", role="admin").json()["keys"]}
        assert listed[name]["revoke_reason"] == "离职 left the company"
        assert name not in {k["name"] for k in api.get("/v1/keys?include_revoked=false").json()["keys"]}
        _verified(api)

    def test_a_reason_is_required_and_an_unknown_key_is_404(self, api):
        name = _key(api, "sales")
        before = api.counts()
        r = api.post(f"/v1/keys/{name}/revoke", {"reason": "  "}, role="admin")
        assert r.status_code == 422 and "reason" in r.json()["errors"]
        r = api.post(f"/v1/keys/{name}/rotate", {"reason": "x", "grace_seconds": -1}, role="admin")
        assert r.status_code == 422 and "grace_seconds" in r.json()["errors"]
        assert api.post("/v1/keys/no-such-key/revoke", {"reason": "x"}).status_code == 404
        assert api.counts() == before
        assert api.get("/v1/credit-checks/none", role=name).status_code == 404  # still works

    def test_rotate_without_grace_refuses_the_old_secret_at_once(self, api):
        name = _key(api, "auditor")
        old = api.keys[name]
        r = api.post(f"/v1/keys/{name}/rotate", {"reason": "scheduled rotation"}, role="admin")
        assert r.status_code == 200, r.text
        new = r.json()["key"]
        assert new != old and new.startswith("cc_auditor_") and r.json()["previous_secret_until"] is None
        bearer = lambda raw: {"Authorization": f"Bearer {raw}"}  # noqa: E731
        assert api.get("/v1/audit/verify", role=None, headers=bearer(old)).status_code == 401
        assert api.get("/v1/audit/verify", role=None, headers=bearer(new)).status_code == 200
        assert new not in api.get("/v1/keys").text
        (rec,) = _records(api, f"key:{name}")
        assert rec.kind == "key_rotate" and new not in rec.result and old not in rec.result

    def test_rotate_with_grace_keeps_the_old_secret_until_it_ends(self, fresh):
        api = fresh
        name = _key(api, "auditor")
        old = api.keys[name]
        r = api.post(f"/v1/keys/{name}/rotate", {"reason": "rotation", "grace_seconds": 3600}, role="admin")
        assert r.status_code == 200, r.text
        assert r.json()["previous_secret_until"] == (NOW + dt.timedelta(hours=1)).isoformat()
        new = r.json()["key"]
        bearer = lambda raw: {"Authorization": f"Bearer {raw}"}  # noqa: E731
        for raw in (old, new):
            assert api.get("/v1/audit/verify", role=None, headers=bearer(raw)).status_code == 200
        clock = api.service.clock
        api.service.clock = lambda: NOW + dt.timedelta(hours=1)  # the grace's end: old secret refused
        try:
            assert api.get("/v1/audit/verify", role=None, headers=bearer(old)).status_code == 401
            assert api.get("/v1/audit/verify", role=None, headers=bearer(new)).status_code == 200
        finally:
            api.service.clock = clock
        # a revocation ends the grace too
        assert api.post(f"/v1/keys/{name}/revoke", {"reason": "compromised"}).status_code == 200
        for raw in (old, new):
            assert api.get("/v1/audit/verify", role=None, headers=bearer(raw)).status_code == 401
        assert [r.kind for r in _records(api, f"key:{name}")] == ["key_rotate", "key_revoke"]

    def test_cli_list_revoke_rotate(self, fresh):
        api = fresh
        name = _key(api, "sales", person="王伟")
        env = {"DATABASE_URL": api.database_url, "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}

        def cli(*args):
            return subprocess.run(
                [sys.executable, "-m", "api.cli", "keys", *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        out = cli("list")
        assert out.returncode == 0, out.stderr
        listed = {k["name"]: k for k in json.loads(out.stdout)["keys"]}
        assert listed[name]["person"] == "王伟" and api.keys[name] not in out.stdout
        out = cli("rotate", name, "--reason", "轮换 rotation")
        assert out.returncode == 0, out.stderr
        new = json.loads(out.stdout)["key"]
        assert (
            api.get("/v1/credit-checks/none", role=None, headers={"Authorization": f"Bearer {new}"}).status_code == 404
        )
        assert api.get("/v1/credit-checks/none", role=name).status_code == 401  # the old secret
        out = cli("revoke", name, "--reason", "离职")
        assert out.returncode == 0, out.stderr
        assert (
            api.get("/v1/credit-checks/none", role=None, headers={"Authorization": f"Bearer {new}"}).status_code == 401
        )
        out = cli("revoke", name, "--reason", "again")
        assert out.returncode == 4 and "E_KEY_REVOKED" in out.stderr
        recs = _records(api, f"key:{name}")
        assert [(r.kind, r.actor.startswith("cli:")) for r in recs] == [("key_rotate", True), ("key_revoke", True)]
        _verified(api)


# ------------------------------------------------------------------------------------------ granted limits
def _grant(api, cid, limit, role, **extra):
    return api.put(
        f"/v1/customers/{cid}/limit-grant", {"limit": limit, "reason": "战略客户 strategic account", **extra}, role=role
    )


class TestGrantedLimits:
    """Score 85: the policy's limit is 500,000. The matrix: team_lead up to 100,000 above, credit_manager up
    to 1,000,000, cfo any (the harness's controller and admin keys are cfo)."""

    def test_a_grant_above_the_policy_within_authority_moves_the_decision(self, api):
        cid = api.customer()
        assert api.credit_check(cid, "520000.00").json()["outcome"] == "reject"  # over the policy's limit
        manager = _key(api, "controller", "credit_manager", person="李娜")
        r = _grant(api, cid, "1000000.00", manager, until=(NOW.date() + dt.timedelta(days=30)).isoformat())
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "granted" and body["policy_limit"] == "500000.00"
        assert body["grant"]["limit"] == "1000000.00" and body["grant"]["person"] == "李娜"
        check = api.credit_check(cid, "520000.00")
        assert check.status_code == 201 and check.json()["outcome"] == "approve", check.text
        assert check.json()["limit"] == "1000000.00"
        rec = api.get(f"/v1/decisions/{check.json()['decision_id']}", role="auditor").json()
        credit = rec["decision"]["credit"]
        assert credit["policy_limit"] == "500000.00" and credit["limit"] == "1000000.00"
        assert credit["granted"]["granted_by"] == f"李娜 ({manager})"
        reasons = [r for r in check.json()["reasons"]]
        assert all(r["rule"] != "check.over_limit" for r in reasons)
        replay = api.post(f"/v1/decisions/{check.json()['decision_id']}/replay", role="auditor")
        assert replay.status_code == 200 and replay.json()["identical"] is True, replay.text
        # past its last day the policy's figure is back by itself (a controller's what-if 31 days on)
        later = api.credit_check(
            cid, "520000.00", role="controller", as_of=(NOW.date() + dt.timedelta(days=31)).isoformat()
        )
        assert later.json()["outcome"] == "reject" and later.json()["limit"] == "500000.00", later.text
        kinds = [(r.kind, r.outcome) for r in _records(api, cid)]
        assert ("limit_grant", "granted") in kinds
        _verified(api)

    def test_above_the_keys_authority_is_refused_naming_the_level(self, api):
        cid = api.customer()
        lead = _key(api, "controller", "team_lead")
        before = api.counts()
        r = _grant(api, cid, "700000.00", lead)  # 200,000 above: credit_manager's
        assert r.status_code == 403 and r.json()["code"] == "E_GRANT_AUTHORITY", r.text
        assert "credit_manager" in r.json()["message"] and "team_lead" in r.json()["message"]
        assert api.counts() == before
        assert _grant(api, cid, "550000.00", lead).status_code == 200  # 50,000 above: its own
        assert _grant(api, cid, "200000.00", _key(api, "controller")).status_code == 200  # below: no level

    def test_referred_to_the_next_level_and_approved_there(self, api):
        cid = api.customer()
        lead = _key(api, "controller", "team_lead", person="张三")
        r = _grant(api, cid, "700000.00", lead, refer=True)
        assert r.status_code == 202, r.text
        approval = r.json()["approval"]
        assert approval["status"] == "pending" and approval["payload"]["authority_needed"] == "credit_manager"
        assert api.get(f"/v1/customers/{cid}/limit-grant").json()["grant"] is None  # not yet
        listed = api.get("/v1/approvals", role="auditor", params={"kind": "limit_grant"}).json()["approvals"]
        assert approval["id"] in {a["id"] for a in listed}
        path = f"/v1/approvals/{approval['id']}"
        other_lead = _key(api, "controller", "team_lead")
        r = api.post(f"{path}/approve", {"reason": "ok"}, role=other_lead)
        assert r.status_code == 403 and r.json()["code"] == "E_GRANT_AUTHORITY", r.text
        same = _key(api, "controller", "cfo", person="张三")  # the requester's other key
        r = api.post(f"{path}/approve", {"reason": "ok"}, role=same)
        assert r.status_code == 403 and r.json()["code"] == "E_SAME_PERSON", r.text
        manager = _key(api, "controller", "credit_manager")
        r = api.post(f"{path}/approve", {"reason": "同意 agreed"}, role=manager)
        assert r.status_code == 200, r.text
        assert r.json()["approval"]["status"] == "approved" and r.json()["grant"]["approved_by"] == manager
        assert r.json()["grant"]["granted_by"] == lead
        assert api.post(f"{path}/approve", {"reason": "again"}, role="admin").json()["code"] == "E_APPROVAL_CLOSED"
        assert api.credit_check(cid, "520000.00").json()["limit"] == "700000.00"
        kinds = [r.kind for r in _records(api, cid)]
        assert kinds.index("limit_grant_request") < kinds.index("limit_grant")
        _verified(api)

    def test_revoke_falls_back_to_the_policy(self, api):
        cid = api.customer()
        assert _grant(api, cid, "900000.00", "controller").status_code == 200
        assert api.credit_check(cid, "600000.00").json()["outcome"] == "approve"
        r = api.post(f"/v1/customers/{cid}/limit-grant/revoke", {"reason": "strategy ended"}, role="controller")
        assert r.status_code == 200 and r.json()["before"]["limit"] == "900000.00", r.text
        assert api.credit_check(cid, "600000.00").json()["outcome"] == "reject"
        again = api.post(f"/v1/customers/{cid}/limit-grant/revoke", {"reason": "x"}, role="controller")
        assert again.status_code == 409 and again.json()["code"] == "E_NO_GRANT"
        assert api.get(f"/v1/customers/{cid}/limit-grant", role="sales").json() == {
            "customer_id": cid,
            "grant": None,
            "in_force": False,
        }

    def test_bad_grants_change_nothing(self, api):
        cid = api.customer()
        before = api.counts()
        for body in (
            {"limit": "-1", "reason": "x"},
            {"limit": "1.001", "reason": "x"},
            {"limit": "10"},
            {"limit": "10", "reason": " "},
            {"limit": "10", "reason": "x", "until": "2020-01-01"},
            {"limit": "10", "reason": "x", "extra": 1},
        ):
            r = api.put(f"/v1/customers/{cid}/limit-grant", body, role="controller")
            assert r.status_code == 422, (body, r.text)
        assert (
            api.put("/v1/customers/nobody/limit-grant", {"limit": "10", "reason": "x"}, role="controller").status_code
            == 404
        )
        assert api.counts() == before


# ------------------------------------------------------------------------------------------ separation of duties
class TestSeparationOfDuties:
    def _referral(self, api, role):
        r = api.credit_check(api.customer(), "460000.00", role=role)  # 92 % of 500,000: referred
        assert r.status_code == 201 and r.json()["outcome"] == "refer", r.text
        return r.json()["referral"]

    def test_a_controller_cant_release_a_referral_it_opened(self, api):
        ref = self._referral(api, "controller")
        before = api.counts()
        r = api.post(f"/v1/referrals/{ref['id']}/release", {"reason": "mine"}, role="controller")
        assert r.status_code == 403 and r.json()["code"] == "E_SAME_PERSON", r.text
        assert api.counts() == before
        r = api.post(f"/v1/referrals/{ref['id']}/release", {"reason": "checked by another"}, role="admin")
        assert r.status_code == 200 and r.json()["status"] == "released", r.text

    def test_nor_with_another_key_of_the_same_person(self, api):
        seller = _key(api, "sales", person="王芳")
        ref = self._referral(api, seller)
        mine = _key(api, "controller", "cfo", person="王芳")
        r = api.post(f"/v1/referrals/{ref['id']}/release", {"reason": "mine"}, role=mine)
        assert r.status_code == 403 and r.json()["code"] == "E_SAME_PERSON", r.text
        assert api.post(f"/v1/referrals/{ref['id']}/release", {"reason": "ok"}, role="controller").status_code == 200

    def test_an_auditor_reads_but_never_writes(self, api):
        cid = api.customer()
        before = api.counts()
        for method, path, body in (
            ("PUT", f"/v1/customers/{cid}/limit-grant", {"limit": "1", "reason": "x"}),
            ("POST", f"/v1/customers/{cid}/limit-grant/revoke", {"reason": "x"}),
            ("POST", "/v1/approvals/x/approve", {"reason": "x"}),
            ("POST", "/v1/keys/test-sales/revoke", {"reason": "x"}),
            ("PUT", f"/v1/customers/{cid}/hold", {"reason": "x"}),
            ("POST", "/v1/policies", {"text": "x"}),
        ):
            r = api.request(method, path, "auditor", json=body)
            assert r.status_code == 403 and r.json()["code"] == "E_FORBIDDEN", (path, r.text)
        assert api.counts() == before
        reads = {
            "/v1/keys": 200,
            "/v1/approvals": 200,
            "/v1/referrals": 200,
            f"/v1/customers/{cid}/limit-grant": 403,
        }  # customer files are not the auditor's
        assert {path: api.get(path, role="auditor").status_code for path in reads} == reads

    def test_the_role_table_in_the_docs_is_the_permission_table(self):
        from api.service.auth import PERMISSIONS, ROLES

        text = (ROOT / "docs" / "governance.md").read_text(encoding="utf-8")
        table = text.split("<!-- roles:begin -->", 1)[1].split("<!-- roles:end -->", 1)[0]
        rows = [line.strip().strip("|").split("|") for line in table.strip().splitlines()[2:]]
        header = [c.strip() for c in table.strip().splitlines()[0].strip().strip("|").split("|")]
        assert header == ["permission", *ROLES]
        documented = {
            cells[0].strip().strip("`"): {role for role, cell in zip(ROLES, cells[1:]) if cell.strip()}
            for cells in rows
        }
        assert documented == {p: set(roles) for p, roles in PERMISSIONS.items()}


# ------------------------------------------------------------------------------------------ four-eyes
def _four_eyes_policy(text: str) -> str:
    head, rest = text.split("\nauthority:", 1)
    line, rest = rest.split("\n", 1)
    return f'{head}\nauthority:{line}\n  four_eyes_above: "200000"\n  four_eyes_publish: true\n{rest}'


@pytest.fixture
def four_eyes(fresh):
    """A new database whose live policy wants a second person above 200,000 over the policy's limit and for
    every publish (published before four-eyes is on, so at once)."""
    text = (ROOT / "policies.yaml").read_text(encoding="utf-8")
    r = fresh.post("/v1/policies", {"text": _four_eyes_policy(text), "source": "four-eyes"}, role="admin")
    assert r.status_code == 201, r.text
    fresh.four_eyes_text = _four_eyes_policy(text)
    return fresh


class TestFourEyes:
    def test_a_large_grant_waits_for_a_second_person(self, four_eyes):
        api = four_eyes
        cid = api.customer()
        assert _grant(api, cid, "650000.00", "controller").status_code == 200  # 150,000 above: one person
        r = _grant(api, cid, "800000.00", "controller")  # 300,000 above: two
        assert r.status_code == 202 and r.json()["why"] == "four_eyes", r.text
        approval = r.json()["approval"]
        assert api.get(f"/v1/customers/{cid}/limit-grant").json()["grant"]["limit"] == "650000.00"
        r = api.post(f"/v1/approvals/{approval['id']}/approve", {"reason": "self"}, role="controller")
        assert r.status_code == 403 and r.json()["code"] == "E_SAME_PERSON", r.text
        r = api.post(f"/v1/approvals/{approval['id']}/approve", {"reason": "四眼 checked"}, role="admin")
        assert r.status_code == 200, r.text
        assert api.get(f"/v1/customers/{cid}/limit-grant").json()["grant"]["limit"] == "800000.00"
        steps = [(rec.kind, rec.outcome, rec.actor) for rec in _records(api, cid) if rec.kind.startswith("limit")]
        assert steps == [
            ("limit_grant", "granted", "test-controller"),
            ("limit_grant_request", "pending", "test-controller"),
            ("limit_grant", "granted", "test-admin"),
        ]
        _verified(api)

    def test_a_rejected_grant_changes_nothing_but_the_trail(self, four_eyes):
        api = four_eyes
        cid = api.customer()
        approval = _grant(api, cid, "900000.00", "controller").json()["approval"]
        r = api.post(f"/v1/approvals/{approval['id']}/reject", {"reason": "不同意 no"}, role="admin")
        assert r.status_code == 200 and r.json()["approval"]["status"] == "rejected", r.text
        assert api.get(f"/v1/customers/{cid}/limit-grant").json()["grant"] is None
        assert api.credit_check(cid, "600000.00").json()["outcome"] == "reject"
        rejected = api.get("/v1/approvals", params={"status": "rejected"}).json()["approvals"]
        assert [a["decision_reason"] for a in rejected if a["id"] == approval["id"]] == ["不同意 no"]

    def test_a_publish_is_a_proposal_until_another_person_approves(self, four_eyes):
        api = four_eyes
        active = api.get("/v1/policies/active").json()["version"]
        candidate = api.four_eyes_text.replace("referral_expiry_days: 7", "referral_expiry_days: 9", 1)
        r = api.post("/v1/policies", {"text": candidate, "source": "proposal"}, role="controller")
        assert r.status_code == 202 and r.json()["pending"] is True, r.text
        version, approval = r.json()["version"], r.json()["approval"]
        assert api.get("/v1/policies/active").json()["version"] == active
        assert api.get(f"/v1/policies/{version}").status_code == 404  # stored when approved
        path = f"/v1/approvals/{approval['id']}"
        assert api.post(f"{path}/approve", {"reason": "self"}, role="controller").json()["code"] == "E_SAME_PERSON"
        r = api.post(f"{path}/approve", {"reason": "reviewed the simulation"}, role="admin")
        assert r.status_code == 200 and r.json()["active"] is True, r.text
        assert api.get("/v1/policies/active").json()["version"] == version
        steps = [(rec.kind, rec.outcome, rec.actor) for rec in _records(api, f"policy:{version}")]
        assert steps == [("policy_propose", "pending", "test-controller"), ("policy_approve", "approved", "test-admin")]
        # an invalid text is refused at once, nothing is proposed
        before = api.counts()
        bad = api.post("/v1/policies", {"text": "version: [", "source": "bad"}, role="controller")
        assert bad.status_code == 422 and api.counts() == before
        _verified(api)


# ------------------------------------------------------------------------------------------ customer groups
def _group(api, limit, members):
    gid = uid("G")
    r = api.put(
        f"/v1/groups/{gid}",
        {"name": "华东集团 East China Group", "limit": limit, "reason": "集团授信"},
        role="controller",
    )
    assert r.status_code == 200, r.text
    for cid in members:
        r = api.put(f"/v1/customers/{cid}/group", {"group_id": gid, "reason": "subsidiary"}, role="controller")
        assert r.status_code == 200, r.text
    return gid


class TestCustomerGroups:
    def test_the_group_limit_binds_across_members_and_the_reasons_name_the_group(self, api):
        a, b = api.customer(), api.customer()  # each: limit 500,000
        gid = _group(api, "600000.00", [a, b])
        first = api.credit_check(a, "400000.00", reserve=True)
        assert first.json()["outcome"] == "approve" and first.json()["reserved"], first.text
        assert first.json()["group"]["exposure_after_order"] == "400000.00"
        assert any(r["rule"] == "credit.group" and gid in r["message"] for r in first.json()["reasons"])
        second = api.credit_check(b, "300000.00", reserve=True)  # within b's own limit, not the group's
        body = second.json()
        assert second.status_code == 201 and body["outcome"] == "reject" and not body["reserved"], second.text
        assert body["reasons"][0]["rule"] == "credit.group_limit" and gid in body["reasons"][0]["message"]
        assert "700,000" in body["reasons"][0]["message"] or "700000" in body["reasons"][0]["message"]
        assert body["limit"] == "500000.00" and body["group"]["limit"] == "600000.00"
        assert api.credit_check(b, "200000.00").json()["outcome"] == "approve"
        r = api.get(f"/v1/groups/{gid}", role="controller")
        assert r.json()["exposure"] == "400000.00" and sorted(r.json()["members"]) == sorted([a, b])
        # the record keeps the engine's decision (replayable) and the group's outcome
        replay = api.post(f"/v1/decisions/{body['decision_id']}/replay", role="auditor")
        assert replay.json()["identical"] is True
        rec = api.get(f"/v1/decisions/{body['decision_id']}", role="auditor").json()
        assert rec["outcome"] == "reject"
        # leaving the group: its own limit only
        assert (
            api.put(f"/v1/customers/{b}/group", {"group_id": None, "reason": "sold"}, role="controller").status_code
            == 200
        )
        assert api.credit_check(b, "300000.00").json()["outcome"] == "approve"
        assert [r.kind for r in _records(api, f"group:{gid}")] == ["group_set"]
        assert [r.kind for r in _records(api, b) if r.kind == "group_member"] == ["group_member"] * 2
        _verified(api)

    def test_parallel_reservations_across_members_never_exceed_the_group_limit(self, api):
        import concurrent.futures

        members = [api.customer() for _ in range(3)]
        _group(api, "300000.00", members)  # room for 15 orders of 20,000

        def check(i):
            return api.credit_check(members[i % 3], "20000.00", reserve=True).json()

        with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(pool.map(check, range(50)))
        reserved = [a for a in answers if a.get("reserved")]
        assert len(reserved) == 15, [a.get("outcome") or a for a in answers][:5]
        assert all(
            a["outcome"] == "reject" and a["reasons"][0]["rule"] == "credit.group_limit"
            for a in answers
            if not a.get("reserved")
        )
        _verified(api)

    def test_groups_are_the_controllers(self, api):
        cid = api.customer()
        before = api.counts()
        for role in ("backoffice", "sales", "auditor"):
            r = api.put(f"/v1/groups/{uid('G')}", {"name": "x", "limit": "1", "reason": "x"}, role=role)
            assert r.status_code == 403, r.text
        assert (
            api.put(
                f"/v1/customers/{cid}/group", {"group_id": "no-such-group", "reason": "x"}, role="controller"
            ).status_code
            == 404
        )
        assert api.counts() == before
