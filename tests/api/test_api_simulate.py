"""What-if simulation (api/jobs/simulate.py): POST /v1/policies/simulate and `creditctl policy simulate` over
a small book built through the API, with every expected change worked out by hand below."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import pathlib
import subprocess
import sys

import pytest
from sqlalchemy import select

from api.jobs import simulate
from api.store.tables import Customer
from api_harness import POLICY_FILE, ROOT, SERVER_ERRORS, Api, day

POLICY_TEXT = pathlib.Path(POLICY_FILE).read_text(encoding="utf-8")
MEDIUM_LIMIT = 'limit: "200000"'
STAGE2 = ('min_days_overdue: 31\n          message: "invoice {anchor_invoice} is {collectable_days_overdue} days '
          'overdue (≥ 31): stage 2"')
assert POLICY_TEXT.count(MEDIUM_LIMIT) == 1 and POLICY_TEXT.count(STAGE2) == 1
# the candidate: medium reputation gets 300,000 instead of 200,000; stage 2 starts at 21 days overdue, not 31
CANDIDATE = POLICY_TEXT.replace(MEDIUM_LIMIT, 'limit: "300000"').replace(STAGE2, STAGE2.replace("31", "21"))
BAD_CANDIDATE = CANDIDATE.replace("field: reputation, eq: high}", "field: reputashun, eq: high}", 1)
# a day after the book was built: every evaluation of the book lies before it
AS_OF = day(1)

# The book (manual scores: 85 high / 65 medium / 50 low reputation; established customers), on AS_OF:
#   C-A medium, nothing owed                                     limit 200,000 → 300,000
#   C-B medium, 5,000 invoice 26 days overdue (stage 1; ≥ 21 → 2) limit ↑, stage 1 → 2,
#       order O-B 10,000 held: 15,000 of the limit → approve; in stage 2 → refer
#   C-C high, 20,000 invoice 26 days overdue                    stage 1 → 2 (limit stays 500,000)
#   C-D low, order O-D 1,000 held: approve_with_conditions (30 % deposit) under both: no change
#   C-E medium, order O-E 150,000 held, then a 40,000 invoice not yet due: the order makes 190,000,
#       95 % of 200,000 → refer; 63.34 % of 300,000 → approve        limit ↑, O-E refer → approve
EXPECTED_CHANGES = {
    "limit": {"200000.00→300000.00": 3},
    "dunning_stage": {"1→2": 2},
    "check": {"approve→refer": 1, "refer→approve": 1},
}
LIMIT_UP = {"field": "limit", "before": "200000.00", "after": "300000.00"}
STAGE_UP = {"field": "dunning_stage", "before": 1, "after": 2}
EXPECTED_CUSTOMERS = [
    {"customer_id": "C-A", "changes": [LIMIT_UP]},
    {"customer_id": "C-B", "changes": [LIMIT_UP, STAGE_UP,
                                       {"field": "check", "order_id": "O-B", "before": "approve", "after": "refer"}]},
    {"customer_id": "C-C", "changes": [STAGE_UP]},
    {"customer_id": "C-E", "changes": [LIMIT_UP,
                                       {"field": "check", "order_id": "O-E", "before": "refer", "after": "approve"}]},
]
# exposure 15,000 + 20,000 + 1,000 + 190,000; limits 200k+200k+500k+50k+200k, then +3 × 100k;
# interest 0.05 %/day after 5 grace days: 5,000 × 21 days = 52.50, 20,000 × 21 days = 210.00
EXPECTED_TOTALS = {
    "exposure": "226000.00",
    "limits": {"before": "1150000.00", "after": "1450000.00"},
    "utilisation_pct": {"before": "19.66", "after": "15.59"},          # 19.652… and 15.586…, rounded up
    "interest": {"before": "262.50", "after": "262.50"},
}
EXPECTED_CSV = [
    ["customer_id", "field", "order_id", "before", "after"],
    ["C-A", "limit", "", "200000.00", "300000.00"],
    ["C-B", "limit", "", "200000.00", "300000.00"],
    ["C-B", "dunning_stage", "", "1", "2"],
    ["C-B", "check", "O-B", "approve", "refer"],
    ["C-C", "dunning_stage", "", "1", "2"],
    ["C-E", "limit", "", "200000.00", "300000.00"],
    ["C-E", "check", "O-E", "refer", "approve"],
]


@pytest.fixture(scope="module")
def book(backend):
    """Its own database (the simulation covers the whole book), built through the API."""
    api = Api(backend.name, backend.new_url())
    try:
        api.customer("C-A", credit_score=65)
        api.customer("C-B", credit_score=65)
        api.invoice("C-B", "5000.00", due=-25, invoice_id="INV-B")
        _reserve(api, "C-B", "10000.00", "O-B", "approve")
        api.customer("C-C", credit_score=85)
        api.invoice("C-C", "20000.00", due=-25, invoice_id="INV-C")
        api.customer("C-D", credit_score=50)
        _reserve(api, "C-D", "1000.00", "O-D", "approve_with_conditions")
        api.customer("C-E", credit_score=65)
        _reserve(api, "C-E", "150000.00", "O-E", "approve")
        api.invoice("C-E", "40000.00", due=20, invoice_id="INV-E")
        yield api
    finally:
        api.close()


def _reserve(api, cid, amount, order_id, outcome):
    r = api.credit_check(cid, amount, order_id=order_id, reserve=True)
    assert r.status_code == 201 and (r.json()["outcome"], r.json()["reserved"]) == (outcome, True), r.text


def _versions(api) -> tuple[str, str]:
    active = api.get("/v1/policies/active", role="controller").json()["version"]
    r = api.post("/v1/policies/validate", {"text": CANDIDATE}, role="controller")
    assert r.status_code == 200, r.text
    return active, r.json()["version"]


def _customer_rows(api) -> list[tuple]:
    with api.engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(select(Customer.__table__).order_by(Customer.id))]
        conn.rollback()
    return rows


def _simulations(api) -> list[dict]:
    r = api.get("/v1/decisions", role="auditor", params={"kind": "simulation", "limit": 1000})
    assert r.status_code == 200, r.text
    return r.json()["decisions"]


def _assert_only_the_trail_grew(before: dict, after: dict, new_chain: bool) -> None:
    grew = {"decisions": before["decisions"] + 1, "chain_heads": before["chain_heads"] + int(new_chain)}
    assert after == {**before, **grew}


def test_simulation_reports_the_changes(book):
    api = book
    active, candidate = _versions(api)
    assert active != candidate
    counts, customers, simulations = api.counts(), _customer_rows(api), _simulations(api)

    r = api.post("/v1/policies/simulate", {"text": CANDIDATE, "as_of": AS_OF, "source": "limits-2027.yaml"},
                 role="controller")
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    summary = body["summary"]
    assert summary == {"as_of": AS_OF, "active_version": active, "candidate_version": candidate, "currency": "CNY",
                       "customers": 5, "customers_changed": 4, "reservations": 3, "changes": EXPECTED_CHANGES,
                       "errors": {"before": 0, "after": 0}, "totals": EXPECTED_TOTALS}
    assert body["customers"] == EXPECTED_CUSTOMERS
    assert r.headers["X-Decision-Id"] == body["decision_id"]

    # nothing but the one trail record was written: no ledger row, no action, no customer update
    first_simulation_of_this_candidate = not any(d["subject"] == f"policy:{candidate}" for d in simulations)
    _assert_only_the_trail_grew(counts, api.counts(), first_simulation_of_this_candidate)
    assert _customer_rows(api) == customers
    new = [d for d in _simulations(api) if d["id"] not in {s["id"] for s in simulations}]
    assert [d["id"] for d in new] == [body["decision_id"]]

    rec = api.get(f"/v1/decisions/{body['decision_id']}", role="auditor").json()
    assert (rec["kind"], rec["subject"], rec["actor"], rec["as_of"], rec["policy_version"], rec["outcome"]) == (
        "simulation", f"policy:{candidate}", "test-controller", AS_OF, candidate, None)
    assert rec["facts"] == {"as_of": AS_OF, "active_version": active, "candidate_version": candidate, "customers": 5}
    assert rec["decision"] == summary
    assert api.get("/v1/audit/verify", role="auditor").json()["ok"] is True
    r = api.post(f"/v1/decisions/{body['decision_id']}/replay", role="auditor")
    assert r.status_code == 409 and r.json()["code"] == "E_NOT_REPLAYABLE", r.text
    # the live policy is untouched
    assert api.get("/healthz", role=None).json()["policy_version"] == active


def test_an_identical_candidate_changes_nothing(book):
    api = book
    active = api.get("/v1/policies/active", role="controller").json()
    counts = api.counts()
    r = api.post("/v1/policies/simulate", {"text": active["text"], "as_of": AS_OF}, role="admin")
    assert r.status_code == 201, r.text
    body = r.json()
    s = body["summary"]
    assert (s["active_version"], s["candidate_version"]) == (active["version"], active["version"])
    assert (s["customers"], s["customers_changed"], s["reservations"], s["changes"]) == (5, 0, 3, {})
    assert s["totals"] == {**EXPECTED_TOTALS, "limits": {"before": "1150000.00", "after": "1150000.00"},
                           "utilisation_pct": {"before": "19.66", "after": "19.66"}}
    assert body["customers"] == []
    assert api.counts()["decisions"] == counts["decisions"] + 1


def test_yaml_body_csv_report_and_small_batches(book, monkeypatch):
    api = book
    r = api.request("POST", "/v1/policies/simulate", "controller", data=CANDIDATE.encode("utf-8"),
                    params={"as_of": AS_OF, "format": "csv", "source": "candidate.yaml"},
                    headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(r.text))) == EXPECTED_CSV
    rec = api.get(f"/v1/decisions/{r.headers['X-Decision-Id']}", role="auditor").json()
    assert rec["kind"] == "simulation" and rec["decision"]["changes"] == EXPECTED_CHANGES

    # the service function itself, two customers per batch, the changes spilled to a temporary file
    monkeypatch.setattr(simulate, "SPOOL_MEMORY", 64)          # on disk from the first entry on
    spool = simulate.ChangeSpool()
    try:
        decision_id, summary = simulate.simulate(api.service, CANDIDATE, "t.yaml", dt.date.fromisoformat(AS_OF),
                                                 actor="test", request_id="batches", sink=spool, batch_size=2)
        assert spool.on_disk
        assert list(spool) == EXPECTED_CUSTOMERS
        assert summary["changes"] == EXPECTED_CHANGES and summary["totals"] == EXPECTED_TOTALS
        report = json.loads("".join(simulate.json_chunks(decision_id, summary, spool)))
        assert report == {"decision_id": decision_id, "summary": summary, "customers": EXPECTED_CUSTOMERS}
    finally:
        spool.close()


def test_an_invalid_candidate_is_refused_like_validate(book):
    api = book
    counts = api.counts()
    r = api.post("/v1/policies/simulate", {"text": BAD_CANDIDATE, "source": "bad.yaml"}, role="controller")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "E_POLICY_INVALID"
    assert body == api.post("/v1/policies/validate", {"text": BAD_CANDIDATE, "source": "bad.yaml"}).json()
    line = BAD_CANDIDATE.splitlines().index(next(ln for ln in BAD_CANDIDATE.splitlines() if "reputashun" in ln)) + 1
    assert [(e["code"], e["file"], e["line"]) for e in body["policy_errors"]] == [("E_UNKNOWN_FIELD", "bad.yaml", line)]
    assert body["errors"]["policy"][0].startswith(f"bad.yaml:{line}:")
    r = api.request("POST", "/v1/policies/simulate", "admin", data=b"policy: [",
                    headers={"Content-Type": "text/yaml"})
    assert r.status_code == 422 and r.json()["code"] == "E_POLICY_INVALID" and r.json()["policy_errors"][0]["line"]
    for bad, field in (({"text": CANDIDATE, "as_of": "2026-02-30"}, "as_of"),
                       ({"text": CANDIDATE, "as_of": "1066-10-14"}, "as_of"),
                       ({"text": CANDIDATE, "colour": "red"}, "colour"),
                       ({"text": CANDIDATE.replace("currency: CNY", "currency: USD")}, "text")):
        r = api.post("/v1/policies/simulate", bad, role="controller")
        assert r.status_code == 422 and r.json()["code"] == "E_INPUT_INVALID" and field in r.json()["errors"], r.text
    r = api.post("/v1/policies/simulate?format=xml", {"text": CANDIDATE}, role="controller")
    assert r.status_code == 422 and "format" in r.json()["errors"], r.text
    assert api.post("/v1/policies/simulate", {"text": CANDIDATE}, role="backoffice").status_code == 403
    assert api.counts() == counts


def _cli(*args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", "policy", "simulate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_command_line(book, tmp_path):
    api = book
    active, candidate_version = _versions(api)
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE, encoding="utf-8")
    url = api.database_url
    counts = api.counts()

    out = tmp_path / "changes.csv"
    p = _cli(str(candidate), "--as-of", AS_OF, "--database-url", url, "--format", "csv", "--output", str(out))
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    with open(out, encoding="utf-8", newline="") as fh:
        assert list(csv.reader(fh)) == EXPECTED_CSV
    assert "5 customers, 4 changed" in p.stderr

    p = _cli(str(candidate), "--as-of", AS_OF, "--database-url", url)          # JSON on stdout
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["customers"] == EXPECTED_CUSTOMERS
    assert report["summary"] == {"as_of": AS_OF, "active_version": active, "candidate_version": candidate_version,
                                 "currency": "CNY", "customers": 5, "customers_changed": 4, "reservations": 3,
                                 "changes": EXPECTED_CHANGES, "errors": {"before": 0, "after": 0},
                                 "totals": EXPECTED_TOTALS}
    rec = api.get(f"/v1/decisions/{report['decision_id']}", role="auditor").json()
    assert rec["kind"] == "simulation" and rec["actor"].startswith("cli") and rec["decision"] == report["summary"]
    after = api.counts()
    assert after["decisions"] == counts["decisions"] + 2
    assert {k: v for k, v in after.items() if k not in ("decisions", "chain_heads")} == {
        k: v for k, v in counts.items() if k not in ("decisions", "chain_heads")}

    # an invalid candidate: exit 1, the errors `policy check` prints, nothing recorded
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CANDIDATE, encoding="utf-8")
    counts = api.counts()
    p = _cli(str(bad), "--as-of", AS_OF, "--database-url", url, "--format", "csv", "--output", str(tmp_path / "x"))
    check = subprocess.run([sys.executable, "-m", "api.cli", "policy", "check", str(bad)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert (p.returncode, check.returncode) == (1, 1)
    assert p.stdout == "" and p.stderr == check.stderr and f"{bad}:" in p.stderr
    assert not (tmp_path / "x").exists()
    # bad input: exit 2, nothing on stdout
    for args in ((str(candidate), "--as-of", "2026-13-01", "--database-url", url),
                 (str(candidate), "--as-of", "1066-10-14", "--database-url", url),
                 (str(candidate), "--database-url", f"sqlite:///{tmp_path}/no-such.sqlite3"),
                 (str(candidate), "--database-url", url, "--output", str(tmp_path / "no" / "such.csv"))):
        p = _cli(*args)
        assert p.returncode == 2 and p.stdout == "", (args, p.stdout, p.stderr)
        assert json.loads(p.stderr)["code"] in ("E_INPUT_INVALID", "E_DATABASE")
    assert not (tmp_path / "no-such.sqlite3").exists()
    p = _cli(str(tmp_path / "missing.yaml"), "--database-url", url)
    assert p.returncode == 1 and "E_FILE" in p.stderr
    assert api.counts() == counts


def test_cases_a_candidate_refuses_are_reported(book):
    """A candidate without the company size `large` (every customer of the book has it) refuses every case:
    each customer is reported with the error, and the candidate's totals leave them out."""
    text = CANDIDATE.replace("company_size: [large, medium, small]", "company_size: [medium, small]")
    assert text != CANDIDATE
    r = book.post("/v1/policies/simulate", {"text": text, "as_of": AS_OF}, role="controller")
    assert r.status_code == 201, r.text
    body = r.json()
    s = body["summary"]
    assert (s["customers"], s["customers_changed"], s["errors"], s["changes"]) == (
        5, 5, {"before": 0, "after": 5}, {"error": {"ok→error": 5}})
    assert s["totals"] == {**EXPECTED_TOTALS, "limits": {"before": "1150000.00", "after": "0.00"},
                           "utilisation_pct": {"before": "19.66", "after": None},
                           "interest": {"before": "262.50", "after": "0.00"}}
    assert [c["customer_id"] for c in body["customers"]] == ["C-A", "C-B", "C-C", "C-D", "C-E"]
    for c in body["customers"]:
        [change] = c["changes"]
        assert change["field"] == "error" and change["before"] is None
        assert change["after"].startswith("E_INPUT_INVALID: customer.size: 'large' is not a company_size"), change


# ---------------------------------------------------------------------------------------- worker processes
def _report(body: str) -> str:
    """A JSON report without its decision id: what must be byte-identical between two runs."""
    head, rest = body.split(', "summary": ', 1)
    assert head.startswith('{"decision_id": "')
    return rest


def _simulate_in_process(api, text, workers, **kw):
    spool = simulate.ChangeSpool()
    try:
        decision_id, summary = simulate.simulate(api.service, text, "t.yaml", dt.date.fromisoformat(AS_OF),
                                                 actor="test", request_id=f"w{workers}", sink=spool,
                                                 workers=workers, **kw)
        return decision_id, "".join(simulate.json_chunks(decision_id, summary, spool)), "".join(
            simulate.csv_chunks(spool))
    finally:
        spool.close()


def _record(api, decision_id) -> dict:
    rec = api.get(f"/v1/decisions/{decision_id}", role="auditor").json()
    return {k: rec[k] for k in ("kind", "subject", "as_of", "policy_version", "facts", "decision", "outcome")}


def test_worker_processes_give_the_one_process_report(book, tmp_path):
    """1, 2, 3 and 8 processes (more than the book has customers): the same summary, changes, CSV and trail
    record, byte for byte; over HTTP (SIMULATE_WORKERS) and the command line (--workers) too."""
    api = book
    one_id, one_json, one_csv = _simulate_in_process(api, CANDIDATE, 1)
    assert json.loads(one_json)["customers"] == EXPECTED_CUSTOMERS
    assert simulate._partitions(api.service, 2) == [(None, "C-C"), ("C-C", None)]
    assert simulate._partitions(api.service, 8) == [(None, "C-B"), ("C-B", "C-C"), ("C-C", "C-D"), ("C-D", "C-E"),
                                                    ("C-E", None)]
    for workers in (2, 3, 8):
        decision_id, text, csv_text = _simulate_in_process(api, CANDIDATE, workers, batch_size=1)
        assert _report(text) == _report(one_json), workers
        assert csv_text == one_csv
        assert _record(api, decision_id) == _record(api, one_id)

    api.app.config["SIMULATE_WORKERS"] = 2
    try:
        r = api.post("/v1/policies/simulate", {"text": CANDIDATE, "as_of": AS_OF}, role="controller")
        assert r.status_code == 201, r.text
        assert _report(r.text) == _report(one_json)
        # an invalid candidate: refused before any worker starts, as with one process
        r = api.post("/v1/policies/simulate", {"text": BAD_CANDIDATE, "source": "bad.yaml"}, role="controller")
        assert r.status_code == 422 and r.json() == api.post(
            "/v1/policies/validate", {"text": BAD_CANDIDATE, "source": "bad.yaml"}).json()
    finally:
        api.app.config["SIMULATE_WORKERS"] = 1

    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE, encoding="utf-8")
    p = _cli(str(candidate), "--as-of", AS_OF, "--database-url", api.database_url, "--workers", "2")
    assert p.returncode == 0, p.stderr
    assert _report(p.stdout) == _report(one_json)
    for bad in ("0", "33"):
        p = _cli(str(candidate), "--as-of", AS_OF, "--database-url", api.database_url, "--workers", bad)
        assert p.returncode == 2 and p.stdout == "" and json.loads(p.stderr)["errors"] == {
            "workers": ["--workers must be from 1 to 32"]}, p.stderr


def _engine_failing_candidate() -> str:
    """70 limit rules `outstanding > 30,000 + i`: only C-E (40,000 outstanding; the last customer, in the
    second of two partitions) has more than 64 of them true at once, which durable_rules refuses (error 303)."""
    rules = "".join(f'    - id: credit.limit.x{i}\n      when: {{field: outstanding, gt: "{30000 + i}"}}\n'
                    f'      limit: "900000"\n      terms_days: 30\n      message: "x"\n' for i in range(70))
    assert CANDIDATE.count("  limits:\n") == 1
    return CANDIDATE.replace("  limits:\n", "  limits:\n" + rules)


def test_an_engine_failure_in_a_worker_is_the_one_process_error(book, monkeypatch):
    import engine.compiler
    from api.errors import DomainError
    api = book
    monkeypatch.setattr(engine.compiler, "MAX_LEADING_RANGE_TESTS", 10_000)   # the worker compiles it alike
    text = _engine_failing_candidate()
    counts = api.counts()
    errors = []
    for workers in (1, 2):
        with pytest.raises(DomainError) as info:
            _simulate_in_process(api, text, workers)
        errors.append((info.value.code, str(info.value)))
    assert errors[0][0] == "E_ENGINE" and "error code: 303" in errors[0][1], errors
    assert "the simulation was not recorded" in errors[0][1]
    assert errors[1] == errors[0]
    assert api.counts() == counts                     # nothing recorded
    # over HTTP too: 503 E_ENGINE with the same message
    api.app.config["SIMULATE_WORKERS"] = 2
    try:
        r = api.post("/v1/policies/simulate", {"text": text, "as_of": AS_OF}, role="controller")
    finally:
        api.app.config["SIMULATE_WORKERS"] = 1
    assert (r.status_code, r.json()["code"], r.json()["message"]) == (503, "E_ENGINE", errors[0][1]), r.text
    assert "503" in SERVER_ERRORS[-1]
    del SERVER_ERRORS[-1]                  # the one 5xx this test provokes (the autouse fixture fails on any)
    assert api.counts() == counts
