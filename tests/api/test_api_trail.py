"""The decision trail: filters, cursor pagination, CSV / JSON Lines export, one record,
tamper detection by /v1/audit/verify, and replay of 1,000 decisions."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import delete, select, update

from api.store.tables import DecisionRecord
from api.store.trail import record_hash, _values
from api_harness import NOW, TODAY, Api, day, uid


def _ids(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [d["id"] for d in r.json()["decisions"]]


def _walk(api, role="auditor", limit=7, **params) -> tuple[list[str], int]:
    """Follow next_cursor to the end; returns every id in order and the number of pages."""
    ids, pages, cursor = [], 0, None
    while True:
        q = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = api.get("/v1/decisions", role=role, params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        assert len(body["decisions"]) <= limit
        ids += [d["id"] for d in body["decisions"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages
        assert len(body["decisions"]) == limit
        assert pages < 10_000


@pytest.fixture
def history(api):
    """One customer's decisions of every kind on known dates; returns (customer, {label: decision id})."""
    cid = api.customer(credit_score=65)  # medium: limit 200,000
    ids = {}
    r = api.event(
        cid,
        "invoice_issued",
        {"id": uid("INV"), "amount": "1000.00", "currency": "CNY", "issued_on": day(-30), "due_on": day(0)},
        as_of=day(-20),
    )
    ids["event@-20"] = r.json()["decision_id"]
    for label, amount, as_of in (
        ("approve@-10", "100.00", -10),
        ("reject@-5", "999999.00", -5),
        ("approve@0", "200.00", 0),
    ):
        # another day than today is a what-if: controller keys only, labelled credit_check_what_if (issue 10)
        r = api.credit_check(cid, amount, as_of=day(as_of), role="sales" if as_of == 0 else "controller")
        assert r.json()["outcome"] == label.split("@")[0], r.text
        ids[label] = r.json()["decision_id"]
    r = api.post(f"/v1/customers/{cid}/evaluate", {"as_of": day(-3)}, role="backoffice")
    ids["evaluate@-3"] = r.json()["decision_id"]
    r = api.post(
        "/v1/evaluate",
        {
            "customer": {
                "id": cid,
                "type": "enterprise",
                "industry": "trading",
                "region": "local",
                "size": "large",
                "since": "2015-01-01",
            },
            "as_of": day(-1),
            "order_amount": "10.00",
        },
        role="backoffice",
    )
    ids["stateless@-1"] = r.json()["decision_id"]
    return cid, ids


def test_filters(api, history):
    cid, ids = history
    q = lambda **p: set(_ids(api.get("/v1/decisions", role="auditor", params={"customer": cid, **p})))  # noqa: E731
    assert q() == set(ids.values())
    assert q(kind="credit_check") == {ids["approve@0"]}
    assert q(kind="credit_check_what_if") == {ids["approve@-10"], ids["reject@-5"]}
    assert q(kind="event") == {ids["event@-20"]}
    assert q(kind="evaluate_stateless") == {ids["stateless@-1"]}
    assert q(outcome="reject") == {ids["reject@-5"]}
    assert q(outcome="approve") == {ids["approve@-10"], ids["approve@0"], ids["stateless@-1"]}
    assert q(kind="credit_check", outcome="approve") == {ids["approve@0"]}
    assert q(kind="credit_check_what_if", outcome="approve") == {ids["approve@-10"]}
    assert q(since=day(-10), until=day(-3)) == {ids["approve@-10"], ids["reject@-5"], ids["evaluate@-3"]}
    assert q(since=day(-1)) == {ids["stateless@-1"], ids["approve@0"]}
    assert q(until=day(-20)) == {ids["event@-20"]}
    assert q(since=day(1)) == set()
    assert q(outcome="refer") == set()
    # another customer's decisions never leak in
    other = api.customer()
    api.credit_check(other, "1.00")
    assert q() == set(ids.values())
    # each record carries what it was filtered on
    for d in api.get("/v1/decisions", role="auditor", params={"customer": cid}).json()["decisions"]:
        label = next(k for k, v in ids.items() if v == d["id"])
        assert d["as_of"] == day(int(label.split("@")[1]))
        assert d["subject"] in (cid, f"stateless:{cid}")


def test_one_decision(api, history):
    cid, ids = history
    r = api.get(f"/v1/decisions/{ids['reject@-5']}", role="auditor")
    assert r.status_code == 200
    d = r.json()
    assert set(d) == {
        "id",
        "kind",
        "subject",
        "seq",
        "actor",
        "request_id",
        "as_of",
        "policy_version",
        "outcome",
        "created_at",
        "hash",
        "prev_hash",
        "decision",
        "facts",
    }
    assert (d["id"], d["kind"], d["subject"], d["actor"], d["outcome"], d["as_of"]) == (
        ids["reject@-5"],
        "credit_check_what_if",
        cid,
        "test-controller",
        "reject",
        day(-5),
    )
    assert d["created_at"] == NOW.isoformat() + "Z"
    assert d["facts"]["order"] == {"amount": "999999.00", "order_id": d["facts"]["order"]["order_id"]}
    assert d["facts"]["case"]["customer"]["id"] == cid and d["facts"]["as_of"] == day(-5)
    assert d["decision"]["credit"]["check"]["outcome"] == "reject"
    assert d["policy_version"] == d["decision"]["policy_version"]
    # the customer's chain: seq 1, 2, … each pointing at the previous hash
    chain = sorted(
        (api.get(f"/v1/decisions/{i}", role="auditor").json() for k, i in ids.items() if k != "stateless@-1"),
        key=lambda x: x["seq"],
    )
    assert [c["seq"] for c in chain] == list(range(1, len(chain) + 1))
    assert chain[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(chain, chain[1:]))


def test_cursor_pagination_walks_everything_once(api, history):
    cid, ids = history
    for _ in range(17):
        api.credit_check(cid, "1.00")
    expected = _ids(api.get("/v1/decisions", role="auditor", params={"customer": cid, "limit": 1000}))
    assert len(expected) == 6 + 17
    for limit in (1, 4, 7, 23, 24):
        walked, pages = _walk(api, customer=cid, limit=limit)
        assert walked == expected, limit
        assert pages == -(-len(expected) // limit)  # no empty last page
    # the whole trail, unfiltered, against the table itself
    walked, _ = _walk(api, limit=97)
    with api.service.tx() as s:
        everything = s.execute(select(DecisionRecord.id)).scalars().all()
    assert len(walked) == len(set(walked)) and set(walked) == set(everything)


def test_cursor_pagination_with_a_moving_clock(backend):
    """Records created at different and at equal times: both branches of the (created_at, id) cursor."""
    ticks = iter(range(10_000))

    def clock():  # three records per second
        return NOW + dt.timedelta(seconds=next(ticks) // 3)

    api = Api(backend.name, backend.new_url(), clock=clock)
    try:
        cid = api.customer()
        for _ in range(20):
            api.credit_check(cid, "1.00")
        listed = api.get("/v1/decisions", role="auditor", params={"limit": 1000}).json()["decisions"]
        keys = [(d["created_at"], d["id"]) for d in listed]
        assert keys == sorted(keys) and len(set(d["created_at"] for d in listed)) > 5
        for limit in (1, 2, 3, 5):
            walked, _ = _walk(api, limit=limit)
            assert walked == [d["id"] for d in listed]
    finally:
        api.close()


def test_exports(api, history):
    cid, ids = history
    listed = api.get("/v1/decisions", role="auditor", params={"customer": cid}).json()["decisions"]
    r = api.get("/v1/decisions", role="auditor", params={"customer": cid, "format": "jsonl"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/x-ndjson")
    lines = r.text.splitlines()
    assert [json.loads(line) for line in lines] == listed

    r = api.get("/v1/decisions", role="auditor", params={"customer": cid, "format": "csv"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["id", "created_at", "kind", "subject", "actor", "as_of", "policy_version", "outcome", "hash"]
    assert rows[1:] == [
        [
            d["id"],
            d["created_at"],
            d["kind"],
            d["subject"],
            d["actor"],
            d["as_of"],
            d["policy_version"],
            d["outcome"] or "",
            d["hash"],
        ]
        for d in listed
    ]

    # exports page with the same cursor (X-Next-Cursor header)
    for fmt in ("csv", "jsonl"):
        seen, cursor = [], None
        while True:
            params = {"customer": cid, "format": fmt, "limit": 4, **({"cursor": cursor} if cursor else {})}
            r = api.get("/v1/decisions", role="auditor", params=params)
            if fmt == "csv":
                seen += [row[0] for row in list(csv.reader(io.StringIO(r.text)))[1:]]
            else:
                seen += [json.loads(line)["id"] for line in r.text.splitlines()]
            cursor = r.headers.get("X-Next-Cursor")
            if not cursor:
                break
        assert seen == [d["id"] for d in listed], fmt


# ------------------------------------------------------------------------------------------ tampering
def _verify(api) -> dict:
    r = api.get("/v1/audit/verify", role="auditor")
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def chains(fresh):
    """Two customers with five decisions each; returns (api, {customer: [records by seq]})."""
    out = {}
    for name in ("A", "B"):
        cid = fresh.customer(f"{name}-{uid('C')}")
        fresh.invoice(cid, "1000.00", due=-10)
        for amount in ("10.00", "20.00", "30.00", "40.00"):
            fresh.credit_check(cid, amount)
        with fresh.service.tx() as s:
            out[cid] = (
                s.execute(select(DecisionRecord).where(DecisionRecord.subject == cid).order_by(DecisionRecord.seq))
                .scalars()
                .all()
            )
        assert [r.seq for r in out[cid]] == [1, 2, 3, 4, 5]
    v = _verify(fresh)
    assert v["ok"] and v["records_checked"] == 10 and v["chains"] == 2 and v["first_broken"] is None
    return fresh, out


def _set(api, rec_id, **values):
    with api.service.tx() as s:
        s.execute(update(DecisionRecord).where(DecisionRecord.id == rec_id).values(**values))


def test_an_edited_result_is_named(chains):
    api, recs = chains
    a = sorted(recs)[0]
    second, fourth = recs[a][1], recs[a][3]
    forged = json.loads(second.result)
    forged["credit"]["limit"] = "9999999.00"
    _set(api, second.id, result=json.dumps(forged, sort_keys=True, separators=(",", ":")))
    _set(api, fourth.id, result=fourth.result.replace('"approve"', '"reject"'))
    v = _verify(api)
    assert v["ok"] is False
    assert v["first_broken"] == {
        "subject": a,
        "decision_id": second.id,
        "seq": 2,
        "problem": "content does not match its hash (the record was edited)",
    }
    assert [b["subject"] for b in v["broken"]] == [a]  # the other chain is intact
    _set(api, second.id, result=second.result)
    v = _verify(api)
    assert v["first_broken"]["decision_id"] == fourth.id and v["first_broken"]["seq"] == 4
    _set(api, fourth.id, result=fourth.result)
    assert _verify(api)["ok"] is True


@pytest.mark.parametrize("column", ["outcome", "as_of", "facts", "actor", "policy_version"])
def test_any_edited_column_is_detected(chains, column):
    api, recs = chains
    b = sorted(recs)[1]
    rec = recs[b][2]
    new = {
        "outcome": "reject",
        "as_of": TODAY - dt.timedelta(days=400),
        "facts": rec.facts.replace("1000.00", "1.00"),
        "actor": "someone-else",
        "policy_version": "f" * 64,
    }[column]
    assert new != getattr(rec, column)
    _set(api, rec.id, **{column: new})
    v = _verify(api)
    assert v["first_broken"]["decision_id"] == rec.id and v["first_broken"]["subject"] == b


def test_a_rehashed_edit_is_still_caught(chains):
    """Recomputing the edited record's own hash breaks the link to the next record instead."""
    api, recs = chains
    a = sorted(recs)[0]
    rec, nxt = recs[a][2], recs[a][3]
    with api.service.tx() as s:
        row = s.get(DecisionRecord, rec.id)
        row.result = row.result.replace('"approve"', '"reject"')
        row.hash = record_hash(row.prev_hash, _values(row))
    v = _verify(api)
    assert v["first_broken"] == {
        "subject": a,
        "decision_id": nxt.id,
        "seq": 4,
        "problem": "prev_hash does not match the previous record",
    }


def test_a_deleted_record_is_named(chains):
    api, recs = chains
    b = sorted(recs)[1]
    with api.service.tx() as s:
        s.execute(delete(DecisionRecord).where(DecisionRecord.id == recs[b][2].id))
    v = _verify(api)
    assert v["ok"] is False
    assert v["first_broken"] == {
        "subject": b,
        "decision_id": recs[b][3].id,
        "seq": 4,
        "problem": "expected seq 3, found 4 (a record is missing)",
    }
    assert v["records_checked"] == 9


def test_a_deleted_last_record_is_detected(chains):
    api, recs = chains
    a = sorted(recs)[0]
    with api.service.tx() as s:
        s.execute(delete(DecisionRecord).where(DecisionRecord.id == recs[a][4].id))
    v = _verify(api)
    assert v["first_broken"] == {
        "subject": a,
        "decision_id": None,
        "seq": 5,
        "problem": "the chain ends before its recorded head (records were deleted)",
    }


def test_replay_notices_an_edited_result(chains):
    api, recs = chains
    a = sorted(recs)[0]
    rec = recs[a][1]
    assert api.post(f"/v1/decisions/{rec.id}/replay", role="auditor").json() == {
        "decision_id": rec.id,
        "policy_version": rec.policy_version,
        "identical": True,
        "tampered": False,
    }
    forged = json.loads(rec.result)
    forged["score"]["value"] = 7
    _set(api, rec.id, result=json.dumps(forged, sort_keys=True, separators=(",", ":")))
    r = api.post(f"/v1/decisions/{rec.id}/replay", role="auditor").json()
    assert r["identical"] is False and r["differences"] == ["score"]
    assert r["replayed"]["score"]["value"] == json.loads(rec.result)["score"]["value"]
    assert r["tampered"] is True and r["problem"] == "content does not match its hash (the record was edited)"
    assert r["diff"] == [{"path": "score.value", "recorded": 7, "replayed": json.loads(rec.result)["score"]["value"]}]


def test_replay_of_an_edited_row_whose_result_still_replays_is_tampered_not_identical(chains):
    """An edit that leaves the result as it was (the actor, the outcome column) replays byte-identically:
    the record's own hash says it was edited, so the answer is `tampered`, never `identical`."""
    api, recs = chains
    rec = recs[sorted(recs)[1]][1]
    _set(api, rec.id, actor="someone-else")
    r = api.post(f"/v1/decisions/{rec.id}/replay", role="auditor").json()
    assert r == {
        "decision_id": rec.id,
        "policy_version": rec.policy_version,
        "identical": False,
        "tampered": True,
        "problem": "content does not match its hash (the record was edited)",
    }


def test_replay_of_a_rehashed_edit_is_tampered(chains):
    api, recs = chains
    rec = recs[sorted(recs)[0]][2]
    with api.service.tx() as s:
        row = s.get(DecisionRecord, rec.id)
        row.actor = "someone-else"
        row.hash = record_hash(row.prev_hash, _values(row))
    r = api.post(f"/v1/decisions/{rec.id}/replay", role="auditor").json()
    assert r["tampered"] is True and r["identical"] is False
    assert r["problem"] == "the next record does not link to this record's hash (it was edited and rehashed)"


# ------------------------------------------------------------------------------------------ replay
INDUSTRIES = ["manufacturing", "services", "engineering_project", "manufacturer", "retail_mall", "trading", "other"]


def _money(rng, low, high):
    """A decimal string, now and then a JSON integer (a JSON number with a fraction is a float: refused)."""
    cents = rng.randrange(low * 100, high * 100)
    text = f"{cents // 100}.{cents % 100:02d}"
    roll = rng.random()
    return text if roll < 0.9 else cents // 100


def random_case(rng: random.Random, n: int) -> dict:
    """A varied, valid customer case for POST /v1/evaluate."""
    as_of = TODAY - dt.timedelta(days=rng.randrange(0, 400))

    def d(offset):
        return (as_of + dt.timedelta(days=offset)).isoformat()

    customer = {
        "id": f"R-{n % 40:02d}",
        "type": rng.choice(["individual", "enterprise"]),
        "industry": rng.choice(INDUSTRIES),
        "region": rng.choice(["local", "remote"]),
        "size": rng.choice(["large", "medium", "small"]),
        "since": d(-rng.randrange(1, 4000)),
    }
    if rng.random() < 0.4:
        customer["credit_score"] = rng.randrange(0, 101)
    if rng.random() < 0.5:
        customer["external_rating"] = rng.randrange(0, 101)
    if rng.random() < 0.3:
        customer["arrears_reason"] = rng.choice(["none", "operating_pressure", "cash_flow_problem", "malicious_delay"])
    if rng.random() < 0.3:
        customer["collector"] = "王芳"
    if rng.random() < 0.2:
        customer["deal_type"] = rng.choice(["standard", "project"])
    case = {
        "customer": customer,
        "invoices": [],
        "payments": [],
        "credit_notes": [],
        "promises": [],
        "disputes": [],
        "as_of": as_of.isoformat(),
    }
    for i in range(rng.randrange(0, 6)):
        issued = -rng.randrange(0, 200)
        inv = {
            "id": f"I{i}",
            "amount": _money(rng, 100, 300_000),
            "currency": "CNY",
            "issued_on": d(issued),
            "due_on": d(issued + rng.choice([0, 15, 30, 60, 90])),
        }
        case["invoices"].append(inv)
        roll = rng.random()
        if roll < 0.4:
            case["payments"].append(
                {
                    "invoice_id": inv["id"] if rng.random() < 0.7 else None,
                    "amount": _money(rng, 1, 300_000),
                    "paid_on": d(rng.randrange(issued, 1)),
                }
            )
        elif roll < 0.5:
            case["credit_notes"].append(
                {"invoice_id": inv["id"], "amount": _money(rng, 1, 5_000), "issued_on": d(rng.randrange(issued, 1))}
            )
        elif roll < 0.6:
            made = rng.randrange(issued, 1)
            case["promises"].append(
                {
                    "invoice_id": inv["id"],
                    "amount": _money(rng, 1, 50_000),
                    "made_on": d(made),
                    "promised_on": d(made + rng.randrange(0, 20)),
                }
            )
        elif roll < 0.7:
            case["disputes"].append(
                {"invoice_id": inv["id"], "opened_on": d(rng.randrange(issued, 1)), "reason": "quality"}
            )
    if rng.random() < 0.5:
        case["order_amount"] = _money(rng, 1, 400_000)
    return case


def test_replay_of_a_thousand_decisions_is_identical(fresh):
    api = fresh
    rng = random.Random(20261215)

    def evaluate(n):
        r = api.post("/v1/evaluate", random_case(rng_for[n], n), role="backoffice")
        assert r.status_code == 201, r.text
        return r.json()["decision_id"]

    rng_for = [random.Random(rng.random()) for _ in range(1000)]
    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(evaluate, range(1000)))
    # and some ledger decisions of the other kinds
    cid = api.customer()
    api.invoice(cid, "5000.00", due=-40)
    api.event(cid, "payment_received", {"amount": "1234.56", "paid_on": day(-2)})
    api.credit_check(cid, "100.00", reserve=True)
    api.post(f"/v1/customers/{cid}/evaluate", {}, role="backoffice")
    with api.service.tx() as s:
        every = s.execute(select(DecisionRecord.id)).scalars().all()
    assert len(every) == 1004 and set(made) <= set(every)
    outcomes = {api.get(f"/v1/decisions/{i}", role="auditor").json()["outcome"] for i in made[:200]}
    assert {"approve", "reject", None} <= outcomes  # the cases are varied

    def replay(decision_id):
        r = api.post(f"/v1/decisions/{decision_id}/replay", role="auditor")
        assert r.status_code == 200, r.text
        return r.json()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(replay, every))
    not_identical = [r for r in results if r["identical"] is not True]
    assert not not_identical, not_identical[:3]
    assert sorted(r["decision_id"] for r in results) == sorted(every)
    assert _verify(api)["ok"] is True
