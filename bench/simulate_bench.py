"""`creditctl policy simulate` on a generated book: customers/s for 1 and 2 worker processes, side by side
with other checkouts (--repo), and the same report from every run.

  1. one book, made once with this tree (bench/sweep_bench.load_book: --customers customers with 8-12
     invoices each, payments, promises, disputes, instalment plans, ~3 % with a held reservation), on a
     fresh SQLite file (or a PostgreSQL database with --backend postgresql);
  2. the candidate of bench/sweep_bench.candidate_policy (the medium-reputation limit 200,000 → 150,000);
  3. for each round, each tree (this checkout, then every --repo PATH) and each --workers value the tree's
     command line has (a tree without `--workers` runs once, with one process): `python -m api.cli policy
     simulate` as a subprocess with that tree first on PYTHONPATH (its own code on this venv's packages),
     timed from start to exit (imports, policy compiles and worker start-up included); CPU is the
     subprocess's and its workers' (RUSAGE_CHILDREN);
  4. a sha256 of each report with its decision id taken out: one digest in every column means the same
     summary and changes, byte for byte.

Each simulation appends one trail record to the book; nothing else is written, so the runs share the
book. Figures only: nothing here asserts. The machine is shared: compare columns of one run.

    .venv/bin/python bench/simulate_bench.py --customers 25000
    git archive HEAD~ | tar -x -C /tmp/base     # or: git worktree add /tmp/base HEAD~
    .venv/bin/python bench/simulate_bench.py --customers 25000 --repo /tmp/base --rounds 2
    .venv/bin/python bench/simulate_bench.py --customers 25000 --backend postgresql
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

from sweep_bench import AS_OF, GLIBC_TUNABLES, PG_ADMIN_URL, SEED, candidate_policy, load_book  # noqa: E402


def _label(tree: str) -> str:
    head = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    return f"{os.path.basename(tree)}@{head}" if head else os.path.basename(tree)


def _env(tree: str) -> dict:
    return dict(os.environ, PYTHONPATH=tree, GLIBC_TUNABLES=os.environ.get("GLIBC_TUNABLES", GLIBC_TUNABLES))


def _has_workers(tree: str) -> bool:
    done = subprocess.run([sys.executable, "-m", "api.cli", "policy", "simulate", "--help"], cwd=tree,
                          env=_env(tree), capture_output=True, text=True)
    return "--workers" in done.stdout


def _run(tree: str, url: str, candidate: str, workers: int | None, out: str) -> dict:
    cmd = [sys.executable, "-m", "api.cli", "policy", "simulate", candidate, "--as-of", AS_OF.isoformat(),
           "--database-url", url, "--output", out] + ([] if workers is None else ["--workers", str(workers)])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=tree, env=_env(tree), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{tree}: simulate exited {done.returncode}\n{done.stderr[-3000:]}")
    with open(out, encoding="utf-8") as fh:
        body = fh.read()
    os.unlink(out)
    body = re.sub(r'^\{"decision_id": "[0-9a-f]+"', '{"decision_id": ""', body)
    changed = re.search(r'"customers_changed": (\d+)', body)
    return {"wall": wall, "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "sha256": hashlib.sha256(body.encode()).hexdigest()[:16], "changed": int(changed.group(1))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--customers", type=int, default=25_000)
    p.add_argument("--repo", action="append", default=[], help="another checkout to run beside this one")
    p.add_argument("--workers", default="1,2", help="worker counts to run (trees with --workers)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = p.parse_args()
    trees = [ROOT] + [os.path.abspath(r) for r in args.repo]
    counts = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="simulate-bench-") as tmp:
        db = None
        if args.backend == "sqlite":
            url = f"sqlite:///{tmp}/book.sqlite3"
        else:
            import psycopg
            db = f"creditctl_simbench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{db}"')
            url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + db
        try:
            t0 = time.perf_counter()
            book = load_book(url, args.customers, AS_OF, SEED, 1000)
            print(f"book: {args.customers:,} customers, {book['counts']['invoices']:,} invoices, "
                  f"{book['counts']['reservations']:,} held reservations ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
            candidate, what = candidate_policy(tmp)
            plan = [(tree, w) for tree in trees for w in (counts if _has_workers(tree) else [None])]
            runs: dict = {key: [] for key in plan}
            for r in range(args.rounds):
                for tree, w in plan:
                    res = _run(tree, url, candidate, w, os.path.join(tmp, "report.json"))
                    runs[(tree, w)].append(res)
                    print(f"  round {r + 1}: {_label(tree)} workers {w or '1 (no --workers)'}: {res['wall']:.1f} s, "
                          f"{args.customers / res['wall']:,.0f} customers/s, CPU {res['cpu']:.1f} s", flush=True)
        finally:
            if db is not None:
                import psycopg
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    print(f"\npolicy simulate, {args.backend}, {args.customers:,} customers, candidate: {what}; median of "
          f"{args.rounds} round(s), wall from start to exit\n")
    print(f"{'tree':<28}{'workers':>8}{'wall s':>9}{'customers/s':>13}{'CPU s':>8}{'CPU µs/cust':>13}"
          f"{'changed':>9}  report sha256")
    base = None
    for (tree, w), rs in runs.items():
        wall = statistics.median(x["wall"] for x in rs)
        cpu = statistics.median(x["cpu"] for x in rs)
        rate = args.customers / wall
        base = base or rate
        print(f"{_label(tree):<28}{w or 1:>8}{wall:>9.1f}{rate:>13,.0f}{cpu:>8.1f}"
              f"{cpu / args.customers * 1e6:>13,.0f}{rs[0]['changed']:>9}  {rs[0]['sha256']}")
    digests = {x["sha256"] for rs in runs.values() for x in rs}
    print(f"\nreports byte-identical across runs: {'yes' if len(digests) == 1 else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
