"""Bulk import (api/jobs/importer, docs/import.md) over real HTTP and the real CLI, on SQLite and
PostgreSQL: the demo book loads, a second import of the same files changes nothing, a changed row is an
update, every bad cell is named FILE:ROW:COLUMN with a code and nothing is written, --skip-invalid writes
the good rows, CSV in UTF-8 (BOM or not) and GB18030 with Chinese headers, XLSX with a sheet per kind."""

from __future__ import annotations

import io
import os
import pathlib
import re
import subprocess
import sys

import openpyxl
import pytest

from api_harness import ROOT

BOOK = pathlib.Path(ROOT) / "examples" / "book"
LINE = re.compile(r"^(?P<file>[^:]+):(?P<row>\d+):(?P<col>\d+): (?P<code>E_[A-Z_]+): (?P<msg>.+)$")


def _files(paths: dict[str, bytes]):
    return [("files", (name, io.BytesIO(data))) for name, data in paths.items()]


def _book() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(BOOK.glob("*.csv"))}


def _import(api, files: dict[str, bytes], role="backoffice", **params):
    return api.request("POST", "/v1/imports", role, files=_files(files), params=params)


def _load_book(api, **params):
    """The demo book holds manual scores and arrears reasons: the credit department (a controller) loads it."""
    return _import(api, _book(), role="controller", **params)


def _decisions(api, kind="import") -> int:
    from sqlalchemy import func, select

    from api.store.tables import DecisionRecord

    with api.service.read_tx() as s:
        return s.execute(
            select(func.count()).select_from(DecisionRecord).where(DecisionRecord.kind == kind)
        ).scalar_one()


def _without_imports(counts: dict) -> dict:
    return {k: v for k, v in counts.items() if k != "imports"}


def test_the_demo_book_imports_once_and_a_second_import_changes_nothing(fresh):
    r = _load_book(fresh, as_of="2026-11-22")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "done" and body["error_count"] == 0
    assert body["counts"]["customers"] == {"rows": 12, "new": 12, "changed": 0, "unchanged": 0, "rejected": 0}
    assert body["counts"]["invoices"]["new"] == 19 and body["counts"]["payments"]["new"] == 3
    assert body["decisions"] == 12 and _decisions(fresh) == 12
    assert all(len(f["sha256"]) == 64 for f in body["files"])
    # the customers are decided as a department would see them
    c = fresh.get("/v1/customers/C-2001", params={"as_of": "2026-11-22"}).json()
    assert c["name"] == "华东精密制造有限公司" and c["credit"]["outstanding"] == "180000.00"
    assert fresh.get("/v1/audit/verify", role="auditor").json()["ok"] is True
    before = _without_imports(fresh.counts())
    again = _import(fresh, _book(), as_of="2026-11-22").json()  # back office resends it unchanged
    assert again["decisions"] == 0
    assert {k: v["unchanged"] for k, v in again["counts"].items()} == {k: v["rows"] for k, v in again["counts"].items()}
    assert _without_imports(fresh.counts()) == before
    # the import run is on record
    rec = fresh.get(f"/v1/imports/{body['id']}", role="auditor").json()
    assert rec["status"] == "done" and rec["actor"] == "test-controller" and rec["decisions"] == 12


def test_a_changed_row_is_an_update_and_only_its_customer_is_decided_again(fresh):
    assert _load_book(fresh, as_of="2026-11-22").status_code == 201
    book = _book()
    text = book["invoices.csv"].decode()
    assert "HD-2609,C-2001,120000.00" in text
    book["invoices.csv"] = text.replace("HD-2609,C-2001,120000.00", "HD-2609,C-2001,90000.00").encode()
    r = _import(fresh, book, as_of="2026-11-22").json()
    assert r["counts"]["invoices"]["changed"] == 1 and r["counts"]["invoices"]["unchanged"] == 18
    assert r["decisions"] == 1
    c = fresh.get("/v1/customers/C-2001", params={"as_of": "2026-11-22"}).json()
    assert c["credit"]["outstanding"] == "150000.00"


def test_every_bad_cell_is_named_and_nothing_is_written(fresh):
    before = _without_imports(fresh.counts())
    customers = (
        "id,name,type,industry,region,size,since\n"
        "X-1,好客户,enterprise,manufacturing,local,large,2020-01-01\n"
        "X-2,坏行业,enterprise,mining,local,large,2020-01-01\n"  # not a category of the policy
        "X-3,坏日期,enterprise,services,local,large,2020-13-40\n"
    )
    invoices = (
        "id,customer_id,amount,currency,issued_on,due_on\n"
        "I-1,X-1,1e6,CNY,2026-10-01,2026-10-31\n"  # exponent
        'I-2,X-1,"1,000.00",CNY,2026-10-01,2026-10-31\n'  # separator
        "I-3,X-1,１００,CNY,2026-10-01,2026-10-31\n"  # full-width digits
        "I-4,NOPE,100.00,CNY,2026-10-01,2026-10-31\n"  # unknown customer
        "I-5,X-1,100.00,USD,2026-10-01,2026-10-31\n"  # another currency
        "I-6,X-1,100.00,CNY,2026-10-01,2026-09-30\n"  # due before issue
        "I-7,X-1,100.00,CNY,2026-10-01,2026-10-31\n"
        "I-7,X-1,200.00,CNY,2026-10-01,2026-10-31\n"
    )  # duplicate id
    r = _import(fresh, {"customers.csv": customers.encode(), "invoices.csv": invoices.encode()})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "E_IMPORT_INVALID"
    lines = body["errors"]["import"]
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    found = {(m["file"], int(m["row"]), int(m["col"]), m["code"]) for m in parsed}
    assert ("customers.csv", 3, 4, "E_CATEGORY") in found
    assert ("customers.csv", 4, 7, "E_DATE") in found
    assert {("invoices.csv", row, 3, "E_AMOUNT") for row in (2, 3, 4)} <= found
    assert ("invoices.csv", 5, 2, "E_UNKNOWN_CUSTOMER") in found
    assert ("invoices.csv", 6, 4, "E_CURRENCY") in found
    assert any(f == ("invoices.csv", 7, f[2], "E_INVALID") for f in found), found
    assert ("invoices.csv", 9, 1, "E_DUPLICATE_ROW") in found
    assert not any(f[1] == 8 for f in found if f[0] == "invoices.csv")  # the first I-7 is fine
    assert _without_imports(fresh.counts()) == before


def test_skip_invalid_writes_the_good_rows_and_returns_the_rejected(fresh):
    customers = (
        "id,name,type,industry,region,size,since\n"
        "S-1,好,enterprise,manufacturing,local,large,2020-01-01\n"
        "S-2,坏,enterprise,mining,local,large,2020-01-01\n"
    )
    r = _import(fresh, {"customers.csv": customers.encode()}, skip_invalid="true")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["counts"]["customers"]["new"] == 1 and body["counts"]["customers"]["rejected"] == 1
    assert "customers.csv,3," in body["rejected_csv"] and "E_CATEGORY" in body["rejected_csv"]
    assert fresh.get("/v1/customers/S-1").status_code == 200
    assert fresh.get("/v1/customers/S-2").status_code == 404


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_chinese_headers_in_utf8_with_bom_and_in_gb18030(fresh, encoding):
    text = (
        "客户编号,客户名称,客户类型,行业,地区,企业规模,合作开始日期,催收负责人\n"
        "G-1,广州恒达贸易有限公司,enterprise,services,remote,small,2021-06-01,李娜\n"
    )
    r = _import(fresh, {"客户.csv": text.encode(encoding)})
    assert r.status_code == 201, r.text
    c = fresh.get("/v1/customers/G-1").json()
    assert c["name"] == "广州恒达贸易有限公司" and c["collector"] == "李娜"


def test_utf16_is_refused_with_a_clear_error(fresh):
    text = "id,name,type,industry,region,size,since\n".encode("utf-16")
    r = _import(fresh, {"customers.csv": text})
    assert r.status_code == 422
    assert r.json()["errors"]["import"][0].startswith("customers.csv:1:1: E_ENCODING: ")


def test_a_workbook_with_a_sheet_per_kind_and_the_template(fresh):
    t = fresh.get("/v1/imports/template.xlsx", role="auditor")
    assert t.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(t.content))
    assert {"customers", "invoices", "payments", "instalment_plans"} <= set(book.sheetnames)
    assert [c.value for c in book["invoices"][1]] == [
        "id",
        "customer_id",
        "amount",
        "currency",
        "issued_on",
        "due_on",
        "order_id",
    ]
    book["customers"].append(["W-1", "温州", "enterprise", "manufacturing", "local", "large", "2019-05-01"])
    book["invoices"].append(["W-INV-1", "W-1", "2500.50", "CNY", "2026-11-01", "2026-11-30", None])
    out = io.BytesIO()
    book.save(out)
    r = _import(fresh, {"book.xlsx": out.getvalue()}, as_of="2026-12-10")
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["invoices"]["new"] == 1 and r.json()["decisions"] == 1
    c = fresh.get("/v1/customers/W-1", params={"as_of": "2026-12-10"}).json()
    assert c["credit"]["overdue"] == "2500.50"


def test_who_may_import(fresh):
    assert _import(fresh, _book(), role="sales").status_code == 403
    assert _import(fresh, _book(), role="auditor").status_code == 403
    assert fresh.request("POST", "/v1/imports", "backoffice", json={"a": 1}).json()["code"] == "E_BAD_REQUEST"


def _cli(args, db, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args, "--database-url", db],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_checks_imports_and_answers_with_lines_and_exit_codes(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    bad = tmp_path / "invoices.csv"
    bad.write_text(
        "id,customer_id,amount,currency,issued_on,due_on\nI-1,NOPE,12x,CNY,2026-10-01,2026-10-31\n", encoding="utf-8"
    )
    r = _cli(["import", str(bad)], db)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{bad}:2:3: E_AMOUNT: " in r.stderr
    dry = _cli(["import", *map(str, sorted(BOOK.glob("*.csv"))), "--dry-run", "--quiet"], db)
    assert dry.returncode == 0, dry.stderr
    assert '"status": "checked"' in dry.stdout and '"decisions": 0' in dry.stdout
    done = _cli(["import", *map(str, sorted(BOOK.glob("*.csv"))), "--as-of", "2026-11-22", "--quiet"], db)
    assert done.returncode == 0 and '"decisions": 12' in done.stdout, done.stderr
    template = tmp_path / "t.xlsx"
    assert _cli(["import", "--template", str(template)], db).returncode == 0
    assert "customers" in openpyxl.load_workbook(template).sheetnames
    missing = _cli(["import", str(tmp_path / "nope.csv")], db)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_contacts_come_with_the_import_and_auditors_read_them_masked(fresh):
    assert _load_book(fresh, as_of="2026-11-22").status_code == 201
    text = (
        "客户编号,联系人,职务,邮箱,手机,地址,首选渠道,语言,主联系人\n"
        "C-2001,张伟,财务经理,zhang.wei@example.cn,13800138000,上海市浦东新区世纪大道100号,email,zh_CN,是\n"
        "C-2001,Li Na,采购,li.na@example.cn,,,phone,en,否\n"
    )
    r = _import(fresh, {"联系人.csv": text.encode("gb18030")})
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["contacts"]["new"] == 2 and r.json()["decisions"] == 0  # contacts move no decision
    full = fresh.get("/v1/customers/C-2001/contacts", role="backoffice").json()
    assert full["masked"] is False
    assert [(c["name"], c["email"], c["primary"]) for c in full["contacts"]] == [
        ("张伟", "zhang.wei@example.cn", True),
        ("Li Na", "li.na@example.cn", False),
    ]
    masked = fresh.get("/v1/customers/C-2001/contacts", role="auditor").json()
    import hashlib

    assert masked["masked"] is True
    assert masked["contacts"][0]["email"] == "sha256:" + hashlib.sha256(b"zhang.wei@example.cn").hexdigest()
    assert masked["contacts"][0]["role"] == "财务经理" and masked["contacts"][1]["mobile"] is None
    assert "13800138000" not in fresh.get("/v1/customers/C-2001/contacts", role="auditor").text
    # the decisions' facts hold no contact data
    assert "zhang.wei" not in fresh.get("/v1/decisions", role="auditor", params={"customer": "C-2001"}).text


def test_contacts_are_maintained_by_back_office_with_one_primary_per_channel(fresh):
    assert _load_book(fresh, as_of="2026-11-22").status_code == 201
    body = {
        "contacts": [
            {"name": "王芳", "email": "wf@example.cn", "preferred_channel": "email", "primary": True},
            {"name": "赵强", "mobile": "+86 139 0000 0000", "preferred_channel": "sms"},
        ]
    }
    r = fresh.put("/v1/customers/C-2002/contacts", body, role="backoffice")
    assert r.status_code == 200, r.text
    assert [c["name"] for c in r.json()["contacts"]] == ["王芳", "赵强"]
    two = {
        "contacts": [
            {"name": "A", "preferred_channel": "email", "primary": True},
            {"name": "B", "preferred_channel": "email", "primary": True},
        ]
    }
    bad = fresh.put("/v1/customers/C-2002/contacts", two, role="backoffice")
    assert bad.status_code == 422 and "contacts[1].primary" in bad.json()["errors"], bad.text
    assert fresh.put(
        "/v1/customers/C-2002/contacts", {"contacts": [{"name": "X", "email": "not-mail"}]}, role="backoffice"
    ).json()["errors"] == {"contacts[0].email": ["Not a valid email address."]}
    assert fresh.put("/v1/customers/C-2002/contacts", body, role="auditor").status_code == 403
    assert fresh.put("/v1/customers/C-2002/contacts", body, role="sales").status_code == 403
    assert [c["name"] for c in fresh.get("/v1/customers/C-2002/contacts", role="sales").json()["contacts"]] == [
        "王芳",
        "赵强",
    ]
    assert fresh.get("/v1/customers/NOPE/contacts").status_code == 404
