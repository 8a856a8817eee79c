"""Effective-dated policy versions over real HTTP (SQLite and PostgreSQL): a version published with a later
`effective_from` is scheduled (listed, cancellable until its day), every evaluation uses the version in force on
its as_of (a back-dated one and its replay the version then in force), the day's coming is recorded once, and
each activation, scheduling and cancellation is a record in the trail with actor and reason."""

from __future__ import annotations

import datetime as dt

import pytest

from api_harness import NOW, POLICY_FILE, Api, day

with open(POLICY_FILE, encoding="utf-8") as _fh:
    POLICY_TEXT = _fh.read()
HIGH_LIMIT = 'limit: "500000"'


def with_high_limit(amount: int) -> str:
    return POLICY_TEXT.replace(HIGH_LIMIT, f'limit: "{amount}"')


def _evaluate(api, cid, as_of, role="controller"):
    r = api.post(f"/v1/customers/{cid}/evaluate", {"as_of": as_of}, role=role)
    assert r.status_code == 201, r.text
    return r.json()


def _kinds(api, kind):
    r = api.get("/v1/decisions", role="auditor", params={"kind": kind, "limit": 100})
    assert r.status_code == 200, r.text
    return r.json()["decisions"]


def _in_force(api) -> str:
    return api.get("/v1/policies", role="controller").json()["in_force"]


def test_a_future_version_is_scheduled_listed_and_decides_only_from_its_day(fresh):
    api = fresh
    cid = api.customer()
    v1 = _in_force(api)
    r = api.post(
        "/v1/policies",
        {
            "text": with_high_limit(300000),
            "source": "limits-2027",
            "effective_from": day(10),
            "reason": "新年度额度 new year's limits",
        },
        role="controller",
    )
    assert r.status_code == 201, r.text
    body = r.json()
    v2 = body["version"]
    assert (body["scheduled"], body["active"], body["effective_from"], body["changed"]) == (True, False, day(10), True)
    listing = api.get("/v1/policies", role="controller").json()
    assert listing["in_force"] == v1 and listing["today"] == day(0)
    assert [
        (a["version"], a["effective_from"], a["status"], a["reason"], a["created_by"]) for a in listing["scheduled"]
    ] == [(v2, day(10), "scheduled", "新年度额度 new year's limits", "test-controller")]
    assert {v["version"] for v in listing["versions"]} == {v1, v2}
    assert "text" not in listing["versions"][0]
    # the active version is still v1; evaluations pick by their as_of
    assert api.get("/v1/policies/active", role="controller").json()["version"] == v1
    today = _evaluate(api, cid, day(0))["decision"]
    later = _evaluate(api, cid, day(10))["decision"]
    assert (today["policy_version"], today["credit"]["limit"]) == (v1, "500000.00")
    assert (later["policy_version"], later["credit"]["limit"]) == (v2, "300000.00")
    got = api.get(f"/v1/customers/{cid}", role="controller", params={"as_of": day(11)}).json()
    assert (got["policy_version"], got["credit"]["limit"]) == (v2, "300000.00")
    # a credit check as of today keeps deciding under v1
    check = api.credit_check(cid, "1000.00").json()
    assert (check["policy_version"], check["limit"]) == (v1, "500000.00")
    # the scheduling is a trail record with actor and reason; the version's page lists its activation
    (rec,) = _kinds(api, "policy_schedule")
    assert (rec["actor"], rec["outcome"], rec["policy_version"], rec["subject"]) == (
        "test-controller",
        "scheduled",
        v2,
        "policy:timeline",
    )
    page = api.get(f"/v1/policies/{v2}", role="auditor").json()
    assert [(a["status"], a["decision_id"]) for a in page["activations"]] == [("scheduled", rec["id"])]
    assert api.get("/v1/audit/verify", role="auditor").json()["ok"] is True


def test_a_scheduled_version_is_cancelled_before_its_day_and_never_decides(fresh):
    api = fresh
    cid = api.customer()
    v1 = _in_force(api)
    r = api.post(
        "/v1/policies", {"text": with_high_limit(300000), "effective_from": day(5), "reason": "plan"}, role="controller"
    )
    activation = r.json()["activation_id"]
    before = api.counts()
    bad = api.post(f"/v1/policies/activations/{activation}/cancel", {"reason": ""}, role="controller")
    assert bad.status_code == 422 and "reason" in bad.json()["errors"], bad.text
    assert api.counts() == before
    r = api.post(f"/v1/policies/activations/{activation}/cancel", {"reason": "撤销 board said no"}, role="controller")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["cancelled_by"], r.json()["cancel_reason"]) == (
        "cancelled",
        "test-controller",
        "撤销 board said no",
    )
    assert _evaluate(api, cid, day(6))["decision"]["policy_version"] == v1
    assert api.get("/v1/policies", role="controller").json()["scheduled"] == []
    again = api.post(f"/v1/policies/activations/{activation}/cancel", {"reason": "again"}, role="controller")
    assert again.status_code == 409 and again.json()["code"] == "E_ACTIVATION_CLOSED", again.text
    (rec,) = _kinds(api, "policy_cancel")
    assert (rec["actor"], rec["outcome"]) == ("test-controller", "cancelled")
    # what is in force is history: cancelling it is refused, nothing changes
    in_force = next(
        a for a in api.get("/v1/policies", role="controller").json()["activations"] if a["status"] == "in_force"
    )
    before = api.counts()
    r = api.post(f"/v1/policies/activations/{in_force['id']}/cancel", {"reason": "x"}, role="controller")
    assert r.status_code == 409 and r.json()["code"] == "E_ACTIVATION_CLOSED", r.text
    assert api.post("/v1/policies/activations/999999/cancel", {"reason": "x"}, role="controller").status_code == 404
    assert api.counts() == before
    assert api.get("/v1/audit/verify", role="auditor").json()["ok"] is True


def test_a_back_dated_effective_from_is_refused_and_changes_nothing(fresh):
    api = fresh
    before = api.counts()
    r = api.post("/v1/policies", {"text": with_high_limit(300000), "effective_from": day(-1)}, role="controller")
    assert r.status_code == 422 and r.json()["code"] == "E_INPUT_INVALID" and "effective_from" in r.json()["errors"]
    r = api.post(
        "/v1/policies?effective_from=yesterday",
        data=with_high_limit(300000).encode(),
        headers={"Content-Type": "application/yaml"},
        role="controller",
    )
    assert r.status_code == 422 and "effective_from" in r.json()["errors"], r.text
    assert api.counts() == before


def test_publishing_the_same_schedule_twice_changes_nothing(fresh):
    api = fresh
    body = {"text": with_high_limit(300000), "effective_from": day(3)}
    first = api.post("/v1/policies", body, role="controller")
    assert first.status_code == 201
    again = api.post("/v1/policies", body, role="controller")
    assert again.status_code == 200 and again.json()["changed"] is False, again.text
    assert len(api.get("/v1/policies", role="controller").json()["scheduled"]) == 1


def test_an_auditor_reads_the_versions_and_their_timeline_but_publishes_nothing(fresh):
    api = fresh
    api.post("/v1/policies", {"text": with_high_limit(300000), "effective_from": day(3)}, role="controller")
    listing = api.get("/v1/policies", role="auditor")
    assert listing.status_code == 200 and len(listing.json()["activations"]) == 2
    v2 = listing.json()["scheduled"][0]["version"]
    assert api.get(f"/v1/policies/{v2}", role="auditor").json()["text"] == with_high_limit(300000)
    r = api.post(
        f"/v1/policies/activations/{listing.json()['scheduled'][0]['id']}/cancel", {"reason": "x"}, role="auditor"
    )
    assert r.status_code == 403 and r.json()["code"] == "E_FORBIDDEN"
    assert api.get("/v1/policies", role="sales").status_code == 403


@pytest.fixture
def moving(backend):
    """A new database whose clock a test moves on (starting at the harness's NOW)."""
    now = [NOW]
    api = Api(backend.name, backend.new_url(), clock=lambda: now[0])
    api.now = now
    yield api
    api.close()


def test_the_day_comes_the_version_is_in_force_once_and_back_dated_decisions_replay_under_the_old(moving):
    api = moving
    cid = api.customer()
    v1 = _in_force(api)
    v2 = api.post(
        "/v1/policies",
        {"text": with_high_limit(300000), "effective_from": day(5), "reason": "from the 20th"},
        role="controller",
    ).json()["version"]
    early = _evaluate(api, cid, day(2))  # decided before the day, under v1
    api.now[0] = NOW + dt.timedelta(days=6)
    listing = api.get("/v1/policies", role="controller").json()
    assert listing["in_force"] == v2 and listing["scheduled"] == []
    assert api.get("/v1/policies/active", role="controller").json()["version"] == v2
    api.get("/v1/policies", role="controller")
    (rec,) = _kinds(api, "policy_in_force")  # recorded once, however often it is read
    assert (rec["outcome"], rec["policy_version"], rec["actor"]) == ("in_force", v2, "scheduler:policy-activation")
    # a back-dated evaluation sees the version in force then; today's sees the new one
    back = _evaluate(api, cid, day(3))["decision"]
    assert (back["policy_version"], back["credit"]["limit"]) == (v1, "500000.00")
    assert _evaluate(api, cid, day(6))["decision"]["policy_version"] == v2
    for decision_id in (early["decision_id"], _evaluate(api, cid, day(4))["decision_id"]):
        r = api.post(f"/v1/decisions/{decision_id}/replay", role="auditor")
        assert r.status_code == 200 and r.json()["identical"] is True, r.text
    # once in force it is no longer cancellable
    act = next(a for a in listing["activations"] if a["version"] == v2)
    r = api.post(f"/v1/policies/activations/{act['id']}/cancel", {"reason": "too late"}, role="controller")
    assert r.status_code == 409 and r.json()["code"] == "E_ACTIVATION_CLOSED"
    assert api.get("/v1/audit/verify", role="auditor").json()["ok"] is True


def test_the_scheduler_job_records_the_day_once(moving):
    from api.jobs import scheduler

    api = moving
    v2 = api.post(
        "/v1/policies", {"text": with_high_limit(300000), "effective_from": day(1)}, role="controller"
    ).json()["version"]
    api.now[0] = NOW + dt.timedelta(days=1)
    scheduler._service = api.service
    first = scheduler.policy_activation()
    second = scheduler.policy_activation()
    assert first["outcome"] == "ok" and len(first["detail"]["activated"]) == 1
    assert second["detail"]["activated"] == []
    assert [r["policy_version"] for r in _kinds(api, "policy_in_force")] == [v2]


def test_the_cli_schedules_lists_and_cancels(fresh, tmp_path, capsys):
    import json

    from api import cli

    candidate = tmp_path / "limits.yaml"
    candidate.write_text(with_high_limit(250000), encoding="utf-8")
    common = ["--database-url", fresh.database_url, "--policy", POLICY_FILE]
    assert (
        cli.main(
            ["policy", "publish", str(candidate), "--effective-from", "2030-01-01", "--reason", "计划 plan", *common]
        )
        == 0
    )
    published = json.loads(capsys.readouterr().out)
    assert (published["scheduled"], published["effective_from"]) == (True, "2030-01-01")
    assert cli.main(["policy", "versions", *common]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(a["id"], a["reason"]) for a in listed["scheduled"]] == [(published["activation_id"], "计划 plan")]
    assert cli.main(["policy", "publish", str(candidate), "--effective-from", "2001-01-01", *common]) == 1
    assert "effective_from" in capsys.readouterr().err
    assert cli.main(["policy", "cancel", str(published["activation_id"]), "--reason", "no", *common]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "cancelled"
    assert cli.main(["policy", "cancel", str(published["activation_id"]), "--reason", "no", *common]) == 4
    assert "E_ACTIVATION_CLOSED" in capsys.readouterr().err


def test_a_four_eyes_proposal_carries_its_effective_date_to_the_approval(fresh):
    api = fresh
    head, rest = POLICY_TEXT.split("\nauthority:", 1)
    line, rest = rest.split("\n", 1)
    four_eyes = f"{head}\nauthority:{line}\n  four_eyes_publish: true\n{rest}"
    assert api.post("/v1/policies", {"text": four_eyes, "source": "four-eyes"}, role="admin").status_code == 201
    candidate = four_eyes.replace(HIGH_LIMIT, 'limit: "450000"')
    r = api.post("/v1/policies", {"text": candidate, "effective_from": day(7), "reason": "Q1"}, role="controller")
    assert r.status_code == 202 and r.json()["effective_from"] == day(7), r.text
    assert api.get("/v1/policies", role="controller").json()["scheduled"] == []  # nothing until approved
    approved = api.post(f"/v1/approvals/{r.json()['approval']['id']}/approve", {"reason": "ok"}, role="admin")
    assert approved.status_code == 200, approved.text
    assert (approved.json()["effective_from"], approved.json()["active"]) == (day(7), False)
    (scheduled,) = api.get("/v1/policies", role="auditor").json()["scheduled"]
    assert (scheduled["version"], scheduled["effective_from"], scheduled["created_by"], scheduled["reason"]) == (
        r.json()["version"],
        day(7),
        "test-admin",
        "Q1",
    )


def test_migration_0018_puts_the_live_version_on_the_timeline_from_its_activation_day(backend):
    """A database from before effective dating: its live version is in force from the day it was activated."""
    import os

    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    import api.store.database as database

    engine = database.make_engine(backend.new_url())
    cfg = Config()
    cfg.set_main_option("script_location", os.path.join(os.path.dirname(database.__file__), "migrations"))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0009")
            conn.execute(
                text(
                    "INSERT INTO policy_versions (version, name, text, source, created_at, created_by) "
                    "VALUES ('v-old', 'default', 'x', 'file', '2026-03-04 05:06:07', 'file:p')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO policy_state (id, active_version, activated_at, activated_by) "
                    "VALUES (1, 'v-old', '2026-03-04 05:06:07', 'file:p')"
                )
            )
            command.upgrade(cfg, "head")
            rows = conn.execute(
                text("SELECT version, effective_from, created_by, activated_at, cancelled_at FROM policy_activations")
            ).all()
            seq = conn.execute(text("SELECT timeline_seq FROM policy_state")).scalar_one()
        assert [(r[0], str(r[1]), r[2], r[4]) for r in rows] == [("v-old", "2026-03-04", "file:p", None)]
        assert rows[0][3] is not None and seq == 0
    finally:
        engine.dispose()
