"""The import's memory does not grow with the book (issue 13: "memory bounded (streamed)"), on SQLite and
PostgreSQL: what it must remember of every row (natural keys, the customers and invoices it holds, rejected
rows, customers to decide) is in a temporary SQLite spool, not in Python objects. Measured with tracemalloc
(Python allocations, not time): the peak of checking and counting a book ten times larger stays within a
small factor of a small one's, where keeping a few hundred bytes per row grows it about tenfold. The batch and
chunk sizes are made small (200 rows), and the blocks read to detect the encoding and hash a file (1 MB) 64 KB,
so that what is held per batch or block — bounded, but a few MB as shipped — does not hide what is held per row."""

from __future__ import annotations

import datetime as dt
import io
import tracemalloc

from api.jobs.importer import reader, run
from api.jobs.importer.reader import Source

AS_OF = dt.date(2026, 11, 30)


def _book(prefix: str, customers: int) -> list[Source]:
    """`customers` customers, 5 invoices and 1 payment each; the last invoice of every 19th of the first 570
    customers has a bad amount: 30 rejected rows in a book of any size (the rejected rows' CSV, which the import
    hands back, is as long as they are many)."""
    c = ["id,name,type,industry,region,size,since"]
    i = ["id,customer_id,amount,currency,issued_on,due_on"]
    p = ["id,customer_id,invoice_id,amount,paid_on"]
    for k in range(customers):
        cid = f"{prefix}{k:06d}"
        c.append(f"{cid},客户{k},enterprise,services,local,small,2020-01-01")
        for j in range(5):
            amount = "1e3" if k % 19 == 0 and k < 570 and j == 4 else f"{1000 + k}.{j:02d}"
            i.append(f"{cid}-{j},{cid},{amount},CNY,2026-10-01,2026-10-31")
        p.append(f"P{cid},{cid},{cid}-0,10.00,2026-11-01")
    files = {"customers.csv": c, "invoices.csv": i, "payments.csv": p}
    return [
        Source(name, (lambda data=("\n".join(lines) + "\n").encode("utf-8"): io.BytesIO(data)))
        for name, lines in files.items()
    ]


def _peak(api, prefix: str, customers: int) -> tuple[int, dict]:
    """tracemalloc's peak (bytes) of a dry run (every row checked, the write pass counted and rolled back)."""
    sources = _book(prefix, customers)  # the files' bytes are made before measuring
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        got = run.run_import(api.service, sources, actor="test", as_of=AS_OF, dry_run=True, skip_invalid=True)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak, got


def test_checking_a_book_ten_times_larger_takes_about_the_same_memory(fresh, monkeypatch):
    monkeypatch.setattr(run, "BATCH", 200)  # rows per write batch
    monkeypatch.setattr(run, "CHUNK", 200)  # rows checked together
    monkeypatch.setattr(reader, "SNIFF_BYTES", 1 << 16)
    monkeypatch.setattr(reader, "HASH_BLOCK", 1 << 16)
    _peak(fresh, "W", 300)  # warm-up: caches (compiled statements, schemas) filled once
    small = 600  # 600 customers: 4,200 rows, every batch and chunk filled
    small_peak, small_got = _peak(fresh, "S", small)
    large_peak, large_got = _peak(fresh, "L", 10 * small)
    # the runs did what they say: every row read, the bad cells found and counted
    assert small_got["status"] == large_got["status"] == "checked"
    bad = 30
    assert small_got["error_count"] == bad and small_got["counts"]["invoices"]["rejected"] == bad
    assert large_got["counts"]["invoices"] == {
        "rows": 50 * small,
        "new": 50 * small - bad,
        "changed": 0,
        "unchanged": 0,
        "rejected": bad,
    }
    assert large_got["error_count"] == bad and len(large_got["errors"]) == bad
    assert large_got["counts"]["payments"]["new"] == 10 * small
    assert (
        large_got["rejected_csv"].count("E_AMOUNT") == bad
        and 'invoices.csv,6,"invoices.csv:6:3: E_AMOUNT' in large_got["rejected_csv"]
    )
    # 42,000 rows against 4,200: a per-row structure of even 100 bytes would add 3.8 MB
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)
