"""Credit checks in-process: SQL statements, CPU and where the time goes, for one or more checkouts side by side.

For each tree (this checkout, then every --repo PATH) a worker subprocess runs with that tree first on
sys.path (and as its working directory), so each column is that tree's code on this venv's packages:

  1. create_app on a fresh SQLite file (or a fresh PostgreSQL database with --backend postgresql), then a
     generated book straight into the tables (bench/sweep_bench.generate_book: --customers customers with
     8-12 invoices each, ~10, payments, promises, disputes, …);
  2. --warmup credit checks, then --checks measured ones: POST /v1/credit-checks through the Flask test
     client with a sales key, a new order id each, reserve true (every 4th one reserve false), amounts
     varied, customers taken in a fixed pseudo-random order. Figures: SQL statements per check (a
     `before_cursor_execute` listener on the engine: every statement the driver is given, BEGIN/COMMIT
     included, an executemany counted once), CPU µs per check (time.process_time over the measured
     checks: this process's CPU, i.e. Flask + our code + SQLAlchemy + the SQLite library; PostgreSQL's
     server CPU is not in it), wall µs per check;
  3. a digest of every answer (the decision id taken out) and of every trail record the checks wrote
     (kind, subject, facts, policy version, result, outcome): the same digest in two columns means the
     two trees made byte-identical decisions on the same book;
  4. with --profile, a cProfile of another --checks checks, the top 15 by cumulative time.

Rounds (--rounds, default 3) alternate the trees and report the median CPU per check, since the machine
is shared. Figures only: nothing here asserts.

    make bench-credit-check
    git worktree add /tmp/base <commit>
    .venv/bin/python bench/credit_check_bench.py --repo /tmp/base --profile
    .venv/bin/python bench/credit_check_bench.py --repo /tmp/base --backend postgresql --customers 300
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import hashlib
import io
import json
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GLIBC_TUNABLES = "glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=268435456"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
NOW = dt.datetime(2026, 11, 22, 10, 0, 0)  # the book's day (sweep_bench.AS_OF)
SEED = 20261122


# ============================================================================ the worker (one tree)


def _book(engine, n: int) -> None:
    from sqlalchemy import insert

    from api.store.tables import Base
    from sweep_bench import TABLE_ORDER, generate_book

    tables = {name: Base.metadata.tables[name] for name in TABLE_ORDER}
    for batch in generate_book(n, NOW.date(), SEED, 2000):
        with engine.begin() as conn:
            for name in TABLE_ORDER:
                if batch.get(name):
                    conn.execute(insert(tables[name]), batch[name])


def _requests(n_customers: int, count: int, start: int) -> list[dict]:
    rng = random.Random(SEED + start)
    out = []
    for i in range(start, start + count):
        cid = f"C{rng.randrange(n_customers):07d}"
        out.append(
            {
                "customer_id": cid,
                "order_id": f"B-{i:06d}",
                "amount": f"{rng.randint(1, 400) * 50}.00",
                "currency": "CNY",
                "reserve": i % 4 != 3,
            }
        )
    return out


def worker(args) -> int:
    # this tree first: sweep_bench (imported for the book) puts the bench's own checkout on sys.path
    sys.path.insert(0, HERE)
    import sweep_bench  # noqa: F401

    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != ROOT or args.tree == ROOT]
    sys.path.insert(0, args.tree)
    from sqlalchemy import event, select

    import api
    from api.http.app import create_app
    from api.service.auth import create_key
    from api.store.tables import DecisionRecord

    assert os.path.dirname(os.path.abspath(api.__file__)).startswith(args.tree), api.__file__

    tmp = tempfile.mkdtemp(prefix="ccbench-")
    if args.backend == "postgresql":
        import psycopg

        db = f"ccbench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {db}")
        url = f"postgresql://postgres@127.0.0.1:5432/{db}"
    else:
        url = f"sqlite:///{tmp}/bench.sqlite3"
    app = create_app(
        {
            "DATABASE_URL": url,
            "POLICY_FILE": os.path.join(args.tree, "policies.yaml"),
            "CLOCK": lambda: NOW,
            "AUDIT_CHECKPOINTS": None,
        }
    )
    ctx, engine = app.extensions["creditctl"], app.extensions["creditctl.engine"]
    import logging

    logging.getLogger("creditctl.access").setLevel(logging.WARNING)
    _book(engine, args.customers)
    with ctx.tx() as s:
        key = create_key(s, "bench-sales", "sales", NOW)
    headers = {"Authorization": f"Bearer {key}"}
    client = app.test_client()
    statements = [0]

    listing = []

    @event.listens_for(engine, "before_cursor_execute")
    def _count(conn, cursor, statement, *_):
        statements[0] += 1
        if listing is not None:
            listing.append(" ".join(statement.split())[:160])

    answers = hashlib.sha256()

    def run(batch, digest=True):
        for body in batch:
            r = client.post("/v1/credit-checks", json=body, headers=headers)
            if r.status_code != 201:
                raise SystemExit(f"credit check answered {r.status_code}: {r.get_data(as_text=True)[:300]}")
            if digest:
                answer = r.get_json()
                answer.pop("decision_id")
                for k in ("id", "decision_id"):  # a referral's: random ids, the rest is the decision's
                    answer.get("referral", {}).pop(k, None)
                answers.update(json.dumps(answer, sort_keys=True, ensure_ascii=False).encode())

    run(_requests(args.customers, args.warmup - 1, 0))
    del listing[:]
    run(_requests(args.customers, 1, args.warmup - 1))  # one reserving check's statements, listed
    one_check, listing = listing, None
    rounds = []
    offset = args.warmup
    for _ in range(args.rounds):
        batch = _requests(args.customers, args.checks, offset)
        offset += args.checks
        statements[0] = 0
        t0, w0 = time_cpu(), time_wall()
        run(batch)
        rounds.append(
            {
                "cpu_us": (time_cpu() - t0) / len(batch) * 1e6,
                "wall_us": (time_wall() - w0) / len(batch) * 1e6,
                "statements": statements[0] / len(batch),
            }
        )
    records = hashlib.sha256()
    with ctx.read_tx() as s:
        for row in s.execute(
            select(
                DecisionRecord.kind,
                DecisionRecord.subject,
                DecisionRecord.facts,
                DecisionRecord.policy_version,
                DecisionRecord.result,
                DecisionRecord.outcome,
            )
            .where(DecisionRecord.kind == "credit_check")
            .order_by(DecisionRecord.subject, DecisionRecord.seq)
        ):
            records.update(json.dumps(list(row), ensure_ascii=False).encode())
    out = {
        "tree": args.tree,
        "rounds": rounds,
        "answers_sha256": answers.hexdigest()[:16],
        "records_sha256": records.hexdigest()[:16],
        "checks": offset,
        "one_check": one_check,
    }
    if args.profile:
        batch = _requests(args.customers, args.checks, offset)
        prof = cProfile.Profile()
        prof.enable()
        run(batch, digest=False)
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(15)
        out["profile"] = _trim(text.getvalue(), args.tree, len(batch))
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(15)
        out["profile_self"] = _trim(text.getvalue(), args.tree, len(batch), column=1)
    engine.dispose()
    if args.backend == "postgresql":
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {db} WITH (FORCE)")
    print("RESULT " + json.dumps(out, ensure_ascii=False))
    return 0


def time_cpu() -> float:
    import time

    return time.process_time()


def time_wall() -> float:
    import time

    return time.perf_counter()


def _trim(text: str, tree: str, checks: int, column: int = 3) -> str:
    """pstats' table, paths shortened, with a per-check µs column for the cumulative (or own) time."""
    lines = []
    started = False
    for line in text.splitlines():
        if line.strip().startswith("ncalls"):
            started = True
            lines.append(f"{'µs/check':>12}  {line.strip()}")
            continue
        if not started or not line.strip():
            continue
        parts = line.split(None, 5)
        try:
            cum = float(parts[column])
        except (IndexError, ValueError):
            continue
        where = (
            parts[5].replace(tree + "/", "").replace(sys.prefix + "/", "").replace("lib/python3.11/site-packages/", "")
        )
        lines.append(f"{cum / checks * 1e6:12.0f}  {' '.join(parts[:5])}  {where}")
    return "\n".join(lines)


# ============================================================================ the parent (side by side)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repo", action="append", default=[], help="another checkout to measure beside this one")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--checks", type=int, default=400, help="measured checks per round")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--statements", action="store_true", help="list the SQL of one reserving check per tree")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tree", default=ROOT, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.tree = os.path.abspath(args.tree)
        return worker(args)
    trees = [ROOT] + [os.path.abspath(r) for r in args.repo]
    results = []
    for tree in trees:
        env = dict(os.environ, PYTHONPATH=tree, GLIBC_TUNABLES=os.environ.get("GLIBC_TUNABLES", GLIBC_TUNABLES))
        cmd = [
            sys.executable,
            os.path.join(HERE, "credit_check_bench.py"),
            "--worker",
            "--tree",
            tree,
            "--customers",
            str(args.customers),
            "--checks",
            str(args.checks),
            "--warmup",
            str(args.warmup),
            "--rounds",
            str(args.rounds),
            "--backend",
            args.backend,
        ] + (["--profile"] if args.profile else [])
        done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if done.returncode or line is None:
            print(f"{tree}: worker failed ({done.returncode})\n{done.stderr[-3000:]}", file=sys.stderr)
            return 1
        results.append(json.loads(line[7:]))
    print(
        f"credit checks, {args.backend}, {args.customers} customers (~10 invoices each), "
        f"{args.rounds} rounds × {args.checks} checks (+{args.warmup} warm-up), Flask test client, in-process\n"
    )
    names = [_label(r["tree"]) for r in results]
    print(
        f"{'figure':<28}"
        + "".join(f"{n:>22}" for n in names)
        + ("      ratio (first/second)" if len(results) > 1 else "")
    )

    def row(label, values, fmt, ratio=True):
        text = f"{label:<28}" + "".join(f"{fmt.format(v):>22}" for v in values)
        if ratio and len(values) > 1 and values[0]:
            text += (
                f"      {values[1] / values[0]:.2f}× fewer/less"
                if values[1] >= values[0]
                else f"      {values[0] / values[1]:.2f}× more"
            )
        print(text)

    row("SQL statements / check", [statistics.median(x["statements"] for x in r["rounds"]) for r in results], "{:.2f}")
    row("CPU µs / check (median)", [statistics.median(x["cpu_us"] for x in r["rounds"]) for r in results], "{:.0f}")
    row("wall µs / check (median)", [statistics.median(x["wall_us"] for x in r["rounds"]) for r in results], "{:.0f}")
    row("answers sha256", [r["answers_sha256"] for r in results], "{}", ratio=False)
    row("trail records sha256", [r["records_sha256"] for r in results], "{}", ratio=False)
    if len(results) > 1:
        same = len({(r["answers_sha256"], r["records_sha256"]) for r in results}) == 1
        print(f"\ndecisions byte-identical across trees: {'yes' if same else 'NO'}")
    if args.statements:
        for r in results:
            print(f"\nstatements of one reserving check, {_label(r['tree'])}:")
            for i, st in enumerate(r["one_check"], 1):
                print(f"  {i:2d}. {st}")
    for r in results:
        if "profile" in r:
            print(f"\ncProfile, {_label(r['tree'])}, top 15 by cumulative time ({args.checks} checks):\n{r['profile']}")
            print(f"\n... top 15 by own time:\n{r['profile_self']}")
    return 0


def _label(tree: str) -> str:
    try:
        head = subprocess.run(
            ["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        head = ""
    return f"{os.path.basename(tree)}@{head}" if head else os.path.basename(tree)


if __name__ == "__main__":
    sys.exit(main())
