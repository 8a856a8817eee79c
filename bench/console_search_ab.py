"""The customer list's queries before and after issue 14's change, timed interleaved in one process on
one generated book (so both see the same machine load): `make`-free, not a test.

before: the count over (id = q OR id LIKE q% OR name LIKE %q%) joined to dunning_states, then the page
        (two passes over the names for every search);
after:  api/reports/console.customers (issue 14: api/service/customer_list.py, the FTS5 trigram table on
        SQLite / pg_trgm on PostgreSQL for a term of 3+ characters, the count capped at 10,000).
Both give the same first page (asserted); the count is the same below the cap.

    .venv/bin/python bench/console_search_ab.py --customers 10000 --repeats 20

--plans: the list's search before and after the window plan (api/service/customer_list.py `plan`), every
list shape of bench/console_bench.py and a few more searches, interleaved, on one book (a sweep first: the
filters are the last decision's). before = one query (ILIKE on PostgreSQL: the tree before the window
plan), after = the default; each a page of 50 and the capped count, as the console asks; the same rows,
cursor and count asserted. `--url` times an existing generated book (e.g. a kept PostgreSQL database)
instead of generating one.

    .venv/bin/python bench/console_search_ab.py --plans --customers 100000 --repeats 20
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

    from api.service.customer_list import _like      # (api/reports/console.py's before issue 14)
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


PLAN_TERMS = {"search 上海 (1 in 12)": "上海", "search 宏达 (1 in 25)": "宏达", "search 有限公司, sort name desc":
              "有限公司&sort=name&dir=desc", "search 有限公司, sort outstanding desc": "有限公司&sort=outstanding&dir=desc",
              "search 宏达机械, sort name": "宏达机械&sort=name", "search 有限公司 + hold yes": "有限公司&hold=yes",
              "search C0 (ids)": "C0"}


def run_plans(url: str, n: int | None, repeats: int, sweep: bool) -> dict:
    """customer_list.search before / after the window plan on every list shape (see --plans)."""
    import urllib.parse

    from console_bench import pages
    from sqlalchemy import func, select

    from api.http.app import create_app
    from api.service import customer_list
    from api.store.tables import Customer
    if n is not None:
        load_book(url, n, AS_OF, 7, 2000)
        chinese_names(url)
    app = create_app({"DATABASE_URL": url, "POLICY_FILE": str(HERE.parent / "policies.yaml"),
                      "CLOCK": lambda: dt.datetime.combine(AS_OF, dt.time(9))})
    service = app.extensions["creditctl"]
    if sweep:
        from api.jobs import sweep as sweeps
        t0 = time.perf_counter()
        sweeps.run_sweep(service, AS_OF, "bench")
        print(f"sweep: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    with service.read_tx() as s:
        dialect = s.get_bind().dialect.name
        n = s.execute(select(func.count()).select_from(Customer)).scalar_one()
        policy = service.registry.active(s)
    shapes = {label: path.split("?", 1)[1] if "?" in path else ""
              for label, path in pages(n, url).items() if path.startswith("/console/customers") and "as_of" not in path}
    shapes.update({label: "q=" + q for label, q in PLAN_TERMS.items()})
    out = {}
    for label, query in shapes.items():
        f = customer_list.validate(policy, dict(urllib.parse.parse_qsl(query)))
        how = {"before": {"plan": "direct", "indexed": dialect == "sqlite"}, "after": {}}

        def page(which):
            got = customer_list.search(service, f, limit=50, count=True, **how[which])
            return [c.id for c, _ in got["rows"]], got["next_cursor"], got["total"], got["total_capped"]
        assert page("before") == page("after"), label                     # the same page, cursor and count
        times = {"before": [], "after": []}
        for _ in range(repeats):                                          # interleaved: the same load for both
            for which in times:
                t0 = time.perf_counter()
                page(which)
                times[which].append((time.perf_counter() - t0) * 1000)
        out[label] = {k: measure_times(v) for k, v in times.items()}
        out[label]["matches"] = page("after")[2]
        print(f"{label:<38} before p50 {out[label]['before']['p50']:>7} p95 {out[label]['before']['p95']:>7}   "
              f"after p50 {out[label]['after']['p50']:>7} p95 {out[label]['after']['p95']:>7} ms"
              f"   ({out[label]['matches']} matches{'+' if page('after')[3] else ''})", file=sys.stderr)
    app.extensions["creditctl.engine"].dispose()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--plans", action="store_true", help="the list's search before / after the window plan")
    ap.add_argument("--url", help="--plans (implied) on this existing generated, swept book instead of a new one")
    args = ap.parse_args(argv)
    results = {"customers": args.customers, "backends": {}}
    if args.url:
        name = "postgresql" if args.url.startswith("postgresql") else "sqlite"
        print(f"[{name}] {args.url}", file=sys.stderr)
        results["backends"][name] = run_plans(args.url, None, args.repeats, sweep=False)
        print(json.dumps(results, ensure_ascii=False, sort_keys=True))
        return 0
    run_ = (lambda url, n, r: run_plans(url, n, r, sweep=True)) if args.plans else run
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in args.backends:
            print("[sqlite]", file=sys.stderr)
            results["backends"]["sqlite"] = run_(f"sqlite:///{tmp}/ab.sqlite3", args.customers, args.repeats)
        if "postgresql" in args.backends and pg_reachable(PG_ADMIN) is None:
            import psycopg
            db = f"creditctl_search_ab_{os.getpid()}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{db}"')
            try:
                print("[postgresql]", file=sys.stderr)
                results["backends"]["postgresql"] = run_(f"{PG_ADMIN.rsplit('/', 1)[0]}/{db}", args.customers,
                                                         args.repeats)
            finally:
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    print(json.dumps(results, ensure_ascii=False, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
