"""Periodic credit review (proposals, automatic decreases, controller approval) and the
single scheduler process (lease, jobs with explicit ids, recorded runs)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time

from sqlalchemy import func, select

from api.jobs import review, scheduler
from api.store.tables import Customer, DecisionRecord, JobRun, SchedulerLock
from api_harness import ROOT, TODAY


def _approved(api, cid):
    with api.service.tx() as s:
        c = s.get(Customer, cid)
        return c.approved_limit_minor, c.approved_terms_days, c.proposed_limit_minor


def _set(api, cid, **values):
    with api.service.tx() as s:
        c = s.get(Customer, cid)
        for k, v in values.items():
            setattr(c, k, v)


def test_a_first_review_applies_the_policy_limit_and_terms(fresh):
    cid = fresh.customer()  # score 85 → high → 500,000 / 30 days
    counts = review.run_reviews(fresh.service, TODAY, "test")
    assert counts == {"reviewed": 1, "applied": 1, "pending": 0, "not_due": 0}
    assert _approved(fresh, cid) == (500000_00, 30, None)


def test_a_review_not_yet_due_records_nothing(fresh):
    cid = fresh.customer()
    review.run_reviews(fresh.service, TODAY, "test")
    with fresh.service.tx() as s:
        before = s.execute(select(func.count()).select_from(DecisionRecord)).scalar_one()
    counts = review.run_reviews(fresh.service, TODAY + dt.timedelta(days=30), "test")  # high: every 6 months
    assert counts["not_due"] == 1 and counts["reviewed"] == 0
    with fresh.service.tx() as s:
        assert s.execute(select(func.count()).select_from(DecisionRecord)).scalar_one() == before
    assert _approved(fresh, cid)[0] == 500000_00


def test_a_lower_policy_limit_applies_at_once_and_caps_credit(fresh):
    cid = fresh.customer()
    review.run_reviews(fresh.service, TODAY, "test")
    # the controller lowers the score: reputation medium → policy limit 200,000 (a decrease)
    r = fresh.put(
        f"/v1/customers/{cid}",
        {
            "name": "x",
            "type": "enterprise",
            "industry": "trading",
            "region": "local",
            "size": "large",
            "since": "2015-01-01",
            "credit_score": 65,
            "approved_limit": "500000.00",
            "approved_terms_days": 30,
        },
        role="controller",
        params={"reason": "score lowered"},
    )
    assert r.status_code == 200, r.text
    _set(fresh, cid, last_reviewed_on=None)
    counts = review.run_reviews(fresh.service, TODAY, "test")
    assert counts["applied"] == 1
    assert _approved(fresh, cid) == (200000_00, 30, None)
    body = fresh.get(f"/v1/customers/{cid}?as_of={TODAY}").json()
    assert body["credit"]["limit"] == "200000.00"


def test_a_higher_policy_limit_waits_for_a_controller_and_an_approval_applies_it(fresh):
    cid = fresh.customer()
    _set(fresh, cid, approved_limit_minor=100000_00, approved_terms_days=30)
    check = fresh.credit_check(cid, "150000.00", as_of=TODAY.isoformat()).json()
    assert check["limit"] == "100000.00" and check["outcome"] == "reject"  # the approved limit caps the policy's
    counts = review.run_reviews(fresh.service, TODAY, "test")
    assert counts["pending"] == 1
    assert _approved(fresh, cid) == (100000_00, 30, 500000_00)
    pending = fresh.get("/v1/reviews", role="controller").json()["pending"]
    assert [(p["customer_id"], p["approved_limit"], p["proposed_limit"]) for p in pending] == [
        (cid, "100000.00", "500000.00")
    ]
    with fresh.service.tx() as s:
        rec = s.get(DecisionRecord, pending[0]["decision_id"])
        assert (rec.kind, rec.outcome) == ("review", "pending")
    assert fresh.post(f"/v1/customers/{cid}/review/approve", None, role="sales").status_code == 403
    r = fresh.post(f"/v1/customers/{cid}/review/approve", None, role="controller")
    assert r.status_code == 200, r.text
    assert r.json()["approved_limit"] == "500000.00"
    assert _approved(fresh, cid) == (500000_00, 30, None)
    assert fresh.post(f"/v1/customers/{cid}/review/approve", None, role="controller").status_code == 409
    assert fresh.get("/v1/audit/verify", role="auditor").json()["ok"] is True


def test_review_decisions_replay_identically(fresh):
    fresh.customer()
    review.run_reviews(fresh.service, TODAY, "test")
    with fresh.service.tx() as s:
        rec = s.execute(select(DecisionRecord).where(DecisionRecord.kind == "review")).scalar_one()
    assert fresh.post(f"/v1/decisions/{rec.id}/replay", None, role="auditor").json()["identical"] is True


def test_only_one_scheduler_holds_the_lease(fresh):
    svc = fresh.service
    assert scheduler.hold_lock(svc, "first") is True
    assert scheduler.hold_lock(svc, "second") is False  # first's heartbeat is fresh
    assert scheduler.hold_lock(svc, "first") is True  # renewal
    with svc.tx() as s:
        s.get(SchedulerLock, 1).heartbeat = svc.clock() - dt.timedelta(seconds=scheduler.LEASE_SECONDS + 1)
    assert scheduler.hold_lock(svc, "second") is True  # a lapsed lease is taken over
    scheduler.release_lock(svc, "second")
    with svc.tx() as s:
        assert s.get(SchedulerLock, 1) is None


def test_jobs_have_explicit_ids_a_database_store_and_misfire_handling(fresh):
    sched = scheduler.build(fresh.service, fresh.engine)
    jobs = {j.id: j for j in sched.get_jobs()}
    assert set(jobs) == {
        "collections-sweep",
        "interest-accrual",
        "credit-review",
        "monthly-statements",
        "audit-checkpoint",
        "outbox-delivery",
        "policy-activation",
    }
    assert sched._job_defaults["coalesce"] is True
    assert sched._job_defaults["misfire_grace_time"] == scheduler.MISFIRE_GRACE_SECONDS
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    assert isinstance(sched._jobstores["default"], SQLAlchemyJobStore)


def test_a_job_run_is_recorded_with_its_outcome(fresh):
    fresh.customer()
    scheduler._service = fresh.service
    result = scheduler.collections_sweep(TODAY)
    assert result["outcome"] == "ok" and result["detail"]["processed"] == 1
    with fresh.service.tx() as s:
        runs = s.execute(select(JobRun)).scalars().all()
    assert [(r.job_id, r.as_of, r.outcome) for r in runs] == [("collections-sweep", TODAY, "ok")]
    assert json.loads(runs[0].detail)["status"] == "done"


def test_a_second_scheduler_process_does_not_start(backend):
    if backend.name != "sqlite":
        return  # the lease logic is the same on both; one process pair suffices
    url = backend.new_url()
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "api.cli", "scheduler", "--database-url", url, "--policy", str(ROOT / "policies.yaml")]
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        from sqlalchemy import create_engine, text

        eng = create_engine(url)
        while time.time() < deadline:
            try:
                with eng.connect() as conn:
                    if conn.execute(text("SELECT count(*) FROM scheduler_lock")).scalar_one() == 1:
                        break
            except Exception:
                pass
            time.sleep(0.3)
        else:
            raise AssertionError("the first scheduler never took the lease")
        second = subprocess.run(cmd + ["--no-wait"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 3, second.stderr
        assert "another scheduler is running" in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=30)
        eng.dispose()


def test_the_monthly_statements_job_writes_last_months_statement_per_customer(fresh, tmp_path):
    cid = fresh.customer()
    fresh.invoice(cid, "1000.00", due=-20, issued=-30)  # issued 2026-11-15, inside November
    scheduler._service = fresh.service
    result = scheduler.monthly_statements(dt.date(2026, 12, 1), folder=str(tmp_path))
    assert result["outcome"] == "ok"
    assert result["detail"]["period"] == ["2026-11-01", "2026-11-30"]
    text = (tmp_path / "2026-11" / f"{cid}.csv").read_text(encoding="utf-8")
    assert "1000.00" in text and "invoice" in text
