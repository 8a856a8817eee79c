"""The overview's book figures written by the sweep (api/reports/figures.py): the snapshot a run leaves is
what a pass over the whole book (the live computation, book.aging) gives for its day, also when the run was
interrupted and resumed; a policy published mid-run leaves no snapshot (SQLite and PostgreSQL)."""

from __future__ import annotations

import pathlib

from api.jobs import sweep
from api.reports import console as views_data
from api.reports import figures
from api_harness import POLICY_FILE, day, uid


def _book(api) -> list[str]:
    """Customers in several buckets and tiers, a partial payment, a credit note, one paid up, one without invoices."""
    ids = []
    for k, (amount, due) in enumerate(
        (("120000.00", -95), ("8000.00", -40), ("3000.00", -1), ("56000.00", 10), ("9000.00", -200))
    ):
        cid = api.customer(uid(f"C{k}"), name=f"快照客户{k}", size=("large", "small", "medium")[k % 3])
        inv = api.invoice(cid, amount, due=due, issued=due - 30)
        api.invoice(cid, "1500.00", due=5, issued=-25)
        ids.append(cid)
        if k == 1:
            api.event(
                cid, "payment_received", {"id": uid("P"), "invoice_id": inv, "amount": "2500.00", "paid_on": day(-3)}
            )
        if k == 4:
            api.event(
                cid, "payment_received", {"id": uid("P"), "invoice_id": inv, "amount": "9000.00", "paid_on": day(-2)}
            )
            api.event(cid, "payment_received", {"id": uid("P"), "amount": "700.00", "paid_on": day(-1)})
    ids.append(api.customer(uid("Cnone"), name="无发票客户"))
    return ids


def _active_version(service) -> str:
    with service.read_tx() as s:
        return service.registry.active(s).version


def test_the_sweeps_snapshot_is_the_whole_books_figures_even_when_resumed(fresh):
    api = fresh
    _book(api)
    service, today = api.service, api.service.today()
    assert figures.latest_snapshot(service) is None
    run_id = sweep.start(service, today, "test", partition_size=2)
    sweep.work(service, run_id, group_size=2, stop_after=3)  # killed after 3 of 6 customers
    assert figures.latest_snapshot(service) is None
    sweep.work(service, run_id, group_size=2, reclaim=True)  # resumed: the other 3
    snap = figures.latest_snapshot(service, today, _active_version(service))
    assert snap is not None and snap["source"] == f"sweep {run_id}" and snap["customers"] == 6
    live = views_data.book_figures(service, today)
    got = dict(snap["figures"])
    assert got.pop("errors") == 0 and got == live
    # 120,000 + (8,000 − 2,500) + 3,000 + 56,000 + 5 × 1,500 − 700 (paid on account, applied to the oldest open)
    assert live["receivables"] == "191300.00" and live["customers_with_open_invoices"] == 5
    assert live["dso_days"] is not None and live["oldest_pct"] not in (None, "0.0")
    assert api.counts()["sweep_figures"] == 0  # the groups' shares are summed away
    # a second run of the day: a newer snapshot, the same figures
    second = sweep.run_sweep(service, today, "test")
    newer = figures.latest_snapshot(service, today)
    assert newer["source"] == f"sweep {second['id']}" and dict(newer["figures"], errors=0) == snap["figures"]


def test_a_policy_published_mid_run_leaves_no_snapshot(fresh):
    api = fresh
    _book(api)
    service, today = api.service, api.service.today()
    run_id = sweep.start(service, today, "test", partition_size=2)
    sweep.work(service, run_id, group_size=2, stop_after=2)
    text = pathlib.Path(POLICY_FILE).read_text(encoding="utf-8")
    r = api.post(
        "/v1/policies",
        {"text": text.replace("  description:", "  description: (mid-run)", 1), "source": "test"},
        role="admin",
    )
    assert r.status_code == 201, r.text
    sweep.work(service, run_id, group_size=2, reclaim=True)
    assert sweep.summary(service, run_id)["status"] == "done"
    assert figures.latest_snapshot(service) is None and api.counts()["sweep_figures"] == 0


def test_an_import_of_the_whole_book_leaves_its_snapshot_a_partial_one_does_not(fresh):
    import datetime as dt
    import io

    from api_harness import ROOT

    book = {p.name: p.read_bytes() for p in sorted((pathlib.Path(ROOT) / "examples" / "book").glob("*.csv"))}

    def _import(files):
        r = fresh.request(
            "POST",
            "/v1/imports",
            "controller",
            params={"as_of": "2026-11-22"},
            files=[("files", (name, io.BytesIO(data))) for name, data in files.items()],
        )
        assert r.status_code == 201, r.text
        return r.json()

    body = _import(book)
    day_ = dt.date(2026, 11, 22)
    snap = figures.latest_snapshot(fresh.service, day_, _active_version(fresh.service))
    assert snap["source"] == f"import {body['id']}" and snap["customers"] == body["decisions"] == 12
    assert dict(snap["figures"]) == dict(views_data.book_figures(fresh.service, day_), errors=0)
    text = book["invoices.csv"].decode()
    book["invoices.csv"] = text.replace("HD-2609,C-2001,120000.00", "HD-2609,C-2001,90000.00").encode()
    assert _import(book)["decisions"] == 1  # one customer decided: no new snapshot
    assert figures.latest_snapshot(fresh.service)["source"] == f"import {body['id']}"
