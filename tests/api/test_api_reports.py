"""Portfolio reports and statements of account over real HTTP, on SQLite and PostgreSQL.

The book below is built through the API (PUT /v1/customers, POST /v1/events) in a database of its
own, and every figure asserted is worked out by hand from it (TODAY = 2026-12-15, the policy's buckets
current ≤ 0 < short ≤ 30 < medium ≤ 90 < long days overdue, tiers small < 10,000 ≤ medium < 100,000 ≤ large):

  R-A manufacturing/local   A1 50,000 issued −130 due −100   (100 days: long)
                            A2 40,000 issued −70  due −40    paid 20,000 on −50 *targeted at A2*; promise open
                            A3 10,000 issued −10  due +20    (current)
  R-B services/remote       B3  2,000 issued −90  due −30    settled by 2,000 unallocated cash on −20 (oldest due)
                            B1  5,000 issued −45  due −15    disputed since −10
                            B2  3,000 issued −35  due −5     credit note 1,000 on −3
  R-C manufacturing/remote  300 paid on −30 before any invoice (unapplied until C1 exists); C1 120,300 issued −20
                            due +10, the 300 applied to it on its issue (120,000 open)
  R-D retail_mall/local     D1  1,000 issued −89  due −10    paid in full on −9
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select

from api.store import book as store_book
from api.store.tables import Action, Customer
from api.store.ledger import load_case, load_cases
from engine.facts import check_case, load_case as validate_case
from api_harness import TODAY, Api, day

SVG = "{http://www.w3.org/2000/svg}"
LABELS = ["current", "short", "medium", "long"]


def _buckets(current="0.00", short="0.00", medium="0.00", long="0.00"):
    return {"current": current, "short": short, "medium": medium, "long": long}


@pytest.fixture(scope="module")
def book(backend):
    """A database, app and server of this module's own, holding the book of the module docstring."""
    api = Api(backend.name, backend.new_url())
    try:
        a = api.customer("R-A", name="Anshan Steel 鞍钢", industry="manufacturing", region="local")
        api.invoice(a, "50000.00", issued=-130, due=-100, invoice_id="A1")
        api.invoice(a, "40000.00", issued=-70, due=-40, invoice_id="A2")
        api.event(a, "payment_received", {"id": "PA", "invoice_id": "A2", "amount": "20000.00", "paid_on": day(-50)})
        api.invoice(a, "10000.00", issued=-10, due=20, invoice_id="A3")
        api.event(
            a,
            "promise_to_pay",
            {"id": "PRA", "invoice_id": "A2", "amount": "20000.00", "made_on": day(-2), "promised_on": day(5)},
        )
        b = api.customer("R-B", name="Beta Services", industry="services", region="remote", size="small")
        api.invoice(b, "2000.00", issued=-90, due=-30, invoice_id="B3")
        api.invoice(b, "5000.00", issued=-45, due=-15, invoice_id="B1")
        api.invoice(b, "3000.00", issued=-35, due=-5, invoice_id="B2")
        api.event(b, "payment_received", {"id": "PB", "amount": "2000.00", "paid_on": day(-20)})
        api.event(b, "dispute_opened", {"id": "DB", "invoice_id": "B1", "opened_on": day(-10), "reason": "quality"})
        api.event(b, "credit_note", {"id": "CNB", "invoice_id": "B2", "amount": "1000.00", "issued_on": day(-3)})
        c = api.customer("R-C", name="Gamma Works", industry="manufacturing", region="remote")
        api.event(c, "payment_received", {"id": "PC", "amount": "300.00", "paid_on": day(-30)})
        api.invoice(c, "120300.00", issued=-20, due=10, invoice_id="C1")
        d = api.customer("R-D", name="Delta Mall", industry="retail_mall", region="local")
        api.invoice(d, "1000.00", issued=-89, due=-10, invoice_id="D1")
        api.event(d, "payment_received", {"id": "PD", "invoice_id": "D1", "amount": "1000.00", "paid_on": day(-9)})
        yield api
    finally:
        api.close()


def _ok(r, content_type="application/json"):
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith(content_type), r.headers["Content-Type"]
    return r.json() if content_type == "application/json" else r.text


# ------------------------------------------------------------------------------------------------ aging
def test_aging_today_per_customer_segment_and_total(book):
    rep = _ok(book.get("/v1/reports/aging", params={"as_of": day(0)}, role="controller"))
    assert rep["as_of"] == "2026-12-15" and rep["currency"] == "CNY"
    assert rep["policy_version"] == book.get("/healthz", role=None).json()["policy_version"]
    assert [(b["label"], b["min_days"], b["max_days"]) for b in rep["buckets"]] == [
        ("current", None, 0),
        ("short", 1, 30),
        ("medium", 31, 90),
        ("long", 91, None),
    ]
    rows = {r["customer_id"]: r for r in rep["customers"]}
    assert list(rows) == ["R-A", "R-B", "R-C"]  # R-D has nothing open; by id
    # R-A is a long-bucket customer, but each invoice counts in its own bucket; the payment went to A2
    assert rows["R-A"] == {
        "customer_id": "R-A",
        "name": "Anshan Steel 鞍钢",
        "industry": "manufacturing",
        "region": "local",
        "amount_tier": "medium",
        "aging_bucket": "long",
        "max_days_overdue": 100,
        "open_invoices": 3,
        "outstanding": "80000.00",
        "overdue": "70000.00",
        "unapplied": "0.00",
        "buckets": _buckets(current="10000.00", medium="20000.00", long="50000.00"),
    }
    # unallocated cash settled B3 (the oldest due), the credit note reduced B2; the dispute does not move money
    assert (
        rows["R-B"]["outstanding"],
        rows["R-B"]["buckets"],
        rows["R-B"]["amount_tier"],
        rows["R-B"]["aging_bucket"],
        rows["R-B"]["max_days_overdue"],
        rows["R-B"]["open_invoices"],
    ) == ("7000.00", _buckets(short="7000.00"), "small", "short", 15, 2)
    assert (
        rows["R-C"]["outstanding"],
        rows["R-C"]["overdue"],
        rows["R-C"]["buckets"],
        rows["R-C"]["amount_tier"],
        rows["R-C"]["aging_bucket"],
        rows["R-C"]["unapplied"],
    ) == ("120000.00", "0.00", _buckets(current="120000.00"), "large", "current", "0.00")

    assert rep["total"] == {
        "customers": 3,
        "outstanding": "207000.00",
        "overdue": "77000.00",
        "open_invoices": 6,
        "unapplied": "0.00",
        "buckets": _buckets("130000.00", "7000.00", "20000.00", "50000.00"),
    }
    seg = {dim: {s["key"]: s for s in rep["segments"][dim]} for dim in ("industry", "region", "amount_tier")}
    assert list(seg["amount_tier"]) == ["small", "medium", "large"]
    assert list(seg["region"]) == ["local", "remote"]
    assert seg["industry"]["manufacturing"]["customers"] == 2
    assert seg["industry"]["manufacturing"]["outstanding"] == "200000.00"
    assert seg["industry"]["manufacturing"]["buckets"] == _buckets("130000.00", "0.00", "20000.00", "50000.00")
    assert (seg["industry"]["services"]["customers"], seg["industry"]["services"]["outstanding"]) == (1, "7000.00")
    assert (seg["industry"]["retail_mall"]["customers"], seg["industry"]["retail_mall"]["outstanding"]) == (0, "0.00")
    assert {k: (v["customers"], v["outstanding"]) for k, v in seg["region"].items()} == {
        "local": (1, "80000.00"),
        "remote": (2, "127000.00"),
    }
    assert {k: (v["customers"], v["outstanding"]) for k, v in seg["amount_tier"].items()} == {
        "small": (1, "7000.00"),
        "medium": (1, "80000.00"),
        "large": (1, "120000.00"),
    }
    # every dimension adds up to the book
    for dim in seg:
        assert sum(int(v["outstanding"].replace(".", "")) for v in seg[dim].values()) == 20700000, dim


def test_aging_in_the_past_ignores_later_invoices_payments_and_credit_notes(book):
    rep = _ok(book.get("/v1/reports/aging", params={"as_of": day(-30)}, role="auditor"))
    rows = {r["customer_id"]: r for r in rep["customers"]}
    assert list(rows) == ["R-A", "R-B", "R-D"]  # C1 is issued on −20; R-C only has unapplied cash on −30
    # on −30: A1 70 days (medium), A2 10 days (short, 20,000 after the targeted payment of −50)
    assert (
        rows["R-A"]["outstanding"],
        rows["R-A"]["buckets"],
        rows["R-A"]["aging_bucket"],
        rows["R-A"]["max_days_overdue"],
    ) == ("70000.00", _buckets(short="20000.00", medium="50000.00"), "medium", 70)
    # B3 is due that very day: 0 days overdue is current; 10,000.00 is exactly the medium tier's minimum
    assert (
        rows["R-B"]["outstanding"],
        rows["R-B"]["buckets"],
        rows["R-B"]["amount_tier"],
        rows["R-B"]["aging_bucket"],
    ) == ("10000.00", _buckets(current="10000.00"), "medium", "current")
    assert (rows["R-D"]["outstanding"], rows["R-D"]["amount_tier"]) == ("1000.00", "small")
    assert rep["total"] == {
        "customers": 3,
        "outstanding": "81000.00",
        "overdue": "70000.00",
        "open_invoices": 6,
        "unapplied": "300.00",
        "buckets": _buckets("11000.00", "20000.00", "50000.00", "0.00"),
    }
    tiers = {s["key"]: (s["customers"], s["outstanding"]) for s in rep["segments"]["amount_tier"]}
    assert tiers == {"small": (1, "1000.00"), "medium": (2, "80000.00"), "large": (0, "0.00")}


def test_aging_as_of_defaults_to_today(book):
    assert _ok(book.get("/v1/reports/aging")) == _ok(book.get("/v1/reports/aging", params={"as_of": day(0)}))


def test_aging_csv(book):
    r = book.get("/v1/reports/aging", params={"as_of": day(0), "format": "csv"}, role="backoffice")
    text = _ok(r, "text/csv")
    assert r.headers["Content-Disposition"] == 'attachment; filename="aging-2026-12-15.csv"'
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        "customer_id",
        "name",
        "industry",
        "region",
        "amount_tier",
        "aging_bucket",
        "max_days_overdue",
        "open_invoices",
        "outstanding",
        "overdue",
        "bucket_current",
        "bucket_short",
        "bucket_medium",
        "bucket_long",
        "unapplied",
    ]
    assert rows[1:] == [
        [
            "R-A",
            "Anshan Steel 鞍钢",
            "manufacturing",
            "local",
            "medium",
            "long",
            "100",
            "3",
            "80000.00",
            "70000.00",
            "10000.00",
            "0.00",
            "20000.00",
            "50000.00",
            "0.00",
        ],
        [
            "R-B",
            "Beta Services",
            "services",
            "remote",
            "small",
            "short",
            "15",
            "2",
            "7000.00",
            "7000.00",
            "0.00",
            "7000.00",
            "0.00",
            "0.00",
            "0.00",
        ],
        [
            "R-C",
            "Gamma Works",
            "manufacturing",
            "remote",
            "large",
            "current",
            "0",
            "1",
            "120000.00",
            "0.00",
            "120000.00",
            "0.00",
            "0.00",
            "0.00",
            "0.00",
        ],
    ]
    # an empty book still names its columns
    empty = _ok(book.get("/v1/reports/aging", params={"as_of": "2000-01-01", "format": "csv"}), "text/csv")
    assert list(csv.reader(io.StringIO(empty))) == [rows[0]]


def test_aging_is_the_same_in_batches_of_any_size_and_holds_one_batch(book, monkeypatch):
    whole = _ok(book.get("/v1/reports/aging", params={"as_of": day(0)}))
    for size in (1, 2, 3):
        monkeypatch.setattr(store_book, "BATCH", size)
        assert _ok(book.get("/v1/reports/aging", params={"as_of": day(0)})) == whole, size
    with book.service.tx() as s:
        policy = book.service.registry.active(s)
        seen, held = [], []
        for customer, facts in store_book.iter_facts(s, policy, TODAY, batch=2):
            seen.append((customer.id, facts.fields["outstanding"]))
            held.append(sum(1 for obj in s.identity_map.values() if isinstance(obj, Customer)))
    assert seen == [("R-A", 8000000), ("R-B", 700000), ("R-C", 12000000), ("R-D", 0)]
    assert max(held) <= 2, held  # never more customers loaded than one batch


def test_typed_cases_are_the_plain_cases_validated(book):
    """api.store.ledger.load_cases gives each case twice: the plain form the trail stores (and a replay validates)
    and the typed form evaluations and reports take without re-validating. The typed form must equal what
    engine.facts.load_case makes of the plain one, dunning state and previous evaluation included."""
    book.post("/v1/sweeps", json={"as_of": day(0)}, role="controller")  # dunning states and `previous`
    with book.service.tx() as s:
        policy = book.service.registry.active(s)
        customers = s.execute(select(Customer).order_by(Customer.id)).scalars().all()
        seen = set()
        for as_of in (TODAY + dt.timedelta(days=1), TODAY, TODAY - dt.timedelta(days=30)):
            cases = load_cases(s, customers, policy.exponent, as_of)
            for c in customers:
                plain, typed = cases[c.id]
                assert plain == load_case(s, c, policy.exponent, as_of)
                assert check_case(typed, policy) == validate_case(copy.deepcopy(plain), policy), (c.id, as_of)
                seen.update(k for k in ("dunning", "previous") if plain.get(k))
            batched = store_book.typed_cases(s, customers, policy, as_of)
            assert all(batched[c.id] == cases[c.id].typed for c in customers)
    assert seen == {"dunning", "previous"}
    assert [i["id"] for i in batched["R-B"]["invoices"]] == ["B3", "B1", "B2"]
    assert batched["R-B"]["disputes"][0]["invoice_id"] == "B1" and batched["R-A"]["promises"][0]["id"] == "PRA"


# ------------------------------------------------------------------------------------------------ chart
def _svg(book, **params):
    r = book.get("/v1/reports/aging.svg", params={"as_of": day(0), **params}, role="auditor")
    text = _ok(r, "image/svg+xml")
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == f"{SVG}svg"
    return text, root


def test_aging_chart_is_well_formed_and_shows_the_totals(book):
    text, root = _svg(book)
    assert int(root.get("width")) == 900 and int(root.get("height")) > 300
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "Receivables aging as of 2026-12-15" in texts
    assert any("Total outstanding CNY 207,000.00" in t and "3 customers" in t for t in texts)
    bucket_totals = {
        t.get("data-bucket"): "".join(t.itertext()) for t in root.iter(f"{SVG}text") if t.get("class") == "bucket-total"
    }
    assert bucket_totals == {
        "current": "130,000.00  (62.8 %)",
        "short": "7,000.00  (3.4 %)",
        "medium": "20,000.00  (9.7 %)",
        "long": "50,000.00  (24.2 %)",
    }
    bar_totals = ["".join(t.itertext()) for t in root.iter(f"{SVG}text") if t.get("class") == "bar-total"]
    assert bar_totals == ["207,000.00", "7,000.00", "80,000.00", "120,000.00"]  # book, small, medium, large
    names = [t for t in texts if t in ("All customers", "small", "medium", "large")]
    assert names[-4:] == ["All customers", "small", "medium", "large"]
    # the book's bar: one rectangle per non-empty bucket, in bucket order, widths in proportion
    fills = {"current": "#3a9d5d", "short": "#f0b429", "medium": "#ef7d22", "long": "#d64541"}
    book_bar = [
        r
        for r in root.iter(f"{SVG}rect")
        if r.find(f"{SVG}title") is not None and r.find(f"{SVG}title").text.startswith("All customers")
    ]
    assert [r.get("fill") for r in book_bar] == [fills[k] for k in LABELS]
    widths = [float(r.get("width")) for r in book_bar]
    assert widths[0] / widths[3] == pytest.approx(130000 / 50000, rel=0.01)
    # self-contained: no script, no link to anything
    assert (
        "<script" not in text
        and "href" not in text
        and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )


def test_aging_chart_by_industry_shows_only_segments_with_open_balances(book):
    _, root = _svg(book, by="industry")
    bar_totals = ["".join(t.itertext()) for t in root.iter(f"{SVG}text") if t.get("class") == "bar-total"]
    assert bar_totals == ["207,000.00", "200,000.00", "7,000.00"]  # book, manufacturing, services
    texts = {"".join(t.itertext()) for t in root.iter(f"{SVG}text")}
    assert {"manufacturing", "services", "by industry"} <= texts and "retail_mall" not in texts


def test_aging_chart_of_an_empty_book(book):
    _, root = _svg(book, as_of="2000-01-01")
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert any("Total outstanding CNY 0.00 · 0 customers" in t for t in texts)
    assert [t for t in texts if t.startswith("0.00")] == ["0.00  (–)"] * 4
    assert "no open invoices" in texts and not [t for t in root.iter(f"{SVG}text") if t.get("class") == "bar-total"]
    assert not [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]  # no bars


# ------------------------------------------------------------------------------------------------ overdue
def test_overdue_most_overdue_first_with_pause_reasons(book):
    rep = _ok(book.get("/v1/reports/overdue", params={"as_of": day(0)}, role="backoffice"))
    got = [
        (r["invoice_id"], r["customer_id"], r["days_overdue"], r["open_balance"], r["paused"], r["aging_bucket"])
        for r in rep["invoices"]
    ]
    assert got == [
        ("A1", "R-A", 100, "50000.00", None, "long"),
        ("A2", "R-A", 40, "20000.00", "promise", "medium"),
        ("B1", "R-B", 15, "5000.00", "dispute", "short"),
        ("B2", "R-B", 5, "2000.00", None, "short"),
    ]
    b1 = rep["invoices"][2]
    assert (b1["customer_name"], b1["amount"], b1["due_on"], b1["issued_on"], b1["disputed"]) == (
        "Beta Services",
        "5000.00",
        day(-15),
        day(-45),
        True,
    )
    assert rep["total"] == {"invoices": 4, "open_balance": "77000.00", "paused": 2}
    assert rep["truncated"] is False


def test_overdue_limit_keeps_the_most_overdue_and_counts_all(book):
    rep = _ok(book.get("/v1/reports/overdue", params={"as_of": day(0), "limit": 2}))
    assert [r["invoice_id"] for r in rep["invoices"]] == ["A1", "A2"]
    assert rep["truncated"] is True and rep["limit"] == 2
    assert rep["total"] == {"invoices": 4, "open_balance": "77000.00", "paused": 2}
    # on −30 only A1 (70 days) and A2 (10 days) were overdue, and nothing was paused yet
    past = _ok(book.get("/v1/reports/overdue", params={"as_of": day(-30)}))
    assert [(r["invoice_id"], r["days_overdue"], r["paused"]) for r in past["invoices"]] == [
        ("A1", 70, None),
        ("A2", 10, None),
    ]


# ------------------------------------------------------------------------------------------------ DSO
@pytest.mark.parametrize(
    "days, sales, invoices, dso",
    [
        (90, "179300.00", 6, "103.90"),  # A2 A3 B1 B2 C1 and D1 (issued −89); not A1 (−130) nor B3 (−90)
        (89, "178300.00", 5, "103.33"),  # D1 (−89) falls out: 207000 × 89 / 178300 = 103.325…
        (30, "130300.00", 2, "47.66"),  # A3 C1: 207000 × 30 / 130300 = 47.659…
    ],
)
def test_dso(book, days, sales, invoices, dso):
    rep = _ok(book.get("/v1/reports/dso", params={"as_of": day(0), "days": days}, role="controller"))
    assert (rep["receivables"], rep["credit_sales"], rep["credit_sales_invoices"], rep["dso_days"]) == (
        "207000.00",
        sales,
        invoices,
        dso,
    )
    assert rep["window"] == {"from": day(-(days - 1)), "to": day(0)}
    assert rep["formula"] == "DSO = receivables at as_of / credit sales in the last N days × N"
    assert rep["unapplied"] == "0.00" and rep["days"] == days


def test_dso_defaults_and_no_sales(book):
    rep = _ok(book.get("/v1/reports/dso"))
    assert (rep["as_of"], rep["days"], rep["dso_days"]) == ("2026-12-15", 90, "103.90")
    none = _ok(book.get("/v1/reports/dso", params={"as_of": day(-200)}))
    assert (none["receivables"], none["credit_sales"], none["dso_days"]) == ("0.00", "0.00", None)


# ------------------------------------------------------------------------------------------------ collections
def _insert_actions(book):
    rows = [  # type, channel, status, outcome, due, amount (minor)
        ("payment_reminder", "email", "open", None, "2026-01-05", 10000),
        ("payment_reminder", "email", "done", "sent", "2026-01-10", 20000),
        ("phone_call", "phone", "done", "promised", "2026-01-10", 30000),
        ("phone_call", "phone", "done", "no_answer", "2026-01-20", 40000),
        ("phone_call", "sms", "done", "promised", "2026-01-20", 50000),
        ("visit", "visit", "cancelled", None, "2026-01-04", 60000),  # the day before the period
        ("visit", "visit", "open", None, "2026-01-21", 70000),  # the day after it
    ]
    with book.service.tx() as s:
        objs = [
            Action(
                customer_id="R-A",
                invoice_id="A1",
                type=t,
                channel=ch,
                owner="collector-1",
                stage=n,
                due_on=dt.date.fromisoformat(due),
                amount_minor=amount,
                status=st,
                outcome=oc,
                decision_id="0" * 32,
            )
            for n, (t, ch, st, oc, due, amount) in enumerate(rows)
        ]
        s.add_all(objs)
        s.flush()
        return objs[0].id


def test_collections_by_type_channel_and_outcome(book):
    first = _insert_actions(book)
    period = {"since": "2026-01-05", "until": "2026-01-20"}
    rep = _ok(book.get("/v1/reports/collections", params=period, role="auditor"))
    assert (rep["since"], rep["until"], rep["date_field"]) == ("2026-01-05", "2026-01-20", "due_on")
    assert rep["total"] == {"key": "all", "actions": 5, "amount": "1500.00", "by_status": {"done": 4, "open": 1}}
    assert [(e["key"], e["actions"], e["amount"], e["by_status"]) for e in rep["by_type"]] == [
        ("payment_reminder", 2, "300.00", {"open": 1, "done": 1}),
        ("phone_call", 3, "1200.00", {"done": 3}),
    ]
    assert [(e["key"], e["actions"], e["amount"]) for e in rep["by_channel"]] == [
        ("email", 2, "300.00"),
        ("phone", 2, "700.00"),
        ("sms", 1, "500.00"),
    ]
    assert [(e["key"], e["actions"], e["amount"]) for e in rep["by_outcome"]] == [
        ("no_answer", 1, "400.00"),
        ("promised", 2, "800.00"),
        ("sent", 1, "200.00"),
        (None, 1, "100.00"),
    ]
    assert len(rep["rows"]) == 5 and sum(r["actions"] for r in rep["rows"]) == 5

    # recording an outcome through the API moves the action into its outcome and channel
    r = book.post(f"/v1/actions/{first}/complete", {"outcome": "paid", "channel": "phone"}, role="backoffice")
    assert r.status_code == 200, r.text
    after = _ok(book.get("/v1/reports/collections", params=period))
    assert after["total"]["by_status"] == {"done": 5}
    assert [(e["key"], e["actions"], e["amount"]) for e in after["by_outcome"]] == [
        ("no_answer", 1, "400.00"),
        ("paid", 1, "100.00"),
        ("promised", 2, "800.00"),
        ("sent", 1, "200.00"),
    ]
    assert [(e["key"], e["actions"]) for e in after["by_channel"]] == [("email", 1), ("phone", 3), ("sms", 1)]

    one_day = _ok(book.get("/v1/reports/collections", params={"since": "2026-01-21", "until": "2026-01-21"}))
    assert [(e["key"], e["actions"], e["amount"]) for e in one_day["by_type"]] == [("visit", 1, "700.00")]
    # no parameters: the 30 days up to today
    assert _ok(book.get("/v1/reports/collections")) == _ok(
        book.get("/v1/reports/collections", params={"since": day(-29), "until": day(0)})
    )


# ------------------------------------------------------------------------------------------------ statements
def _statement(book, cid, start, end, role="controller", **params):
    return _ok(book.get(f"/v1/customers/{cid}/statement", params={"from": start, "to": end, **params}, role=role))


def test_statement_runs_from_opening_to_closing_balance(book):
    st = _statement(book, "R-B", day(-40), day(-1))
    assert st["customer"] == {"id": "R-B", "name": "Beta Services", "industry": "services", "region": "remote"}
    assert st["opening_balance"] == "7000.00"  # B3 2,000 + B1 5,000 issued before −40
    assert [
        (ln["date"], ln["type"], ln["reference"], ln["invoice_id"], ln["debit"], ln["credit"], ln["balance"])
        for ln in st["lines"]
    ] == [
        (day(-35), "invoice", "B2", None, "3000.00", "0.00", "10000.00"),
        (day(-20), "payment", "PB", None, "0.00", "2000.00", "8000.00"),
        (day(-3), "credit_note", "CNB", "B2", "0.00", "1000.00", "7000.00"),
    ]
    assert st["lines"][0]["due_on"] == day(-5)
    assert st["totals"] == {"invoices": "3000.00", "credit_notes": "1000.00", "payments": "2000.00"}
    assert st["closing_balance"] == "7000.00"  # 7000 + 3000 − 1000 − 2000
    # open at −1: B3 was settled by the unallocated cash (oldest due first); B1 disputed since −10
    assert [
        (o["invoice_id"], o["open_balance"], o["days_overdue"], o["aging_bucket"], o["paused"])
        for o in st["open_invoices"]
    ] == [("B1", "5000.00", 14, "short", "dispute"), ("B2", "2000.00", 4, "short", None)]
    assert st["reconciliation"]["open_invoices_total"] == "7000.00"
    assert (st["reconciliation"]["unapplied"], st["reconciliation"]["difference"]) == ("0.00", "0.00")


def test_statement_period_includes_both_end_days(book):
    st = _statement(book, "R-B", day(-35), day(-20))
    assert st["opening_balance"] == "7000.00"
    assert [ln["reference"] for ln in st["lines"]] == ["B2", "PB"]  # issued on `from`, paid on `to`
    assert st["closing_balance"] == "8000.00"
    assert [(o["invoice_id"], o["open_balance"], o["days_overdue"]) for o in st["open_invoices"]] == [
        ("B1", "5000.00", -5),
        ("B2", "3000.00", -15),
    ]  # B3 settled that day; nothing due yet


def test_statement_with_cash_paid_before_its_invoice_reconciles(book):
    st = _statement(book, "R-C", day(-30), day(0))
    assert st["opening_balance"] == "0.00"
    assert [(ln["type"], ln["reference"], ln["balance"]) for ln in st["lines"]] == [
        ("payment", "PC", "-300.00"),
        ("invoice", "C1", "120000.00"),
    ]
    assert st["closing_balance"] == "120000.00"
    # the 300 paid before C1 was applied to it (issue 11): the open items and the transactions agree
    assert st["reconciliation"] == {
        "open_invoices_total": "120000.00",
        "unapplied": "0.00",
        "difference": "0.00",
        "rule": "closing_balance = open invoices at `to` − unapplied payments and credits",
    }
    before = _statement(book, "R-C", day(-30), day(-25))  # before C1 existed, the cash was unapplied
    assert (before["closing_balance"], before["reconciliation"]["unapplied"]) == ("-300.00", "300.00")


@pytest.mark.parametrize("as_of", [day(0), day(-30), day(-60)])
def test_statements_reconcile_with_the_aging_report(book, as_of):
    """Closing balance (transactions) = outstanding − unapplied (open items), customer by customer."""
    aging = {r["customer_id"]: r for r in _ok(book.get("/v1/reports/aging", params={"as_of": as_of}))["customers"]}
    for cid in ("R-A", "R-B", "R-C", "R-D"):
        st = _statement(book, cid, "2020-01-01", as_of)
        assert st["opening_balance"] == "0.00"
        closing = int(st["closing_balance"].replace(".", ""))
        opening = int(st["opening_balance"].replace(".", ""))
        t = {k: int(v.replace(".", "")) for k, v in st["totals"].items()}
        assert closing == opening + t["invoices"] - t["credit_notes"] - t["payments"]
        assert st["lines"][-1]["balance"] == st["closing_balance"] if st["lines"] else closing == 0
        row = aging.get(cid)
        outstanding = int(row["outstanding"].replace(".", "")) if row else 0
        assert closing == outstanding - int(st["reconciliation"]["unapplied"].replace(".", "")), cid
        assert st["reconciliation"]["difference"] == "0.00"


def test_statement_csv(book):
    r = book.get(
        "/v1/customers/R-A/statement", params={"from": day(-60), "to": day(0), "format": "csv"}, role="backoffice"
    )
    rows = list(csv.reader(io.StringIO(_ok(r, "text/csv"))))
    assert r.headers["Content-Disposition"].startswith("attachment")
    assert rows == [
        ["date", "type", "reference", "invoice_id", "due_on", "debit", "credit", "balance"],
        [day(-60), "opening_balance", "", "", "", "0.00", "0.00", "90000.00"],
        [day(-50), "payment", "PA", "A2", "", "0.00", "20000.00", "70000.00"],
        [day(-10), "invoice", "A3", "", day(20), "10000.00", "0.00", "80000.00"],
        [day(0), "closing_balance", "", "", "", "10000.00", "20000.00", "80000.00"],
    ]


def test_statement_defaults_to_the_current_month(book):
    st = _statement(book, "R-A", None, None)
    assert (st["from"], st["to"]) == ("2026-12-01", "2026-12-15")
    assert st["opening_balance"] == "70000.00" and [ln["reference"] for ln in st["lines"]] == ["A3"]


# ------------------------------------------------------------------------------------------------ access, errors
REPORT_PATHS = [
    "/v1/reports/aging",
    "/v1/reports/aging?format=csv",
    "/v1/reports/aging.svg",
    "/v1/reports/overdue",
    "/v1/reports/dso",
    "/v1/reports/collections",
    "/v1/customers/R-A/statement",
    "/v1/customers/R-A/statement?format=csv",
]


@pytest.mark.parametrize("path", REPORT_PATHS)
def test_roles(book, path):
    for role in ("backoffice", "controller", "auditor", "admin"):
        assert book.get(path, role=role).status_code == 200, (role, path)
    r = book.get(path, role="sales")
    assert r.status_code == 403
    assert r.json() == {"code": "E_FORBIDDEN", "errors": {}, "message": "role 'sales' may not reports read"}
    assert book.get(path, role=None).status_code == 401


BAD = [
    ("/v1/reports/aging?as_of=2026-02-30", "as_of"),
    ("/v1/reports/aging?as_of=0001-01-01", "as_of"),
    ("/v1/reports/aging?format=xlsx", "format"),
    ("/v1/reports/aging?asof=2026-01-01", "asof"),
    ("/v1/reports/aging.svg?by=size", "by"),
    ("/v1/reports/aging.svg?as_of=yesterday", "as_of"),
    ("/v1/reports/overdue?limit=0", "limit"),
    ("/v1/reports/overdue?limit=ten", "limit"),
    ("/v1/reports/overdue?limit=10001", "limit"),
    ("/v1/reports/dso?days=0", "days"),
    ("/v1/reports/dso?days=3651", "days"),
    ("/v1/reports/dso?days=1.5", "days"),
    ("/v1/reports/collections?since=2026-02-01&until=2026-01-31", "since"),
    ("/v1/reports/collections?since=2999-01-01", "since"),  # after the default `until` (today)
    ("/v1/reports/collections?until=2026-13-01", "until"),
    ("/v1/customers/R-A/statement?from=2026-12-02&to=2026-12-01", "from"),
    ("/v1/customers/R-A/statement?from=2026-12-20", "from"),  # after the default `to` (today)
    ("/v1/customers/R-A/statement?to=2026-1-1x", "to"),
    ("/v1/customers/R-A/statement?format=pdf", "format"),
]


@pytest.mark.parametrize("path, field", BAD, ids=[b[0].split("/v1/")[1] for b in BAD])
def test_bad_parameters_are_422(book, path, field):
    r = book.get(path, role="controller")
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"code", "message", "errors"} and body["code"] == "E_INPUT_INVALID"
    assert list(body["errors"]) == [field] and all(isinstance(m, str) for m in body["errors"][field])


def test_statement_of_an_unknown_customer_is_404(book):
    r = book.get("/v1/customers/R-nobody/statement", role="controller")
    assert r.status_code == 404
    assert r.json() == {"code": "E_NOT_FOUND", "errors": {}, "message": "customer 'R-nobody' not found"}
