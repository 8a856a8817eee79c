"""The late-interest ledger (api/jobs/accrual.py, docs/interest.md) on SQLite and PostgreSQL: the accrual job,
its trail record, the scheduler job and GET /v1/reports/interest-accruals.

Every figure is worked out by hand from the shipped policy (DOMAIN.md): 0.05 % a day on the open balance
for the days beyond 5 grace days, rounded half-up to the fen per row; no fixed fee and no cap unless a test
publishes them. TODAY = 2026-12-15 (the harness clock); an invoice due on day(−15) is 15 days overdue.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import pathlib
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from api.jobs import accrual, scheduler
from api.store.tables import DecisionRecord, InterestAccrual, JobRun
from api_harness import POLICY_FILE, ROOT, TODAY, day

POLICY_TEXT = pathlib.Path(POLICY_FILE).read_text(encoding="utf-8")
D = dt.timedelta(days=1)


def _policy(api, *, cap_pct=None, fixed_fee=None, exclude_disputed=False, source="interest-test"):
    text = POLICY_TEXT
    if cap_pct is not None:
        text = text.replace("  cap_pct: null ", f'  cap_pct: "{cap_pct}" ')
    if fixed_fee is not None:
        text = text.replace('  fixed_fee: "0"', f'  fixed_fee: "{fixed_fee}"')
    if exclude_disputed:
        text = text.replace("  rounding: half_up ", "  exclude_disputed: true\n  rounding: half_up ")
    assert text != POLICY_TEXT
    r = api.post("/v1/policies", {"text": text, "source": source}, role="controller")
    assert r.status_code in (200, 201) and r.json()["changed"] is True, r.text


def _rows(api, invoice_id=None):
    """The ledger as (invoice, accrued_on, days, chargeable_days, base, fee, amount, cumulative), in order."""
    q = select(InterestAccrual).order_by(InterestAccrual.invoice_id, InterestAccrual.accrued_on)
    if invoice_id is not None:
        q = q.where(InterestAccrual.invoice_id == invoice_id)
    with api.service.tx() as s:
        return [(r.invoice_id, r.accrued_on, r.days, r.chargeable_days, r.base_minor, r.fee_minor, r.amount_minor,
                 r.cumulative_minor) for r in s.execute(q).scalars()]


def _accrue(api, as_of, **kw):
    return accrual.accrue(api.service, as_of, "test", **kw)


def _decision_interest(api, cid, as_of) -> dict:
    r = api.post(f"/v1/customers/{cid}/evaluate", {"as_of": as_of.isoformat()}, role="controller")
    assert r.status_code == 201, r.text
    return {i["invoice_id"]: i["interest"] for i in r.json()["decision"]["interest"]["invoices"]}


# ------------------------------------------------------------------------------------------------ accrual
def test_the_first_run_accrues_every_chargeable_day_so_far(fresh):
    cid = fresh.customer()
    inv = fresh.invoice(cid, "100000.00", due=-15, invoice_id="I-15")      # 15 overdue − 5 grace = 10 days
    fresh.invoice(cid, "50000.00", due=-5, invoice_id="I-5")               # within the grace days
    fresh.invoice(cid, "70000.00", due=3, invoice_id="I-not-due")
    out = _accrue(fresh, TODAY)
    # 100,000.00 × 0.0005 × 10 = 500.00, the decision's own figure (DOMAIN.md)
    assert _rows(fresh) == [(inv, TODAY, 10, 10, 100000_00, 0, 500_00, 500_00)]
    assert _decision_interest(fresh, cid, TODAY)[inv] == "500.00"
    assert (out["rows"], out["total"], out["currency"], out["customers"], out["invoices"]) == (1, "500.00", "CNY",
                                                                                                1, 1)


def test_day_by_day_runs_accrue_one_day_each_and_reruns_add_nothing(fresh):
    cid = fresh.customer()
    inv = fresh.invoice(cid, "100000.00", due=-15)
    for n in range(4):
        assert _accrue(fresh, TODAY + n * D)["rows"] == 1
    assert [(r[1], r[2], r[3], r[6], r[7]) for r in _rows(fresh)] == [
        (TODAY, 10, 10, 500_00, 500_00), (TODAY + D, 1, 11, 50_00, 550_00),
        (TODAY + 2 * D, 1, 12, 50_00, 600_00), (TODAY + 3 * D, 1, 13, 50_00, 650_00)]
    before = _rows(fresh)
    again = _accrue(fresh, TODAY + 3 * D)                       # the same day again
    assert (again["rows"], again["total"], again["invoices"]) == (0, "0.00", 1)
    assert _accrue(fresh, TODAY + D)["rows"] == 0               # a day before the invoice's last accrual
    assert _rows(fresh) == before
    # a day the job did not run is caught up on the next run: 3 days at once
    assert _accrue(fresh, TODAY + 6 * D)["total"] == "150.00"
    assert _rows(fresh)[-1][1:] == (TODAY + 6 * D, 3, 16, 100000_00, 0, 150_00, 800_00)
    # unchanged balance: the ledger's sum is the decision's one-shot figure (16 days × 50.00)
    assert _decision_interest(fresh, cid, TODAY + 6 * D)[inv] == "800.00"


def test_a_partial_payment_lowers_the_next_accrual_and_does_not_reverse_the_past(fresh):
    cid = fresh.customer()
    inv = fresh.invoice(cid, "100000.00", due=-15)
    _accrue(fresh, TODAY)
    fresh.event(cid, "payment_received", {"id": "P1", "invoice_id": inv, "amount": "40000.00", "paid_on": day(1)},
                as_of=day(1))
    _accrue(fresh, TODAY + D)
    # 60,000.00 × 0.0005 × 1 = 30.00; the 500.00 accrued on 100,000.00 stays
    assert _rows(fresh)[-1][1:] == (TODAY + D, 1, 11, 60000_00, 0, 30_00, 530_00)
    # the decision's point-in-time figure is on today's balance for all 11 days: 60,000 × 0.0005 × 11
    assert _decision_interest(fresh, cid, TODAY + D)[inv] == "330.00"


def test_a_paid_invoice_stops_accruing(fresh):
    cid = fresh.customer()
    inv = fresh.invoice(cid, "100000.00", due=-15)
    other = fresh.invoice(cid, "20000.00", due=-10)                       # 5 days: 50.00, then 10.00 a day
    _accrue(fresh, TODAY)
    fresh.event(cid, "payment_received", {"id": "P1", "invoice_id": inv, "amount": "100000.00", "paid_on": day(1)},
                as_of=day(1))
    for n in (1, 2):
        out = _accrue(fresh, TODAY + n * D)
        assert (out["rows"], out["total"], out["invoices"]) == (1, "10.00", 1)
    assert _rows(fresh, inv) == [(inv, TODAY, 10, 10, 100000_00, 0, 500_00, 500_00)]
    assert [r[6] for r in _rows(fresh, other)] == [50_00, 10_00, 10_00]


def test_rows_are_rounded_one_by_one(fresh):
    """333.33 × 0.0005 = 0.166665 a day: each daily row rounds to 0.17, the one-shot 3 days (0.499995) to 0.50."""
    cid = fresh.customer()
    inv = fresh.invoice(cid, "333.33", due=-6)
    for n in range(3):
        _accrue(fresh, TODAY + n * D)
    assert [(r[2], r[6], r[7]) for r in _rows(fresh)] == [(1, 17, 17), (1, 17, 34), (1, 17, 51)]
    assert _decision_interest(fresh, cid, TODAY + 2 * D)[inv] == "0.50"


def test_a_disputed_invoice_is_skipped_with_exclude_disputed(fresh):
    cid = fresh.customer()
    disputed = fresh.invoice(cid, "100000.00", due=-15, invoice_id="DISPUTED")
    plain = fresh.invoice(cid, "10000.00", due=-15, invoice_id="PLAIN")
    fresh.event(cid, "dispute_opened", {"id": "D1", "invoice_id": disputed, "opened_on": day(-1), "reason": "quality"})
    _policy(fresh, exclude_disputed=True)
    out = _accrue(fresh, TODAY)
    assert (out["rows"], out["invoices"]) == (1, 1)
    assert [r[0] for r in _rows(fresh)] == [plain]
    # the shipped policy (exclude_disputed: false) charges it
    r = fresh.post("/v1/policies", {"text": POLICY_TEXT, "source": "back"}, role="controller")
    assert r.status_code in (200, 201), r.text
    _accrue(fresh, TODAY + D)
    assert _rows(fresh, disputed) == [(disputed, TODAY + D, 11, 11, 100000_00, 0, 550_00, 550_00)]


def test_the_cap_and_the_fixed_fee(fresh):
    _policy(fresh, cap_pct="2", fixed_fee="100")              # interest at most 2 % of the balance; 100.00 once
    cid = fresh.customer()
    big = fresh.invoice(cid, "100000.00", due=-50, invoice_id="BIG")      # 45 days × 50.00 = 2,250.00 > 2,000.00
    small = fresh.invoice(cid, "10000.00", due=-15, invoice_id="SMALL")   # 10 days × 5.00 = 50.00
    _accrue(fresh, TODAY)
    assert _rows(fresh) == [(big, TODAY, 45, 45, 100000_00, 100_00, 2100_00, 2100_00),
                            (small, TODAY, 10, 10, 10000_00, 100_00, 150_00, 150_00)]
    decision = _decision_interest(fresh, cid, TODAY)                       # the decision caps the same way
    assert (decision[big], decision[small]) == ("2000.00", "50.00")
    _accrue(fresh, TODAY + D)
    # the cap is reached: the day is accrued at 0; the fee is charged on the first row only
    assert _rows(fresh, big)[-1] == (big, TODAY + D, 1, 46, 100000_00, 0, 0, 2100_00)
    assert _rows(fresh, small)[-1] == (small, TODAY + D, 1, 11, 10000_00, 0, 5_00, 155_00)
    # 36 more days reach SMALL's cap (200.00 of interest): 35 × 5.00 = 175.00 would pass it, so 145.00
    _accrue(fresh, TODAY + 36 * D)
    assert _rows(fresh, small)[-1] == (small, TODAY + 36 * D, 35, 46, 10000_00, 0, 145_00, 300_00)


def test_batches_give_the_same_ledger(fresh):
    ids = [fresh.customer(f"B-{n}") for n in range(5)]
    for n, cid in enumerate(ids):
        fresh.invoice(cid, f"{(n + 1) * 1000}.00", due=-15 - n, invoice_id=f"INV-{n}")
    out = _accrue(fresh, TODAY, batch=2)
    assert (out["customers"], out["invoices"], out["rows"]) == (5, 5, 5)
    # n: (1000 × (n + 1)) × 0.0005 × (10 + n)
    assert [r[6] for r in _rows(fresh)] == [5_00, 11_00, 18_00, 26_00, 35_00]
    assert out["total"] == "95.00"
    assert _accrue(fresh, TODAY)["rows"] == 0


# ------------------------------------------------------------------------------------------------ trail
def test_the_run_is_recorded_in_the_trail(fresh):
    cid = fresh.customer()
    fresh.invoice(cid, "100000.00", due=-15)
    fresh.invoice(cid, "100.00", due=5)
    out = _accrue(fresh, TODAY)
    version = fresh.get("/v1/policies/active").json()["version"]
    with fresh.service.tx() as s:
        rec = s.execute(select(DecisionRecord).where(DecisionRecord.subject == accrual.SUBJECT)).scalar_one()
        run_ids = set(s.execute(select(InterestAccrual.run_id)).scalars())
    assert (rec.kind, rec.actor, rec.as_of, rec.policy_version, rec.id) == ("interest_accrual", "test", TODAY, version,
                                                                           out["decision_id"])
    assert json.loads(rec.facts) == {"as_of": "2026-12-15", "policy_version": version, "customers": 1,
                                     "invoices": 1}
    assert rec.facts == '{"as_of":"2026-12-15","customers":1,"invoices":1,"policy_version":"%s"}' % version
    assert json.loads(rec.result) == {"run_id": rec.request_id, "rows": 1, "total": "500.00", "currency": "CNY"}
    assert run_ids == {rec.request_id}
    _accrue(fresh, TODAY)                                   # a rerun is recorded too, on the same chain
    with fresh.service.tx() as s:
        seqs = s.execute(select(DecisionRecord.seq, DecisionRecord.result).where(
            DecisionRecord.subject == accrual.SUBJECT).order_by(DecisionRecord.seq)).all()
    assert [(seq, json.loads(result)["rows"]) for seq, result in seqs] == [(1, 1), (2, 0)]
    assert fresh.get("/v1/audit/verify", role="auditor").json()["ok"] is True
    r = fresh.get(f"/v1/decisions/{rec.id}", role="auditor")
    assert r.status_code == 200 and r.json()["decision"]["total"] == "500.00"
    r = fresh.post(f"/v1/decisions/{rec.id}/replay", None, role="auditor")
    assert r.status_code == 409 and r.json()["code"] == "E_NOT_REPLAYABLE", r.text


# ------------------------------------------------------------------------------------------------ scheduler
def test_the_scheduler_job_is_recorded(fresh):
    cid = fresh.customer()
    fresh.invoice(cid, "100000.00", due=-15)
    scheduler._service = fresh.service
    result = scheduler.interest_accrual(TODAY)
    assert result["outcome"] == "ok" and result["detail"]["rows"] == 1 and result["detail"]["total"] == "500.00"
    with fresh.service.tx() as s:
        runs = s.execute(select(JobRun)).scalars().all()
        rec = s.execute(select(DecisionRecord).where(DecisionRecord.subject == accrual.SUBJECT)).scalar_one()
    assert [(r.job_id, r.as_of, r.outcome) for r in runs] == [("interest-accrual", TODAY, "ok")]
    assert json.loads(runs[0].detail)["run_id"] == rec.request_id
    assert rec.actor == "scheduler:interest-accrual"
    jobs = {j.id: j for j in scheduler.build(fresh.service, fresh.engine).get_jobs()}
    assert str(jobs["interest-accrual"].trigger) == "cron[hour='2', minute='30']"


def test_run_now_from_the_command_line(fresh):
    cid = fresh.customer()
    fresh.invoice(cid, "100000.00", due=-15)
    cmd = [sys.executable, "-m", "api.cli", "scheduler", "--database-url", fresh.database_url, "--policy",
           POLICY_FILE, "--run-now", "interest-accrual", "--as-of"]
    for bad in ("2026-13-01", "0001-01-01"):             # a clear message, exit 2, nothing run
        done = subprocess.run(cmd + [bad], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2 and done.stderr.startswith("--as-of: "), (bad, done.stderr[-2000:])
    assert _rows(fresh) == []
    done = subprocess.run(cmd + ["2026-12-16"], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["job_id"], out["as_of"], out["outcome"]) == ("interest-accrual", "2026-12-16", "ok")
    assert (out["detail"]["rows"], out["detail"]["total"]) == (1, "550.00")     # 11 days
    assert _rows(fresh)[0][1:] == (TODAY + D, 11, 11, 100000_00, 0, 550_00, 550_00)


# ------------------------------------------------------------------------------------------------ the report
@pytest.fixture
def accrued(fresh):
    """Two customers: A (I-A1 100,000.00 due −15; I-A2 333.33 due −6), B (I-B 20,000.00 due −10), accrued on
    TODAY and TODAY + 1."""
    a = fresh.customer("ACC-A")
    fresh.invoice(a, "100000.00", due=-15, invoice_id="I-A1")
    fresh.invoice(a, "333.33", due=-6, invoice_id="I-A2")
    b = fresh.customer("ACC-B")
    fresh.invoice(b, "20000.00", due=-10, invoice_id="I-B")
    _accrue(fresh, TODAY)
    _accrue(fresh, TODAY + D)
    return fresh


def test_the_report_as_json(accrued):
    r = accrued.get("/v1/reports/interest-accruals", role="auditor",
                    params={"from": "2026-12-01", "to": "2026-12-31"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json"), r.text
    rep = r.json()
    with accrued.service.tx() as s:
        run_ids = list(s.execute(select(InterestAccrual.run_id).order_by(InterestAccrual.accrued_on)).scalars())
    first, second = run_ids[0], run_ids[-1]
    view = [(x["customer_id"], x["invoice_id"], x["accrued_on"], x["days"], x["chargeable_days"], x["base"], x["fee"],
             x["amount"], x["cumulative"], x["run_id"]) for x in rep["rows"]]
    assert view == [
        ("ACC-A", "I-A1", "2026-12-15", 10, 10, "100000.00", "0.00", "500.00", "500.00", first),
        ("ACC-A", "I-A1", "2026-12-16", 1, 11, "100000.00", "0.00", "50.00", "550.00", second),
        ("ACC-A", "I-A2", "2026-12-15", 1, 1, "333.33", "0.00", "0.17", "0.17", first),
        ("ACC-A", "I-A2", "2026-12-16", 1, 2, "333.33", "0.00", "0.17", "0.34", second),
        ("ACC-B", "I-B", "2026-12-15", 5, 5, "20000.00", "0.00", "50.00", "50.00", first),
        ("ACC-B", "I-B", "2026-12-16", 1, 6, "20000.00", "0.00", "10.00", "60.00", second)]
    assert {x["policy_version"] for x in rep["rows"]} == {accrued.get("/v1/policies/active").json()["version"]}
    assert rep["totals"] == [
        {"customer_id": "ACC-A", "rows": 4, "invoices": 2, "days": 13, "amount": "550.34"},
        {"customer_id": "ACC-B", "rows": 2, "invoices": 1, "days": 6, "amount": "60.00"}]
    assert rep["total"] == {"customers": 2, "rows": 6, "amount": "610.34"}
    assert (rep["from"], rep["to"], rep["customer"], rep["currency"]) == ("2026-12-01", "2026-12-31", None, "CNY")
    # one customer, one day
    rep = accrued.get("/v1/reports/interest-accruals", role="controller",
                      params={"from": "2026-12-16", "to": "2026-12-16", "customer": "ACC-A"}).json()
    assert [(x["invoice_id"], x["amount"]) for x in rep["rows"]] == [("I-A1", "50.00"), ("I-A2", "0.17")]
    assert rep["totals"] == [{"customer_id": "ACC-A", "rows": 2, "invoices": 2, "days": 2, "amount": "50.17"}]
    # the default period is this month up to today (the harness clock: 2026-12-15)
    rep = accrued.get("/v1/reports/interest-accruals", role="backoffice").json()
    assert (rep["from"], rep["to"], rep["total"]["rows"]) == ("2026-12-01", "2026-12-15", 3)
    # nothing in the period
    rep = accrued.get("/v1/reports/interest-accruals", params={"from": "2026-11-01", "to": "2026-11-30"}).json()
    assert (rep["rows"], rep["totals"], rep["total"]) == ([], [], {"customers": 0, "rows": 0, "amount": "0.00"})


def test_the_report_as_csv(accrued):
    r = accrued.get("/v1/reports/interest-accruals", role="controller",
                    params={"from": "2026-12-16", "to": "2026-12-16", "format": "csv"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv"), r.text
    assert 'filename="interest-accruals-2026-12-16-2026-12-16.csv"' in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["customer_id", "invoice_id", "accrued_on", "days", "chargeable_days", "base", "fee", "amount",
                       "cumulative", "policy_version", "run_id"]
    assert [row[:9] for row in rows[1:]] == [
        ["ACC-A", "I-A1", "2026-12-16", "1", "11", "100000.00", "0.00", "50.00", "550.00"],
        ["ACC-A", "I-A2", "2026-12-16", "1", "2", "333.33", "0.00", "0.17", "0.34"],
        ["ACC-B", "I-B", "2026-12-16", "1", "6", "20000.00", "0.00", "10.00", "60.00"]]


def test_the_report_refuses_the_wrong_role_and_bad_input(accrued):
    before = accrued.counts()
    r = accrued.get("/v1/reports/interest-accruals", role="sales")
    assert r.status_code == 403 and r.json()["code"] == "E_FORBIDDEN", r.text
    for params, field in (({"from": "2026-13-01"}, "from"), ({"to": "yesterday"}, "to"),
                          ({"from": "2026-12-20", "to": "2026-12-10"}, "from"), ({"from": "2026-12-20"}, "from"),
                          ({"to": "3000-01-01"}, "to"), ({"format": "xml"}, "format"), ({"customer": ""}, "customer"),
                          ({"until": "2026-12-01"}, "until")):
        r = accrued.get("/v1/reports/interest-accruals", role="controller", params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["code"] == "E_INPUT_INVALID" and field in r.json()["errors"], (params, r.json())
    r = accrued.get("/v1/reports/interest-accruals", role="controller", params={"customer": "NOBODY"})
    assert r.status_code == 404 and r.json()["code"] == "E_NOT_FOUND", r.text
    assert accrued.counts() == before


def test_the_report_is_in_the_openapi_spec(api):
    spec = api.get("/openapi.json", role=None).json()
    op = spec["paths"]["/v1/reports/interest-accruals"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"from", "to", "customer", "format", "by"}
    assert set(op["responses"]["200"]["content"]) == {"application/json", "text/csv"}


def test_migration_created_the_table_with_its_unique_key(fresh):
    with fresh.service.tx() as s:
        assert s.execute(select(func.count()).select_from(InterestAccrual)).scalar_one() == 0
    from sqlalchemy import inspect
    insp = inspect(fresh.engine)
    uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("interest_accruals")}
    assert ("customer_id", "invoice_id", "accrued_on") in uniques
    types = {c["name"]: str(c["type"]).upper() for c in insp.get_columns("interest_accruals")}
    assert all("BIGINT" in types[k] for k in ("base_minor", "fee_minor", "amount_minor", "cumulative_minor"))
