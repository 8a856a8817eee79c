"""Bulk import at scale: a generated book (default 100,000 customers / 1,000,000 invoices, 200,000
payments) written as CSV, then `creditctl import`'s run_import on SQLite and PostgreSQL, timed by phase
(validate, write, decide), with the peak RSS. Prints figures; asserts nothing.

    .venv/bin/python bench/import_bench.py [--customers 100000] [--invoices-per-customer 10] [--backends sqlite,postgres]
        [--workers 1,2]      # the decide phase in 1 and in 2 processes, side by side on fresh databases
        [--repo /tmp/base]   # import another checkout's importer (the same generated book), e.g. before/after

Peak RSS is the importing process's (ru_maxrss). Not the decide workers': Linux counts a spawned child's RSS
from the fork before its exec (the parent's size then), so RUSAGE_CHILDREN says nothing of the workers' own.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import random
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

AS_OF = dt.date(2026, 11, 30)
REPO = ROOT
PG_ADMIN = os.environ.get("CREDITCTL_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def write_book(folder: str, customers: int, per_customer: int, seed: int) -> dict:
    rnd = random.Random(seed)
    industries = ("manufacturing", "services", "trading", "engineering_project")
    paths = {k: os.path.join(folder, f"{k}.csv") for k in ("customers", "invoices", "payments")}
    n_inv = n_pay = 0
    with (
        open(paths["customers"], "w", newline="", encoding="utf-8") as fc,
        open(paths["invoices"], "w", newline="", encoding="utf-8") as fi,
        open(paths["payments"], "w", newline="", encoding="utf-8") as fp,
    ):
        c, i, p = csv.writer(fc), csv.writer(fi), csv.writer(fp)
        c.writerow(["id", "name", "type", "industry", "region", "size", "since"])
        i.writerow(["id", "customer_id", "amount", "currency", "issued_on", "due_on"])
        p.writerow(["id", "customer_id", "invoice_id", "amount", "paid_on"])
        for k in range(customers):
            cid = f"B{k:07d}"
            c.writerow(
                [
                    cid,
                    f"客户{k}",
                    "enterprise",
                    rnd.choice(industries),
                    rnd.choice(("local", "remote")),
                    rnd.choice(("small", "medium", "large")),
                    (AS_OF - dt.timedelta(days=rnd.randint(30, 3000))),
                ]
            )
            for j in range(per_customer):
                issued = AS_OF - dt.timedelta(days=rnd.randint(0, 200))
                amount = rnd.randint(100, 5_000_000)
                inv = f"{cid}-{j}"
                i.writerow(
                    [inv, cid, f"{amount // 100}.{amount % 100:02d}", "CNY", issued, issued + dt.timedelta(days=30)]
                )
                n_inv += 1
                if j < 2:
                    # a payment received is dated no later than the as_of (a later one is refused, issue 12)
                    p.writerow(
                        [f"P{inv}", cid, inv, f"{max(1, amount // 200)}.00", min(issued + dt.timedelta(days=20), AS_OF)]
                    )
                    n_pay += 1
    return {"paths": list(paths.values()), "invoices": n_inv, "payments": n_pay}


def run(backend: str, url: str, book: dict, workers: int = 1) -> dict:
    from api.jobs.importer import run as importer
    from api.jobs.importer.reader import Source
    from api.service.context import Context
    from api.service.policies import load_policy_file
    from api.store.database import make_engine, make_sessionmaker, migrate
    from api.store.policy_store import PolicyRegistry
    import logging

    engine = make_engine(url)
    migrate(engine)
    ctx = Context(make_sessionmaker(engine), PolicyRegistry())
    load_policy_file(ctx, os.path.join(REPO, "policies.yaml"), logging.getLogger("bench"))
    phases: dict[str, float] = {}
    original = {name: getattr(importer, name) for name in ("validate_files", "_write", "_decide_all")}

    cpu: dict[str, tuple[float, float]] = {}

    def timed(name, fn):
        def wrapper(*a, **kw):
            t, c = time.perf_counter(), time.process_time()
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            try:
                return fn(*a, **kw)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - t
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                # (this process's CPU, its finished worker processes' CPU) during the phase
                cpu[name] = (
                    time.process_time() - c,
                    after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime,
                )

        return wrapper

    for name, fn in original.items():
        setattr(importer, name, timed(name, fn))
    try:
        sources = [Source(p, (lambda p=p: open(p, "rb"))) for p in book["paths"]]
        t0, c0 = time.perf_counter(), time.process_time()
        result = importer.run_import(ctx, sources, actor="bench", as_of=AS_OF, workers=workers)
        wall, cpu_total = time.perf_counter() - t0, time.process_time() - c0
    finally:
        for name, fn in original.items():
            setattr(importer, name, fn)
        engine.dispose()
    return {
        "backend": backend,
        "workers": workers,
        "wall": wall,
        "cpu": cpu_total,
        "phases": phases,
        "decide_cpu": cpu.get("_decide_all", (0.0, 0.0)),
        "status": result["status"],
        "decisions": result["decisions"],
        "errors": result["error_count"],
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--invoices-per-customer", type=int, default=10)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument(
        "--workers",
        default="1",
        help="decide-phase processes, a list to compare side by side on fresh databases, e.g. 1,2",
    )
    ap.add_argument("--repo", default=ROOT, help="the checkout whose importer runs (default: this one)")
    args = ap.parse_args()
    global REPO
    REPO = os.path.abspath(args.repo)
    sys.path.insert(0, REPO)  # before any api import: that tree's importer, this tree's book
    import api.jobs.importer.run as importer

    print(f"importer: {os.path.dirname(importer.__file__)}")
    with tempfile.TemporaryDirectory(prefix="creditctl-import-") as folder:
        book = write_book(folder, args.customers, args.invoices_per_customer, args.seed)
        print(f"book: {args.customers:,} customers, {book['invoices']:,} invoices, {book['payments']:,} payments")
        for backend in args.backends.split(","):
            results = []
            for workers in (int(w) for w in args.workers.split(",")):
                if backend == "sqlite":
                    url = f"sqlite:///{os.path.join(folder, f'bench-{workers}.sqlite3')}"
                else:
                    import psycopg
                    from pgcheck import pg_reachable

                    why = pg_reachable(PG_ADMIN)
                    if why:
                        print(f"postgres: skipped: {why}")
                        break
                    name = f"creditctl_import_bench_{os.getpid()}_{workers}"
                    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                        conn.execute(f'CREATE DATABASE "{name}"')
                    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
                r = run(backend, url, book, workers)
                results.append(r)
                ph = ", ".join(f"{k.strip('_')} {v:.1f} s" for k, v in r["phases"].items())
                print(
                    f"{backend} workers {workers}: {r['status']}, {r['decisions']:,} decisions, {r['errors']} errors; "
                    f"wall {r['wall']:.1f} s (target < 300 s), CPU {r['cpu']:.1f} s (parent); {ph}; "
                    f"peak RSS {r['rss_mb']:.0f} MB; decide CPU: parent {r['decide_cpu'][0]:.1f} s, "
                    f"workers {r['decide_cpu'][1]:.1f} s; load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                if backend != "sqlite":
                    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            base = results[0] if results else None
            for r in results[1:]:
                # the decide phase's critical path on idle cores: the parent's share, or the workers' spread
                # over theirs, whichever is longer (an estimate from CPU seconds, not a measurement)
                serial = sum(base["decide_cpu"])
                path = max(r["decide_cpu"][0], r["decide_cpu"][1] / r["workers"])
                print(
                    f"{backend}: workers {r['workers']} vs {base['workers']}: decide wall "
                    f"{base['phases']['_decide_all'] / r['phases']['_decide_all']:.2f}x faster, import wall "
                    f"{base['wall'] / r['wall']:.2f}x (cores on this machine: {os.cpu_count()}); decide CPU "
                    f"{serial:.1f} s in one process vs parent {r['decide_cpu'][0]:.1f} s + workers "
                    f"{r['decide_cpu'][1]:.1f} s: on idle cores at best {serial / path:.2f}x"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
