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
        return s.execute(select(DecisionRecord).where(DecisionRecord.subject == subject)
                         .order_by(DecisionRecord.seq)).scalars().all()


# ------------------------------------------------------------------------------------------ API keys
class TestKeys:
    def test_list_shows_holders_and_never_a_secret(self, api):
        name = _key(api, "controller", "team_lead", person="李娜")
        r = api.get("/v1/keys", role="auditor")
        assert r.status_code == 200, r.text
        row = next(k for k in r.json()["keys"] if k["name"] == name)
        assert row == {"name": name, "role": "controller", "person": "李娜", "authority": "team_lead",
                       "created_at": NOW.isoformat(), "revoked": False, "revoked_at": None, "revoked_by": None,
                       "revoke_reason": None, "rotated_at": None, "previous_secret_until": None}
        text = r.text
        assert all(raw not in text for raw in api.keys.values())
        assert "hash" not in text
        assert api.post(f"/v1/keys/{name}/revoke", {"reason": "x"}, role="auditor").status_code == 403

    def test_a_revoked_key_is_refused_at_once_in_every_worker(self, api):
        name = _key(api, "auditor")
        with another_worker(api) as other:
            assert api.get("/v1/audit/verify", role=name).status_code == 200
            assert other("GET", "/v1/audit/verify", name).status_code == 200     # both workers have seen it
            r = api.post(f"/v1/keys/{name}/revoke", {"reason": "离职 left the company"}, role="admin")
            assert r.status_code == 200, r.text
            assert r.json()["revoked"] is True and r.json()["revoked_by"] == "test-admin"
            for call in (lambda: api.get("/v1/audit/verify", role=name),
                         lambda: other("GET", "/v1/audit/verify", name)):
                r = call()
                assert r.status_code == 401 and r.json()["code"] == "E_UNAUTHENTICATED", r.text
        again = api.post(f"/v1/keys/{name}/revoke", {"reason": "again"}, role="admin")
        assert again.status_code == 409 and again.json()["code"] == "E_KEY_REVOKED"
        rec, = _records(api, f"key:{name}")
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
        assert api.get("/v1/credit-checks/none", role=name).status_code == 404      # still works

    def test_rotate_without_grace_refuses_the_old_secret_at_once(self, api):
        name = _key(api, "auditor")
        old = api.keys[name]
        r = api.post(f"/v1/keys/{name}/rotate", {"reason": "scheduled rotation"}, role="admin")
        assert r.status_code == 200, r.text
        new = r.json()["key"]
        assert new != old and new.startswith("cc_auditor_") and r.json()["previous_secret_until"] is None
        bearer = lambda raw: {"Authorization": f"Bearer {raw}"}          # noqa: E731
        assert api.get("/v1/audit/verify", role=None, headers=bearer(old)).status_code == 401
        assert api.get("/v1/audit/verify", role=None, headers=bearer(new)).status_code == 200
        assert new not in api.get("/v1/keys").text
        rec, = _records(api, f"key:{name}")
        assert rec.kind == "key_rotate" and new not in rec.result and old not in rec.result

    def test_rotate_with_grace_keeps_the_old_secret_until_it_ends(self, fresh):
        api = fresh
        name = _key(api, "auditor")
        old = api.keys[name]
        r = api.post(f"/v1/keys/{name}/rotate", {"reason": "rotation", "grace_seconds": 3600}, role="admin")
        assert r.status_code == 200, r.text
        assert r.json()["previous_secret_until"] == (NOW + dt.timedelta(hours=1)).isoformat()
        new = r.json()["key"]
        bearer = lambda raw: {"Authorization": f"Bearer {raw}"}          # noqa: E731
        for raw in (old, new):
            assert api.get("/v1/audit/verify", role=None, headers=bearer(raw)).status_code == 200
        clock = api.service.clock
        api.service.clock = lambda: NOW + dt.timedelta(hours=1)          # the grace's end: old secret refused
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
            return subprocess.run([sys.executable, "-m", "api.cli", "keys", *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=120)
        out = cli("list")
        assert out.returncode == 0, out.stderr
        listed = {k["name"]: k for k in json.loads(out.stdout)["keys"]}
        assert listed[name]["person"] == "王伟" and api.keys[name] not in out.stdout
        out = cli("rotate", name, "--reason", "轮换 rotation")
        assert out.returncode == 0, out.stderr
        new = json.loads(out.stdout)["key"]
        assert api.get("/v1/credit-checks/none", role=None,
                       headers={"Authorization": f"Bearer {new}"}).status_code == 404
        assert api.get("/v1/credit-checks/none", role=name).status_code == 401        # the old secret
        out = cli("revoke", name, "--reason", "离职")
        assert out.returncode == 0, out.stderr
        assert api.get("/v1/credit-checks/none", role=None,
                       headers={"Authorization": f"Bearer {new}"}).status_code == 401
        out = cli("revoke", name, "--reason", "again")
        assert out.returncode == 4 and "E_KEY_REVOKED" in out.stderr
        recs = _records(api, f"key:{name}")
        assert [(r.kind, r.actor.startswith("cli:")) for r in recs] == [("key_rotate", True), ("key_revoke", True)]
        _verified(api)
