"""Reports by customer group (集团客户, issue 12): `by=group` on overdue, DSO, collections and the interest
ledger (JSON `groups`, CSV rows per group), the aging report's CSV and chart; members summed under their group,
customers in no group under key null, as the aging report's groups (real HTTP, SQLite and PostgreSQL)."""
from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select

from api.jobs import accrual
from api.store.tables import Action
from api_harness import TODAY, day, uid

NAME = "鞍钢集团 Ansteel group"


def _book(api):
    """Group G (a, b), an empty group E, and c in no group; a 10,000 invoice 40 days overdue with 4,000 paid,
    b 2,500.50 not yet due, c 700 3 days overdue and 50 due in 7 days."""
    gid, empty = uid("G"), uid("H")
    for g, name in ((gid, NAME), (empty, "空集团 empty")):
        r = api.put(f"/v1/groups/{g}", {"name": name, "limit": "300000.00", "reason": "parent"}, role="controller")
        assert r.status_code == 200, r.text
    a, b, c = api.customer(), api.customer(), api.customer()
    for cid in (a, b):
        r = api.put(f"/v1/customers/{cid}/group", {"group_id": gid, "reason": "subsidiary"}, role="controller")
        assert r.status_code == 200, r.text
    inv = api.invoice(a, "10000.00", due=-40)                    # issued day -70
    api.event(a, "payment_received", {"amount": "4000.00", "paid_on": day(-1), "invoice_id": inv})
    api.invoice(b, "2500.50", due=5)                             # issued day -25
    api.invoice(c, "700.00", due=-3)                             # issued day -33
    api.invoice(c, "50.00", due=7, issued=-1)                    # its payment reminder is due today
    return gid, empty, a, b, c


def _rows(body) -> dict:
    return {g["key"]: g for g in body["groups"]}


def test_every_report_sums_members_under_their_group(fresh):
    api = fresh
    gid, empty, a, b, c = _book(api)
    assert "groups" not in api.get("/v1/reports/overdue", role="auditor").json()      # as before without by

    # overdue: every overdue invoice's figures per group; the groups partition the total
    body = api.get("/v1/reports/overdue", params={"by": "group", "limit": 1}, role="auditor").json()
    assert [g["key"] for g in body["groups"]] == sorted([gid, empty]) + [None]
    g = _rows(body)
    assert (g[gid]["name"], g[gid]["limit"], g[gid]["customers"], g[gid]["invoices"], g[gid]["open_balance"],
            g[gid]["max_days_overdue"]) == (NAME, "300000.00", 1, 1, "6000.00", 40)
    assert (g[empty]["customers"], g[empty]["open_balance"]) == (0, "0.00")
    assert (g[None]["name"], g[None]["limit"], g[None]["invoices"], g[None]["open_balance"]) == (None, None, 1,
                                                                                                 "700.00")
    assert body["truncated"] is True and body["total"]["invoices"] == sum(x["invoices"] for x in g.values()) == 2

    # DSO: each group's receivables over its members' credit sales in the window
    body = api.get("/v1/reports/dso", params={"by": "group", "days": 90}, role="auditor").json()
    g = _rows(body)
    assert (g[gid]["customers"], g[gid]["receivables"], g[gid]["credit_sales"], g[gid]["credit_sales_invoices"]) == (
        2, "8500.50", "12500.50", 2)
    expected = (Decimal("8500.50") * 90 / Decimal("12500.50")).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert g[gid]["dso_days"] == str(expected) == "61.20"
    assert g[empty]["dso_days"] is None and g[None]["dso_days"] == "90.00"
    assert sum(Decimal(x["receivables"]) for x in g.values()) == Decimal(body["receivables"])
    assert sum(Decimal(x["credit_sales"]) for x in g.values()) == Decimal(body["credit_sales"])

    # collections: the members' actions due in the period, by status
    since, until = day(-60), day(30)
    body = api.get("/v1/reports/collections", params={"by": "group", "since": since, "until": until},
                   role="auditor").json()
    with api.service.tx() as s:
        def actions(*ids):
            return s.execute(select(func.count()).select_from(Action).where(
                Action.customer_id.in_(ids), Action.due_on >= dt.date.fromisoformat(since),
                Action.due_on <= dt.date.fromisoformat(until))).scalar_one()
        mine, alone = actions(a, b), actions(c)
    g = _rows(body)
    assert mine > 0 and alone > 0
    assert (g[gid]["actions"], g[None]["actions"], g[empty]["actions"]) == (mine, alone, 0)
    assert sum(g[gid]["by_status"].values()) == mine
    assert body["total"]["actions"] == mine + alone
    assert sum(Decimal(x["amount"]) for x in g.values()) == Decimal(body["total"]["amount"])

    # the interest ledger: a's invoice accrues (40 days overdue, 5 grace days)
    accrual.accrue(api.service, TODAY, "test")
    body = api.get("/v1/reports/interest-accruals", params={"by": "group", "from": day(-60)}, role="auditor").json()
    g = _rows(body)
    mine = next(t for t in body["totals"] if t["customer_id"] == a)
    assert (g[gid]["customers"], g[gid]["amount"], g[gid]["rows"]) == (1, mine["amount"], mine["rows"])
    # c is within the grace days: no row, so no "no group" line (as the aging report: only when it has any)
    assert Decimal(g[gid]["amount"]) > 0 and None not in g and g[empty]["rows"] == 0
    assert sum(Decimal(x["amount"]) for x in g.values()) == Decimal(body["total"]["amount"])
    r = api.get("/v1/reports/interest-accruals", params={"by": "group", "from": day(-60), "format": "csv"},
                role="auditor")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv"), r.text
    lines = list(csv.reader(io.StringIO(r.text)))
    assert lines[0] == accrual.GROUP_CSV_COLUMNS
    assert [x[:3] for x in lines[1:]] == [[k or "", v["name"] or "", str(v["customers"])] for k, v in g.items()]

    # the aging report's CSV by group and its chart by group
    aging = _rows(api.get("/v1/reports/aging", role="auditor").json())
    r = api.get("/v1/reports/aging", params={"format": "csv", "by": "group"}, role="auditor")
    assert r.status_code == 200, r.text
    lines = list(csv.reader(io.StringIO(r.text)))
    assert lines[0][:7] == ["group_id", "name", "limit", "customers", "open_invoices", "outstanding", "overdue"]
    by_id = {x[0]: x for x in lines[1:]}
    assert set(by_id) == {gid, empty, ""}
    assert by_id[gid][1:7] == [NAME, "300000.00", "2", "2", aging[gid]["outstanding"], aging[gid]["overdue"]]
    assert by_id[""][1:4] == ["", "", "1"]
    svg = api.get("/v1/reports/aging.svg", params={"by": "group"}, role="auditor")
    assert svg.status_code == 200 and NAME in svg.text and "by customer group" in svg.text
    assert "空集团" not in svg.text            # an empty group has no bar

    for path in ("/v1/reports/overdue", "/v1/reports/dso", "/v1/reports/collections", "/v1/reports/aging",
                 "/v1/reports/interest-accruals"):
        r = api.get(path, params={"by": "industry"}, role="auditor")
        assert r.status_code == 422 and "by" in r.json()["errors"], (path, r.text)


def test_by_group_follows_membership_and_reads_one_customer_of_the_interest_ledger(fresh):
    api = fresh
    gid, empty, a, b, c = _book(api)
    r = api.put(f"/v1/customers/{c}/group", {"group_id": gid, "reason": "acquired"}, role="controller")
    assert r.status_code == 200, r.text
    body = api.get("/v1/reports/overdue", params={"by": "group"}, role="auditor").json()
    assert [g["key"] for g in body["groups"]] == sorted([gid, empty])            # nobody is left in no group
    assert _rows(body)[gid]["open_balance"] == "6700.00" and _rows(body)[gid]["customers"] == 2
    accrual.accrue(api.service, TODAY, "test")
    body = api.get("/v1/reports/interest-accruals", params={"by": "group", "customer": b, "from": day(-60)},
                   role="auditor").json()
    assert [(g["key"], g["customers"]) for g in body["groups"]] == [(x, 0) for x in sorted([gid, empty])]
