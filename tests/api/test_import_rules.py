"""The import enters money and dates by the HTTP's rules (issues 9, 12), over real HTTP and the real CLI, on SQLite
and PostgreSQL: no past-event date after the import's as_of (E_INPUT_INVALID, the HTTP's code), amounts by the one
money rule (the same strings refused as over HTTP), and the decision-field guard of PUT /v1/customers — back office
may not set or change a credit file's decision fields (E_DECISION_FIELD at FILE:ROW:COLUMN, nothing written), a
controller (or the operator's CLI) may, with a reason, and each change is a credit_file_change record."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
from sqlalchemy import select

from api.store.tables import DecisionRecord
from api_harness import Api, day, uid
from test_imports import BOOK, LINE, _book, _cli, _import, _load_book, _without_imports

AS_OF = "2026-11-30"


def _lines(r) -> set[tuple]:
    assert r.status_code == 422 and r.json()["code"] == "E_IMPORT_INVALID", r.text
    parsed = [LINE.match(line) for line in r.json()["errors"]["import"]]
    assert all(parsed), r.json()["errors"]["import"]
    return {(m["file"], int(m["row"]), int(m["col"]), m["code"]) for m in parsed}


def _records(api) -> list[DecisionRecord]:
    """The credit-file change records, oldest first."""
    with api.service.read_tx() as s:
        q = select(DecisionRecord).where(DecisionRecord.kind == "credit_file_change").order_by(DecisionRecord.id)
        rows = s.execute(q).scalars().all()
        for r in rows:
            s.expunge(r)
        return rows


# ------------------------------------------------------------------------------------------ dates in the future
FUTURE = {
    "customers.csv": (
        "id,name,type,industry,region,size,since,last_reviewed_on\n"
        "F-1,好,enterprise,services,local,large,2020-01-01,2026-11-30\n"
        "F-2,未来客户,enterprise,services,local,large,2026-12-01,\n"  # since after as_of
        "F-3,未来评估,enterprise,services,local,large,2020-01-01,2026-12-01\n"
    ),  # reviewed after
    "invoices.csv": (
        "id,customer_id,amount,currency,issued_on,due_on\n"
        "FI-1,F-1,100.00,CNY,2026-11-30,2027-01-31\n"  # due ahead: fine
        "FI-2,F-1,100.00,CNY,2026-12-01,2027-01-31\n"
    ),
    "payments.csv": (
        "id,customer_id,invoice_id,amount,paid_on\nFP-1,F-1,FI-1,10.00,2026-11-30\nFP-2,F-1,FI-1,10.00,2026-12-01\n"
    ),
    "credit_notes.csv": ("id,customer_id,invoice_id,amount,issued_on\nFC-1,F-1,FI-1,5.00,2026-12-01\n"),
    "promises.csv": (
        "id,customer_id,invoice_id,amount,made_on,promised_on\n"
        "FR-1,F-1,FI-1,50.00,2026-11-30,2027-02-01\n"  # promised ahead: fine
        "FR-2,F-1,FI-1,50.00,2026-12-02,2027-02-01\n"
    ),
    "disputes.csv": (
        "id,customer_id,invoice_id,opened_on,resolved_on,reason\n"
        "FD-1,F-1,FI-1,2026-11-01,2026-12-05,解决日期在未来\n"
        "FD-2,F-1,FI-1,2026-12-01,,争议日期在未来\n"
    ),
    "instalment_plans.csv": (
        "id,customer_id,invoice_ids,agreed_on,instalments\n"
        "FL-1,F-1,FI-1,2026-11-30,2026-12-31=50.00;2027-01-31=50.00\n"  # instalments ahead
        "FL-2,F-1,FI-1,2026-12-01,2026-12-31=50.00\n"
    ),
}
FUTURE_ERRORS = {
    ("customers.csv", 3, 7),
    ("customers.csv", 4, 8),
    ("invoices.csv", 3, 5),
    ("payments.csv", 3, 5),
    ("credit_notes.csv", 2, 5),
    ("promises.csv", 3, 5),
    ("disputes.csv", 2, 5),
    ("disputes.csv", 3, 4),
    ("instalment_plans.csv", 3, 4),
}


def _encoded(files: dict[str, str]) -> dict[str, bytes]:
    return {name: text.encode() for name, text in files.items()}


def test_every_date_of_what_has_happened_is_refused_after_the_imports_as_of(fresh):
    before = _without_imports(fresh.counts())
    r = _import(fresh, _encoded(FUTURE), as_of=AS_OF)
    found = _lines(r)
    assert found == {(*where, "E_INPUT_INVALID") for where in FUTURE_ERRORS}, found
    assert any("2026-12-01 is after the import's as_of (2026-11-30)" in line for line in r.json()["errors"]["import"])
    assert _without_imports(fresh.counts()) == before  # nothing written
    # the good rows alone (due dates, promised dates and instalments ahead of as_of) load
    good = {
        name: "".join(
            line + "\n"
            for i, line in enumerate(text.splitlines(), 1)
            if (name, i) not in {(f, row) for f, row, _ in FUTURE_ERRORS}
        )
        for name, text in FUTURE.items()
    }
    r = _import(fresh, _encoded(good), as_of=AS_OF)
    assert r.status_code == 201, r.text
    assert {k: c["new"] for k, c in r.json()["counts"].items()} == {
        "customers": 1,
        "invoices": 1,
        "payments": 1,
        "credit_notes": 0,
        "promises": 1,
        "disputes": 0,
        "instalment_plans": 1,
    }


def test_the_as_of_decides_what_is_the_future_and_skip_invalid_returns_those_rows(fresh):
    files = _encoded({"customers.csv": FUTURE["customers.csv"]})
    r = _import(fresh, files, as_of="2026-12-01")  # both dates are that day: fine
    assert r.status_code == 201 and r.json()["counts"]["customers"]["new"] == 3, r.text
    r = _import(
        fresh,
        _encoded({"payments.csv": f"id,customer_id,amount,paid_on\nP-1,F-1,1.00,{day(0)}\nP-2,F-1,1.00,{day(1)}\n"}),
        skip_invalid="true",
    )  # as_of left out: today
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["payments"] == {"rows": 2, "new": 1, "changed": 0, "unchanged": 0, "rejected": 1}
    assert f"payments.csv:3:4: E_INPUT_INVALID: paid_on: {day(1)} is after" in r.json()["rejected_csv"]


# ------------------------------------------------------------------------------------------ the one money rule
REFUSED_AMOUNTS = [
    "1e6",
    "1E3",
    "1,000.00",
    "１００",
    " 100.00",
    "100.00 ",
    "1_000",
    "+100",
    "-5.00",
    "100.",
    ".5",
    "100.000",
    "0x10",
    "NaN",
    "Infinity",
    "¥100",
    "1" * 17,
]
ACCEPTED_AMOUNTS = ["100", "100.5", "100.50", "0.01"]


@pytest.mark.parametrize("amount", REFUSED_AMOUNTS + ACCEPTED_AMOUNTS)
def test_an_amount_the_http_refuses_the_import_refuses_and_the_other_way_round(api, amount):
    cid = api.customer()
    over_http = api.event(
        cid,
        "invoice_issued",
        {"id": uid("I"), "amount": amount, "currency": "CNY", "issued_on": day(-1), "due_on": day(29)},
        expect=None,
    )
    invoice = uid("I")
    text = "id,customer_id,amount,currency,issued_on,due_on\n" + f'{invoice},{cid},"{amount}",CNY,{day(-1)},{day(29)}\n'
    by_import = _import(api, {"invoices.csv": text.encode()})
    if amount in ACCEPTED_AMOUNTS:
        assert over_http.status_code == 201, over_http.text
        assert by_import.status_code == 201, by_import.text
        return
    assert over_http.status_code == 422 and "data.amount" in over_http.json()["errors"], over_http.text
    assert _lines(by_import) == {("invoices.csv", 2, 3, "E_AMOUNT")}
    assert api.get(f"/v1/customers/{cid}").json()["credit"]["outstanding"] == "0.00"


def test_instalment_and_limit_amounts_follow_the_same_rule(fresh):
    customers = (
        "id,type,industry,region,size,since,approved_limit\n"
        "M-1,enterprise,services,local,large,2020-01-01,5e5\n"
        "M-2,enterprise,services,local,large,2020-01-01,500000.00\n"
    )
    invoices = "id,customer_id,amount,currency,issued_on,due_on\nMI-1,M-2,100.00,CNY,2026-11-01,2026-11-30\n"
    plans = (
        "id,customer_id,invoice_ids,agreed_on,instalments\n"
        "ML-1,M-2,MI-1,2026-11-10,2026-12-31=1e2\n"
        "ML-2,M-2,MI-1,2026-11-10,2026-12-31= 50.00\n"  # around the separator: stripped
        "ML-3,M-2,MI-1,2026-11-10,2026-12-31=５０\n"
    )
    r = _import(
        fresh,
        {
            "customers.csv": customers.encode(),
            "invoices.csv": invoices.encode(),
            "instalment_plans.csv": plans.encode(),
        },
        role="controller",
        as_of=AS_OF,
    )
    assert _lines(r) == {
        ("customers.csv", 2, 7, "E_AMOUNT"),
        ("instalment_plans.csv", 2, 5, "E_INVALID"),
        ("instalment_plans.csv", 4, 5, "E_INVALID"),
    }


# ------------------------------------------------------------------------------------------ decision fields
def test_back_office_may_not_load_a_book_with_decision_fields_and_nothing_is_written(fresh):
    before = _without_imports(fresh.counts())
    found = _lines(_import(fresh, _book(), as_of="2026-11-22"))
    refused = {f for f in found if f[3] == "E_DECISION_FIELD"}
    # C-2003 row 4 (manual score, column 8), C-2007 row 8 (score and arrears reason, column 14) …
    assert {("customers.csv", 4, 8), ("customers.csv", 8, 8), ("customers.csv", 8, 14), ("customers.csv", 11, 14)} <= {
        f[:3] for f in refused
    }
    assert {f[2] for f in refused} == {8, 14}  # segment attributes of new files are back office's
    assert not any(f[0] == "customers.csv" and f[1] in (2, 3, 6, 9) for f in found)  # rows without them are fine
    assert _without_imports(fresh.counts()) == before
    # skip_invalid loads the files without a decision field; the rest come back with why
    r = _import(fresh, _book(), as_of="2026-11-22", skip_invalid="true")
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["customers"]["new"] == 4 and r.json()["counts"]["customers"]["rejected"] == 8
    rejected = {(row[0], row[1]): row[2] for row in csv.reader(io.StringIO(r.json()["rejected_csv"]))}
    assert rejected[("customers.csv", "4")].startswith("customers.csv:4:8: E_DECISION_FIELD: credit_score: ")
    assert fresh.get("/v1/customers/C-2001").status_code == 200
    assert fresh.get("/v1/customers/C-2003").status_code == 404


def test_back_office_keeps_identity_data_and_never_changes_the_credit_departments_fields(fresh):
    assert _load_book(fresh, as_of="2026-11-22").status_code == 201
    book = _book()
    text = book["customers.csv"].decode()
    row = "C-2003,中建华南工程项目部,enterprise,engineering_project,local,large,2021-06-01,68,"
    assert row in text
    for changed, col in (
        (row.replace(",68,", ",95,"), 8),
        (row.replace(",local,", ",remote,"), 5),
        (row.replace(",68,", ",,"), 8),
    ):  # clearing a score is a change too
        before = _without_imports(fresh.counts())
        found = _lines(_import(fresh, {"customers.csv": text.replace(row, changed).encode()}, as_of="2026-11-22"))
        assert found == {("customers.csv", 4, col, "E_DECISION_FIELD")}, found
        assert _without_imports(fresh.counts()) == before
    # an ERP export without the decision columns renames the file and leaves the department's fields as they are
    export = (
        "id,name,type,industry,region,size,since,collector\n"
        "C-2003,中建华南工程项目部（更名）,enterprise,engineering_project,local,large,2021-06-01,韩梅梅\n"
        "C-2007,广州鑫源建材有限公司,enterprise,trading,local,small,2021-11-01,\n"
    )
    r = _import(fresh, {"customers.csv": export.encode()}, as_of="2026-11-22")
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["customers"]["changed"] == 1 and r.json()["counts"]["customers"]["unchanged"] == 1
    c3 = fresh.get("/v1/customers/C-2003", role="controller").json()
    assert (c3["name"], c3["collector"], c3["credit_score"], c3["deal_type"]) == (
        "中建华南工程项目部（更名）",
        "韩梅梅",
        68,
        "project",
    )
    c7 = fresh.get("/v1/customers/C-2007", role="controller").json()
    assert (c7["credit_score"], c7["arrears_reason"]) == (52, "malicious_delay")
    assert _records(fresh) == []


def test_a_controllers_import_changing_decision_fields_needs_a_reason_and_leaves_records(fresh):
    assert _load_book(fresh, as_of="2026-11-22").status_code == 201
    header = (
        "id,name,type,industry,region,size,since,credit_score,approved_limit,approved_terms_days,"
        "arrears_reason,deal_type\n"
    )
    files = {
        "customers.csv": (
            header + "C-2003,中建华南工程项目部,enterprise,engineering_project,local,large,"
            "2021-06-01,80,300000.00,45,,project\n"
            "C-2005,苏州恒通贸易有限公司,enterprise,trading,local,small,2022-02-10,,,,,\n"
            "N-1,新客户,enterprise,services,local,small,2024-01-01,70,,,,\n"
        ).encode()
    }
    before = _without_imports(fresh.counts())
    found = _lines(_import(fresh, files, role="controller", as_of="2026-11-22"))
    assert found == {("customers.csv", 2, 8, "E_INPUT_INVALID"), ("customers.csv", 3, 5, "E_INPUT_INVALID")}
    assert _without_imports(fresh.counts()) == before
    dry = _import(fresh, files, role="controller", as_of="2026-11-22", dry_run="true", reason="季度评估")
    assert dry.status_code == 201 and dry.json()["status"] == "checked" and _records(fresh) == []
    r = _import(fresh, files, role="controller", as_of="2026-11-22", reason="季度评估 quarterly review")
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["customers"] == {"rows": 3, "new": 1, "changed": 2, "unchanged": 0, "rejected": 0}
    records = {rec.subject: rec for rec in _records(fresh)}
    assert set(records) == {"C-2003", "C-2005"}  # opening N-1 is no change
    rec = records["C-2003"]
    assert (rec.actor, rec.request_id, rec.outcome, rec.as_of.isoformat()) == (
        "test-controller",
        r.json()["id"],
        "changed",
        "2026-11-22",
    )
    facts = json.loads(rec.facts)
    assert facts["reason"] == "季度评估 quarterly review"
    assert facts["changes"] == {
        "credit_score": {"before": 68, "after": 80},
        "approved_limit": {"before": None, "after": "300000.00"},
        "approved_terms_days": {"before": None, "after": 45},
    }
    assert json.loads(records["C-2005"].facts)["changes"] == {"region": {"before": "remote", "after": "local"}}
    # each changed file's import decision follows its change record in its chain
    with fresh.service.read_tx() as s:
        kinds = (
            s.execute(
                select(DecisionRecord.kind).where(DecisionRecord.subject == "C-2003").order_by(DecisionRecord.seq)
            )
            .scalars()
            .all()
        )
    assert kinds == ["import", "credit_file_change", "import"]
    assert fresh.get("/v1/customers/C-2003", role="controller").json()["approved_terms_days"] == 45
    assert fresh.get("/v1/audit/verify", role="auditor").json()["ok"] is True
    again = _import(fresh, files, role="controller", as_of="2026-11-22", reason="再次导入")
    assert again.json()["decisions"] == 0 and len(_records(fresh)) == 2  # unchanged: no record


# ------------------------------------------------------------------------------------------ the real CLI
def test_the_cli_refuses_future_dates_and_records_the_operators_changes_with_the_reason(backend, tmp_path):
    url = backend.new_url()
    done = _cli(["import", *map(str, sorted(BOOK.glob("*.csv"))), "--as-of", "2026-11-22", "--quiet"], url)
    assert done.returncode == 0 and '"decisions": 12' in done.stdout, done.stderr
    payments = tmp_path / "payments.csv"
    payments.write_text(
        "id,customer_id,invoice_id,amount,paid_on\nPX-1,C-2001,HD-2609,100.00,2026-11-23\n", encoding="utf-8"
    )
    r = _cli(["import", str(payments), "--as-of", "2026-11-22", "--quiet"], url)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{payments}:2:5: E_INPUT_INVALID: paid_on: 2026-11-23 is after the import's as_of" in r.stderr
    customers = tmp_path / "客户.csv"
    customers.write_text(
        "客户编号,客户名称,客户类型,行业,地区,企业规模,合作开始日期,信用评分\n"
        "C-2003,中建华南工程项目部,enterprise,engineering_project,local,large,2021-06-01,75\n",
        encoding="gb18030",
    )
    r = _cli(["import", str(customers), "--as-of", "2026-11-22", "--quiet"], url)
    assert r.returncode == 1 and f"{customers}:2:8: E_INPUT_INVALID: credit_score: a reason is required" in r.stderr
    r = _cli(["import", str(customers), "--as-of", "2026-11-22", "--quiet", "--reason", "人工复核 manual review"], url)
    assert r.returncode == 0, r.stderr
    api = Api(backend.name, url)
    try:
        (rec,) = _records(api)
        assert rec.actor == f"cli:{os.environ.get('USER', 'import')}" and rec.request_id == json.loads(r.stdout)["id"]
        assert json.loads(rec.facts) == {
            "reason": "人工复核 manual review",
            "created": False,
            "changes": {"credit_score": {"before": 68, "after": 75}},
        }
        assert api.get("/v1/audit/verify", role="auditor").json()["ok"] is True
    finally:
        api.close()
