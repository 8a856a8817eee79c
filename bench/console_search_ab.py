"""The customer list's queries before and after issue 14's change, timed interleaved in one process on
one generated book (so both see the same machine load): `make`-free, not a test.

before: the count over (id = q OR id LIKE q% OR name LIKE %q%) joined to dunning_states, then the page
        (two passes over the names for every search);
after:  api/reports/console.customers (issue 14: api/service/customer_list.py, the FTS5 trigram table on
        SQLite / pg_trgm on PostgreSQL for a term of 3+ characters, the count capped at 10,000).
Both give the same first page (asserted); the count is the same below the cap.

    .venv/bin/python bench/console_search_ab.py --customers 10000 --repeats 20
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from console_bench import AS_OF, PG_ADMIN, chinese_names, measure_times  # noqa: E402
from pgcheck import pg_reachable  # noqa: E402
from sweep_bench import load_book  # noqa: E402

TERMS = {"中文 common (有限公司)": "有限公司", "中文 rare (宏达机械)": "宏达机械", "id prefix (C00012)": "C00012",
         "no search, page 1": None}


def before(service, q):
    """The query as it was (api/reports/console.customers at 3594a01), page 1."""
    from sqlalchemy import func, or_, select

    from api.reports.console import _like
    from api.store.tables import Customer, DunningState
    stage_col = func.coalesce(DunningState.stage, 0)
    base = select(Customer.id).outerjoin(DunningState, DunningState.customer_id == Customer.id)
    if q:
        base = base.where(or_(Customer.id == q, Customer.id.like(q.replace("%", "") + "%"),
                              Customer.name.like(_like(q), escape="\\")))
    with service.read_tx() as s:
        total = s.execute(select(func.count()).select_from(base.subquery())).scalar_one()
        query = (select(Customer.id, Customer.name, Customer.collector, Customer.last_bucket, Customer.last_score,
                        Customer.approved_limit_minor, stage_col.label("stage"))
                 .outerjoin(DunningState, DunningState.customer_id == Customer.id)
                 .where(Customer.id.in_(base.order_by(Customer.id).limit(50))).order_by(Customer.id))
        rows = s.execute(query).all()
    return total, [r.id for r in rows]


def after(service, q):
    from api.reports import console
    got = console.customers(service, {"q": q or ""})
    return got["total"], [r["id"] for r in got["rows"]]


def run(url: str, n: int, repeats: int) -> dict:
    from api.http.app import create_app
    load_book(url, n, AS_OF, 7, 2000)
    chinese_names(url)
    app = create_app({"DATABASE_URL": url, "POLICY_FILE": str(HERE.parent / "policies.yaml"),
                      "CLOCK": lambda: dt.datetime.combine(AS_OF, dt.time(9))})
    service = app.extensions["creditctl"]
    out = {}
    for label, q in TERMS.items():
        assert before(service, q)[1] == after(service, q)[1], label  # the same page
        b, a = [], []
        for _ in range(repeats):                                      # interleaved: the same load for both
            t0 = time.perf_counter()
            before(service, q)
            b.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            after(service, q)
            a.append((time.perf_counter() - t0) * 1000)
        out[label] = {"before": measure_times(b), "after": measure_times(a), "matches": before(service, q)[0]}
        print(f"{label:<26} before p50 {out[label]['before']['p50']:>7} p95 {out[label]['before']['p95']:>7}   "
              f"after p50 {out[label]['after']['p50']:>7} p95 {out[label]['after']['p95']:>7} ms", file=sys.stderr)
    app.extensions["creditctl.engine"].dispose()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args(argv)
    results = {"customers": args.customers, "backends": {}}
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in args.backends:
            print("[sqlite]", file=sys.stderr)
            results["backends"]["sqlite"] = run(f"sqlite:///{tmp}/ab.sqlite3", args.customers, args.repeats)
        if "postgresql" in args.backends and pg_reachable(PG_ADMIN) is None:
            import psycopg
            db = f"creditctl_search_ab_{os.getpid()}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{db}"')
            try:
                print("[postgresql]", file=sys.stderr)
                results["backends"]["postgresql"] = run(f"{PG_ADMIN.rsplit('/', 1)[0]}/{db}", args.customers,
                                                        args.repeats)
            finally:
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    print(json.dumps(results, ensure_ascii=False, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
