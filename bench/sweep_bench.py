"""Scale benchmark for the collections sweep (`creditctl sweep`) and, when it exists, the what-if
simulation (`creditctl policy simulate`) on a generated book.

For each backend (a fresh SQLite file in a temp dir; a fresh PostgreSQL database on 127.0.0.1:5432
when it answers) and each book size N it:

  1. creates the app once (create_app: migrations + policies.yaml published), then bulk-inserts a
     deterministic, seeded book straight into the tables with SQLAlchemy Core `insert()` executemany
     in batches: N customers (industries, regions, sizes, reputations, new customers, arrears
     reasons), 8-12 invoices each (~10), payments (on time, late, partial, on account), and a few
     promises, disputes, credit notes, instalment plans and held reservations. Customers follow
     payment habits that leave their oldest open invoice current, 1-30, 31-90 or > 90 days overdue;
  2. keeps that book as a master (the SQLite file; on PostgreSQL a template database) and gives
     every measured run its own fresh copy (file copy / CREATE DATABASE … TEMPLATE), so every
     run starts from the same state;
  3. times `creditctl sweep --as-of D --database-url URL --quiet` as real subprocesses: one on
     SQLite; on PostgreSQL one, then two started at the same moment on another copy (they share
     one run through the partitions, FOR UPDATE SKIP LOCKED). Wall time runs from the start of the
     first process to the exit of the last, start-up (imports, migrations check, policy compile)
     included. Each worker's CPU time and peak RSS come from os.wait4's rusage; its RSS is also
     sampled while it runs, to show whether memory grows with the book;
  4. times `creditctl policy simulate` (if this build has it) on another copy, with a candidate
     policy that differs from policies.yaml in one credit limit;
  5. checks how the database answers the sweep's per-customer lookup of the actions it just
     created (by decision_id), and times it with the actions table as the run left it; with
     --earlier-actions K the book also gets K closed actions from "earlier days" first, to see
     the sweep on an actions table that weeks of sweeps have filled;
  6. profiles one sweep worker (first 1,500 customers of a copy) with cProfile, and with py-spy
     (--idle, so waiting for the database counts) when py-spy is installed.

Prints a table of figures next to their targets (< 60 s for 100k customers on SQLite, i.e. ≥ 1,667
customers/s; 2 workers ≥ 1.7× one worker on PostgreSQL). Figures only: nothing here asserts.
At sizes below 100k the 100k figures are extrapolated linearly from the largest measured N and
labelled so. The machine is assumed shared: the CPU the rest of the machine used during each run
is shown ("other cores": PostgreSQL's server processes and everything else).

    make bench-sweep                                          # N = 100,000 (1M invoices)
    .venv/bin/python bench/sweep_bench.py --customers 10000,20000
    .venv/bin/python bench/sweep_bench.py --customers 2000 --backends sqlite --no-profile
    .venv/bin/python bench/sweep_bench.py --customers 10000,20000 --append-readme bench/README.md
    .venv/bin/python bench/sweep_bench.py --customers 2000 --earlier-actions 500000 --no-simulate --no-profile
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from pgcheck import pg_reachable  # bench/pgcheck.py, beside this script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
BIN = os.path.join(ROOT, ".venv", "bin")
CREDITCTL = os.path.join(BIN, "creditctl")
PYTHON = sys.executable
POLICY = os.path.join(ROOT, "policies.yaml")
# the Makefile exports this for durable_rules' C core; set it here too when run directly
GLIBC_TUNABLES = "glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=268435456"
PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
AS_OF = dt.date(2026, 11, 22)
SEED = 20261122
TARGET_N = 100_000
TARGET_SQLITE_S = 60.0  # 100k customers on SQLite
TARGET_RATE = TARGET_N / TARGET_SQLITE_S  # ≈ 1,667 customers/s
TARGET_SPEEDUP = 1.7
PROFILE_CUSTOMERS = 1500

INDUSTRIES = ("manufacturing", "services", "engineering_project", "manufacturer", "retail_mall", "trading", "other")
INDUSTRY_W = (25, 20, 8, 12, 10, 15, 10)
SIZES = ("small", "medium", "large")
SIZE_W = (55, 30, 15)
# invoice amounts in yuan per company size: small accounts stay mostly < 10,000 outstanding (amount
# tier small, automated reminders), large ones often ≥ 100,000 (dedicated collector)
AMOUNT_RANGE = {"small": (300, 2500), "medium": (2000, 15000), "large": (8000, 60000)}
# payment habit → how old (days past due) the customer's unpaid invoices may get
HABITS = ("prompt", "slow", "late", "bad", "new")
HABIT_W = (35, 25, 18, 14, 8)
ARREARS = (
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    "none",
    "operating_pressure",
    "cash_flow_problem",
    "malicious_delay",
)
COLLECTORS = ("王芳", "李娜", "张伟", "刘洋", "陈静", "赵磊")


# ============================================================================ the book


def generate_book(n: int, as_of: dt.date, seed: int, batch_customers: int):
    """Yield dicts {table name: [row, ...]} of about `batch_customers` customers each; money in
    integer minor units (fen). Deterministic for (n, as_of, seed)."""
    rng = random.Random(seed)
    created = dt.datetime(2026, 1, 1, 9, 0, 0)
    batch = collections.defaultdict(list)
    for i in range(n):
        cid = f"C{i:07d}"
        size = rng.choices(SIZES, SIZE_W)[0]
        habit = rng.choices(HABITS, HABIT_W)[0]
        age = rng.randint(30, 170) if habit == "new" or rng.random() < 0.05 else rng.randint(200, 4000)
        score = (
            None
            if rng.random() < 0.2
            else max(
                0, min(100, int(rng.gauss({"prompt": 82, "slow": 70, "late": 60, "bad": 45, "new": 65}[habit], 12)))
            )
        )
        batch["customers"].append(
            {
                "id": cid,
                "name": f"Bench customer {i}",
                "type": "individual" if rng.random() < 0.15 else "enterprise",
                "industry": rng.choices(INDUSTRIES, INDUSTRY_W)[0],
                "region": "remote" if rng.random() < 0.4 else "local",
                "size": size,
                "since": as_of - dt.timedelta(days=age),
                "credit_score": score,
                "external_rating": None if rng.random() < 0.4 else rng.randint(20, 95),
                "collector": None if rng.random() < 0.5 else rng.choice(COLLECTORS),
                "last_reviewed_on": None if rng.random() < 0.3 else as_of - dt.timedelta(days=rng.randint(0, 400)),
                "arrears_reason": rng.choice(ARREARS) if habit in ("late", "bad") else None,
                "deal_type": rng.choices(("standard", "project", None), (80, 10, 10))[0],
                "tags": [],
                "last_as_of": None,
                "last_bucket": None,
                "last_score": None,
                "updated_at": created,
            }
        )
        # how many days past due an invoice may be and still be unpaid
        max_unpaid = {
            "prompt": 0,
            "slow": rng.randint(1, 30),
            "late": rng.randint(31, 90),
            "bad": rng.randint(91, 300),
            "new": 0,
        }[habit]
        lo, hi = AMOUNT_RANGE[size]
        terms = rng.choice((15, 30, 30, 30, 45, 60))
        count = rng.randint(8, 12)
        day = as_of - dt.timedelta(days=(40 if habit == "new" else rng.randint(180, 330)))
        step = max(3, (as_of - day).days // count)
        unpaid_overdue, open_ids = [], []
        for k in range(count):
            inv_id = f"I{i:07d}-{k:02d}"
            issued = day + dt.timedelta(days=k * step + rng.randint(0, step // 2))
            if issued > as_of:
                issued = as_of
            due = issued + dt.timedelta(days=terms)
            amount = rng.randint(lo, hi) * 100 + rng.choice((0, 0, 50, 99))
            batch["invoices"].append(
                {
                    "id": inv_id,
                    "customer_id": cid,
                    "amount_minor": amount,
                    "currency": "CNY",
                    "issued_on": issued,
                    "due_on": due,
                    "order_id": None,
                }
            )
            overdue = (as_of - due).days
            paid_on = None
            if overdue > max_unpaid:
                late = {
                    "prompt": rng.randint(-5, 0),
                    "slow": rng.randint(-2, 15),
                    "late": rng.randint(0, 40),
                    "bad": rng.randint(10, 80),
                    "new": rng.randint(-5, 2),
                }[habit]
                paid_on = min(as_of, max(issued, due + dt.timedelta(days=late)))
            elif overdue > 0 and rng.random() < 0.25:
                paid_on = due + dt.timedelta(days=rng.randint(0, overdue))  # some catch up
            elif overdue <= 0 and rng.random() < 0.08:
                paid_on = min(as_of, issued + dt.timedelta(days=rng.randint(0, terms)))  # early
            if paid_on is not None:
                batch["payments"].append(
                    {
                        "id": f"P{i:07d}-{k:02d}",
                        "customer_id": cid,
                        "invoice_id": inv_id,
                        "amount_minor": amount,
                        "paid_on": paid_on,
                    }
                )
                continue
            open_ids.append((inv_id, amount, issued, due))
            if overdue > 0:
                unpaid_overdue.append((inv_id, amount, issued, due))
                if rng.random() < 0.2:  # partial payment
                    batch["payments"].append(
                        {
                            "id": f"P{i:07d}-{k:02d}p",
                            "customer_id": cid,
                            "invoice_id": inv_id,
                            "amount_minor": amount * rng.randint(2, 6) // 10,
                            "paid_on": due + dt.timedelta(days=rng.randint(0, overdue)),
                        }
                    )
        if rng.random() < 0.05:  # money on account
            batch["payments"].append(
                {
                    "id": f"P{i:07d}-oa",
                    "customer_id": cid,
                    "invoice_id": None,
                    "amount_minor": rng.randint(100, 2000) * 100,
                    "paid_on": as_of - dt.timedelta(days=rng.randint(1, 60)),
                }
            )
        if unpaid_overdue:
            inv_id, amount, issued, due = unpaid_overdue[-1]
            r = rng.random()
            if r < 0.06:  # promise to pay, kept, pending or broken
                made = max(due, as_of - dt.timedelta(days=rng.randint(1, 20)))
                batch["promises"].append(
                    {
                        "id": f"PTP{i:07d}",
                        "customer_id": cid,
                        "invoice_id": inv_id,
                        "amount_minor": amount,
                        "made_on": made,
                        "promised_on": made + dt.timedelta(days=rng.randint(0, 14)),
                    }
                )
            elif r < 0.10:  # dispute, mostly still open
                opened = min(as_of, due + dt.timedelta(days=rng.randint(0, 10)))
                resolved = None if rng.random() < 0.8 else min(as_of, opened + dt.timedelta(days=5))
                batch["disputes"].append(
                    {
                        "id": f"DSP{i:07d}",
                        "customer_id": cid,
                        "invoice_id": inv_id,
                        "opened_on": opened,
                        "resolved_on": resolved,
                        "reason": "quantity",
                    }
                )
            elif r < 0.12:  # instalment plan over the oldest ones
                agreed = min(as_of, due + dt.timedelta(days=rng.randint(5, 20)))
                ids = [u[0] for u in unpaid_overdue[:2]]
                total = sum(u[1] for u in unpaid_overdue[:2])
                parts = 3
                inst = [
                    {
                        "due_on": (agreed + dt.timedelta(days=30 * (j + 1))).isoformat(),
                        "amount_minor": total // parts + (total % parts if j == parts - 1 else 0),
                    }
                    for j in range(parts)
                ]
                batch["instalment_plans"].append(
                    {
                        "id": f"IP{i:07d}",
                        "customer_id": cid,
                        "agreed_on": agreed,
                        "invoice_ids": ids,
                        "instalments": inst,
                    }
                )
        if open_ids and rng.random() < 0.03:  # credit note
            inv_id, amount, issued, due = open_ids[0]
            batch["credit_notes"].append(
                {
                    "id": f"CN{i:07d}",
                    "customer_id": cid,
                    "invoice_id": inv_id,
                    "amount_minor": amount * rng.randint(1, 3) // 10,
                    "issued_on": min(as_of, issued + dt.timedelta(days=rng.randint(1, 20))),
                }
            )
        if rng.random() < 0.03:  # held reservation
            batch["reservations"].append(
                {
                    "order_id": f"SO{i:07d}",
                    "customer_id": cid,
                    "amount_minor": rng.randint(lo, hi) * 100,
                    "status": "held",
                    "expires_on": as_of + dt.timedelta(days=rng.randint(1, 30)),
                    "decision_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                    "created_at": created,
                }
            )
        if len(batch["customers"]) >= batch_customers:
            yield batch
            batch = collections.defaultdict(list)
    if batch["customers"]:
        yield batch


TABLE_ORDER = (
    "customers",
    "invoices",
    "payments",
    "credit_notes",
    "promises",
    "disputes",
    "instalment_plans",
    "reservations",
)


def prior_actions(n: int, k: int, as_of: dt.date, seed: int, batch: int = 20_000):
    """k closed actions from earlier days (what weeks of sweeps leave in the table), spread evenly
    over the book's customers, in batches."""
    rng = random.Random(seed + 7)
    rows = []
    for j in range(k):
        i = j % n
        rows.append(
            {
                "customer_id": f"C{i:07d}",
                "invoice_id": f"I{i:07d}-00",
                "type": "email_reminder",
                "channel": "email",
                "owner": "automated",
                "stage": 1,
                "due_on": as_of - dt.timedelta(days=1 + j // n),
                "amount_minor": 100_00,
                "status": "closed",
                "outcome": "invoice_settled",
                "decision_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            }
        )
        if len(rows) >= batch:
            yield rows
            rows = []
    if rows:
        yield rows


def load_book(url: str, n: int, as_of: dt.date, seed: int, batch_customers: int, earlier_actions: int = 0) -> dict:
    """Migrate + publish the policy (create_app, once), then bulk-insert the book (and, with
    earlier_actions, that many closed actions from earlier days). Returns counts and timings."""
    from sqlalchemy import insert, text

    from api.http.app import create_app
    from api.store.tables import Base

    t0 = time.perf_counter()
    app = create_app({"DATABASE_URL": url, "POLICY_FILE": POLICY})
    engine = app.extensions["creditctl.engine"]
    t_app = time.perf_counter() - t0
    tables = {name: Base.metadata.tables[name] for name in TABLE_ORDER}
    counts = dict.fromkeys(TABLE_ORDER, 0)
    t0 = time.perf_counter()
    for batch in generate_book(n, as_of, seed, batch_customers):
        with engine.begin() as conn:
            for name in TABLE_ORDER:
                rows = batch.get(name)
                if rows:
                    conn.execute(insert(tables[name]), rows)
                    counts[name] += len(rows)
    if earlier_actions:
        counts["actions"] = 0
        for rows in prior_actions(n, earlier_actions, as_of, seed):
            with engine.begin() as conn:
                conn.execute(insert(Base.metadata.tables["actions"]), rows)
            counts["actions"] += len(rows)
    t_insert = time.perf_counter() - t0
    t0 = time.perf_counter()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    t_analyze = time.perf_counter() - t0
    engine.dispose()
    for m in app.extensions["creditctl"].registry._compiled.values():
        m.dispose()
    return {
        "counts": counts,
        "rows": sum(counts.values()),
        "app_s": t_app,
        "insert_s": t_insert,
        "analyze_s": t_analyze,
    }


# ============================================================================ backends


class Sqlite:
    label = "sqlite"

    def __init__(self, tmp: str):
        self.tmp = tmp
        self.master = None

    def fresh(self, name: str) -> str:
        path = os.path.join(self.tmp, f"{name}.sqlite3")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)
        return f"sqlite:///{path}"

    def make_master(self, name: str) -> str:
        self.master = self.fresh(name)
        return self.master

    def copy(self, name: str) -> str:
        url = self.fresh(name)
        shutil.copyfile(self.master[len("sqlite:///") :], url[len("sqlite:///") :])
        return url

    def size(self, url: str) -> int:
        return os.path.getsize(url[len("sqlite:///") :])

    def drop(self, url: str) -> None:
        path = url[len("sqlite:///") :]
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)

    def close(self) -> None:
        pass


class Postgres:
    label = "postgres"

    def __init__(self):
        self.prefix = f"creditctl_sweep_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.created: list[str] = []
        self.master = None

    def _admin(self, sql_text: str, *names: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL(sql_text).format(*[sql.Identifier(n) for n in names]))

    def _url(self, db: str) -> str:
        return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{db}"

    def make_master(self, name: str) -> str:
        db = f"{self.prefix}_{name}"
        self._admin("CREATE DATABASE {}", db)
        self.created.append(db)
        self.master = db
        return self._url(db)

    def copy(self, name: str) -> str:
        db = f"{self.prefix}_{name}"
        self._admin("CREATE DATABASE {} TEMPLATE {}", db, self.master)
        self.created.append(db)
        return self._url(db)

    def size(self, url: str) -> int:
        import psycopg

        with psycopg.connect(url, connect_timeout=5) as conn:
            return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]

    def drop(self, url: str) -> None:
        db = url.rsplit("/", 1)[1]
        try:
            self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", db)
            self.created.remove(db)
        except Exception as exc:  # noqa: BLE001
            print(f"  warning: could not drop database {db}: {exc}", file=sys.stderr)

    def close(self) -> None:
        for db in list(self.created):
            self.drop(self._url(db))


# ============================================================================ running processes


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far (all cores, from /proc/stat)."""
    try:
        with open("/proc/stat") as fh:
            parts = fh.readline().split()[1:]
        ticks = [int(x) for x in parts]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("GLIBC_TUNABLES", GLIBC_TUNABLES)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_processes(cmds: list[list[str]], tmp: str, tag: str) -> dict:
    """Start all commands at the same moment; wait for all. Per process: wall, CPU (rusage),
    peak RSS (rusage ru_maxrss), RSS samples, exit status, stdout."""
    procs = []
    cpu0 = machine_cpu()
    t0 = time.perf_counter()
    for k, cmd in enumerate(cmds):
        out = open(os.path.join(tmp, f"{tag}.{k}.out"), "w+b")
        err = open(os.path.join(tmp, f"{tag}.{k}.err"), "w+b")
        p = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=out, stderr=err)
        procs.append({"p": p, "out": out, "err": err, "samples": [], "cmd": cmd})

    def reap(rec):
        _, status, ru = os.wait4(rec["p"].pid, 0)
        rec["end"] = time.perf_counter()
        rec["p"].returncode = os.waitstatus_to_exitcode(status)
        rec["cpu"] = ru.ru_utime + ru.ru_stime
        rec["maxrss_mb"] = ru.ru_maxrss / 1024  # Linux: kilobytes

    threads = [threading.Thread(target=reap, args=(rec,), daemon=True) for rec in procs]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        now = time.perf_counter() - t0
        for rec in procs:
            if "end" not in rec:
                m = rss_mb(rec["p"].pid)
                if m is not None:
                    rec["samples"].append((now, m))
        time.sleep(0.5)
    wall = max(rec["end"] for rec in procs) - t0
    busy = machine_cpu() - cpu0
    results = []
    for rec in procs:
        rec["out"].seek(0)
        rec["err"].seek(0)
        stdout, stderr = rec["out"].read().decode(errors="replace"), rec["err"].read().decode(errors="replace")
        rec["out"].close()
        rec["err"].close()
        own = rec["end"] - t0
        samples = rec["samples"]
        early = [m for s, m in samples if s >= 0.25 * own]
        results.append(
            {
                "rc": rec["p"].returncode,
                "wall": own,
                "cpu": rec["cpu"],
                "maxrss_mb": rec["maxrss_mb"],
                "rss_quarter_mb": early[0] if early else None,
                "stdout": stdout,
                "stderr": stderr,
                "cmd": rec["cmd"],
            }
        )
    workers_cpu = sum(r["cpu"] for r in results)
    return {
        "wall": wall,
        "procs": results,
        "busy_cores": busy / wall if wall else 0.0,
        "other_cores": max(0.0, (busy - workers_cpu) / wall) if wall else 0.0,
    }


def last_json(stdout: str) -> dict | None:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                return json.loads(line)
    return None


def sweep_cmd(url: str, as_of: dt.date) -> list[str]:
    return [CREDITCTL, "sweep", "--as-of", as_of.isoformat(), "--database-url", url, "--policy", POLICY, "--quiet"]


def db_summary(url: str, as_of: dt.date) -> dict:
    """The run's summary (api.jobs.sweep.summary) plus the run's own duration and the aging buckets."""
    from sqlalchemy import func, select

    from api.jobs import sweep
    from api.store.tables import Customer, SweepRun
    from api.store.database import make_engine, make_sessionmaker
    from api.store.policy_store import PolicyRegistry
    from api.service.context import Context

    engine = make_engine(url)
    try:
        service = Context(make_sessionmaker(engine), PolicyRegistry())
        with service.tx() as s:
            run = (
                s.execute(select(SweepRun).where(SweepRun.as_of == as_of).order_by(SweepRun.started_at))
                .scalars()
                .first()
            )
            buckets = dict(s.execute(select(Customer.last_bucket, func.count()).group_by(Customer.last_bucket)).all())
            if run is None:
                return {"missing": True}
            run_s = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
            run_id = run.id
        out = sweep.summary(service, run_id)
        out["run_seconds"] = run_s
        out["buckets"] = {str(k): v for k, v in buckets.items()}
        return out
    finally:
        engine.dispose()


def plan_check(url: str, as_of: dt.date) -> dict:
    """Record the SQL one group's sweep step issues (api.jobs.sweep.process_group of GROUP_SIZE customers, in a
    new run the day after, on the swept copy) and ask the database for the plan of each SELECT / UPDATE /
    DELETE: any full scan of a table is a per-group cost that grows with that table."""
    from sqlalchemy import event, text

    from api.jobs import sweep
    from api.store.tables import SweepRun
    from api.store.database import make_engine, make_sessionmaker
    from api.store.policy_store import PolicyRegistry
    from api.service.context import Context

    engine = make_engine(url)
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if not executemany:
            seen.append((statement, parameters))

    try:
        service = Context(make_sessionmaker(engine), PolicyRegistry())
        day = as_of + dt.timedelta(days=1)
        run_id = sweep.start(service, day, "bench:plan")
        with service.tx() as s:
            run = s.get(SweepRun, run_id)
            s.expunge(run)
            cid = s.execute(
                text("SELECT customer_id FROM sweep_items ORDER BY customer_id LIMIT 1 OFFSET 7")
            ).scalar_one()
        sweep.process_group(service, run, [cid], sweep.LogNotifier())  # warm: compile the policy
        with service.tx() as s:
            group = list(
                s.execute(
                    text(
                        "SELECT DISTINCT customer_id FROM sweep_items WHERE customer_id > :c "
                        "ORDER BY customer_id LIMIT :n"
                    ),
                    {"c": cid, "n": sweep.GROUP_SIZE},
                ).scalars()
            )
        event.listen(engine, "before_cursor_execute", record)
        t0 = time.perf_counter()
        sweep.process_group(service, run, group, sweep.LogNotifier())
        step_ms = (time.perf_counter() - t0) * 1000
        event.remove(engine, "before_cursor_execute", record)
        scans, explained = [], 0
        sqlite = engine.dialect.name == "sqlite"
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            for statement, params in seen:
                head = statement.lstrip().split(None, 1)[0].upper()
                if head not in ("SELECT", "UPDATE", "DELETE") or statement.strip().upper() == "SELECT 1":
                    continue
                explained += 1
                cur.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, params)
                plan = [str(r[-1] if sqlite else r[0]) for r in cur.fetchall()]
                for line in plan:
                    # SQLite: "SCAN t [USING INDEX i]" reads all of t (or of its index); "SEARCH" looks up
                    m = re.match(r"\s*SCAN (\w+)", line) if sqlite else re.search(r"Seq Scan on (\w+)", line)
                    if m and m.group(1).upper() != "CONSTANT":
                        table = m.group(1)
                        cur.execute(f"SELECT count(*) FROM {table}")
                        rows = cur.fetchone()[0]
                        scans.append({"table": table, "rows": rows, "statement": " ".join(statement.split())[:160]})
            raw.rollback()
        finally:
            raw.close()
        return {
            "statements": len(seen),
            "explained": explained,
            "scans": scans,
            "step_ms": step_ms,
            "group": len(group),
        }
    finally:
        engine.dispose()


def sweep_run(backend, n: int, workers: int, as_of: dt.date, tmp: str) -> dict:
    url = backend.copy(f"n{n}_w{workers}")
    try:
        print(f"  sweep, {workers} worker(s) on a fresh copy …", flush=True)
        res = run_processes([sweep_cmd(url, as_of) for _ in range(workers)], tmp, f"{backend.label}.{n}.w{workers}")
        for k, p in enumerate(res["procs"]):
            if p["rc"] not in (0, 1):
                print(f"  worker {k} exited {p['rc']}: {p['stderr'][-2000:]}", file=sys.stderr)
            p["this_worker"] = (last_json(p["stdout"]) or {}).get("this_worker")
        res["summary"] = db_summary(url, as_of)
        res["db_bytes"] = backend.size(url)
        if workers == 1:
            try:
                res["plan"] = plan_check(url, as_of)
            except Exception as exc:  # noqa: BLE001 — a figure, not the benchmark
                res["plan"] = {"error": f"{exc.__class__.__name__}: {str(exc)[:200]}"}
        res["n"], res["workers"] = n, workers
        s = res["summary"]
        print(
            f"    {res['wall']:.1f} s wall, {n / res['wall']:,.0f} customers/s; processed {s.get('processed')} "
            f"errors {s.get('errors')} actions {s.get('actions_created')}; worker RSS peak "
            f"{', '.join('%.0f' % p['maxrss_mb'] for p in res['procs'])} MB; other cores {res['other_cores']:.2f}",
            flush=True,
        )
        return res
    finally:
        backend.drop(url)


def simulate_available() -> str | None:
    """None when `creditctl policy simulate --help` works, else why not."""
    try:
        r = subprocess.run(
            [CREDITCTL, "policy", "simulate", "--help"],
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"creditctl policy simulate --help failed: {exc}"
    return None if r.returncode == 0 else f"`creditctl policy simulate` not available (exit {r.returncode})"


def candidate_policy(tmp: str) -> tuple[str, str]:
    """policies.yaml with the medium-reputation limit lowered from 200,000 to 150,000."""
    with open(POLICY, encoding="utf-8") as fh:
        text = fh.read()
    changed = text.replace(
        'when: {field: reputation, eq: medium}\n      limit: "200000"',
        'when: {field: reputation, eq: medium}\n      limit: "150000"',
        1,
    )
    what = "credit.limit.medium 200,000 → 150,000" if changed != text else "identical to policies.yaml"
    path = os.path.join(tmp, "candidate.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(changed)
    return path, what


def simulate_run(backend, n: int, as_of: dt.date, tmp: str) -> dict:
    url = backend.copy(f"n{n}_sim")
    try:
        path, what = candidate_policy(tmp)
        out = os.path.join(tmp, f"sim.{backend.label}.{n}.json")
        print("  policy simulate on a fresh copy …", flush=True)
        cmd = [
            CREDITCTL,
            "policy",
            "simulate",
            path,
            "--as-of",
            as_of.isoformat(),
            "--database-url",
            url,
            "--format",
            "json",
            "--output",
            out,
        ]
        res = run_processes([cmd], tmp, f"{backend.label}.{n}.sim")
        p = res["procs"][0]
        summary = {}
        if p["rc"] == 0:
            with open(out, encoding="utf-8") as fh:
                head = fh.read(1 << 20)
            m = re.search(r'"summary": (\{.*?\}), "customers": \[', head, re.S)
            if m:
                with contextlib.suppress(ValueError):
                    summary = json.loads(m.group(1))
            report_bytes = os.path.getsize(out)
            os.unlink(out)
        else:
            report_bytes = 0
            print(f"    simulate exited {p['rc']}: {p['stderr'][-1500:]}", file=sys.stderr)
        res.update({"n": n, "candidate": what, "summary": summary, "report_bytes": report_bytes})
        print(
            f"    {res['wall']:.1f} s wall, {n / res['wall']:,.0f} customers/s; changed "
            f"{summary.get('customers_changed')}; RSS peak {p['maxrss_mb']:.0f} MB",
            flush=True,
        )
        return res
    finally:
        backend.drop(url)


# ============================================================================ profiling


def profile_worker_main(url: str, as_of: str, stop_after: int, out: str) -> int:
    """Hidden mode (--_profile-worker): one sweep worker as `creditctl sweep` runs it (create_app,
    start, work), with cProfile around work() only, stopping after `stop_after` customers."""
    from api.jobs import sweep
    from api.http.app import create_app

    app = create_app({"DATABASE_URL": url, "POLICY_FILE": POLICY})
    service = app.extensions["creditctl"]
    run_id = sweep.start(service, dt.date.fromisoformat(as_of), "bench:profile")
    prof = cProfile.Profile() if out != "-" else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    counts = sweep.work(service, run_id, stop_after=stop_after)
    if prof:
        prof.disable()
        prof.dump_stats(out)
    print(json.dumps({"counts": counts, "seconds": time.perf_counter() - t0}))
    return 0


def _short(file: str) -> str:
    for marker in ("site-packages/", ROOT + "/"):
        if marker in file:
            return file.split(marker, 1)[1]
    stdlib = re.search(r"lib/python3\.\d+/(.*)", file)
    return f"stdlib:{stdlib.group(1)}" if stdlib else file


AREAS = (  # (area, substrings of the short "file:function" text); first match wins (cProfile and py-spy)
    ("SQLAlchemy ORM", ("sqlalchemy/orm",)),
    ("SQLAlchemy Core (statement building, caching, compile, execution, result rows)", ("sqlalchemy/",)),
    ("database: psycopg / sqlite3", ("psycopg", "sqlite3", "_sqlite3")),
    ("marshmallow (engine.facts.load_case validation)", ("marshmallow",)),
    ("durable_rules", ("durable",)),
)
PROJECT_AREAS = (
    ("engine/", "engine/ (facts, evaluator, matcher, money, messages, decision JSON)"),
    ("rules/", "engine/ (facts, evaluator, matcher, money, messages, decision JSON)"),
    ("api/", "api/ (sweep, service, ledger, trail, policies)"),
)


def area_of(text: str) -> str:
    for area, keys in AREAS:
        if any(k in text for k in keys):
            return area
    for prefix, area in PROJECT_AREAS:
        if text.startswith(prefix):
            return area
    if "stdlib:" in text or "/lib/python3" in text or "<frozen" in text:
        return "stdlib (json, uuid, hashlib, decimal, logging …)"
    return "other (C builtins, interpreter)"


def cprofile_report(path: str, customers: int, top: int = 18) -> list[str]:
    stats = pstats.Stats(path, stream=io.StringIO())
    total = stats.total_tt
    by_area: dict[str, float] = collections.defaultdict(float)
    rows = []
    calls = collections.Counter()
    for (file, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        name = f"{_short(file)}:{line}({func})" if file != "~" else func
        by_area[area_of(f"{_short(file)}:{func}" if file != "~" else func)] += tottime
        rows.append((tottime, cumtime, ncalls, name))
        if file == "~":
            if func in ("<method 'execute' of 'sqlite3.Cursor' objects>",):
                calls["SQL statements (sqlite3 Cursor.execute)"] += ncalls
            if func in ("<method 'commit' of 'sqlite3.Connection' objects>",):
                calls["COMMITs"] += ncalls
        if func == "execute" and "psycopg/cursor.py" in file:
            calls["SQL statements (psycopg Cursor.execute)"] += ncalls
        if func == "commit" and "psycopg/connection.py" in file:
            calls["COMMITs"] += ncalls
        if func == "evaluate_loaded" and file.endswith("engine/evaluator.py"):
            calls["evaluations (evaluate_loaded)"] += ncalls
        if func == "begin" and file.endswith("sqlalchemy/orm/session.py"):
            calls["session transactions (Session.begin)"] += ncalls
    out = [
        f"cProfile of one worker, {customers} customers, {total:.2f} s under the profiler "
        f"({total / max(customers, 1) * 1000:.1f} ms per customer); own time by area:"
    ]
    for area, secs in sorted(by_area.items(), key=lambda kv: -kv[1]):
        if secs / total >= 0.005:
            out.append(f"  {secs / total:>6.1%}  {area}")
    if calls:
        out.append("per customer: " + ", ".join(f"{v / customers:.1f} {k}" for k, v in sorted(calls.items())))
    out.append("cumulative time of the sweep's steps (share of the profiled total):")
    wanted = [
        ("api/sweep.py", "process_group"),
        ("api/ledger.py", "load_cases"),
        ("engine/evaluator.py", "evaluate_loaded"),
        ("engine/facts.py", "check_case"),
        ("engine/facts.py", "build_facts"),
        ("engine/evaluator.py", "evaluate_facts"),
        ("api/trail.py", "chain"),
        ("api/trail.py", "insert_chained"),
        ("api/trail.py", "record_hash"),
        ("api/sweep.py", "_settle_day"),
        ("api/sweep.py", "_step_state"),
        ("api/policies.py", "active"),
        ("sqlalchemy/orm/session.py", "commit"),
        ("sqlalchemy/orm/session.py", "flush"),
        ("sqlalchemy/orm/session.py", "execute"),
        ("api/sweep.py", "_claim"),
    ]
    for suffix, func in wanted:
        hit = [
            (ct, nc)
            for (file, line, f), (_, nc, tt, ct, _) in stats.stats.items()
            if f == func and file.endswith(suffix)
        ]
        if hit:
            ct = sum(h[0] for h in hit)
            nc = sum(h[1] for h in hit)
            out.append(f"  {ct / total:>6.1%}  {suffix}:{func}  ({nc / customers:.1f} calls/customer)")
    out.append("top functions: own time, cumulative time, calls:")
    for tottime, cumtime, ncalls, name in sorted(rows, reverse=True)[:top]:
        out.append(f"  {tottime / total:>6.1%} {cumtime / total:>7.1%} {ncalls:>8}  {name}")
    return out


def pyspy_report(path: str, top: int = 15) -> list[str]:
    """py-spy --format raw: one collapsed stack per line, 'frame;frame;… count', leaf last. Only the
    samples inside api.jobs.sweep.work count (start-up: imports, migrations, policy compile, are left out)."""
    own = collections.Counter()
    inclusive = collections.Counter()
    by_area = collections.Counter()
    total = startup = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            if not any(f.startswith("work (") and "api/sweep.py" in f for f in frames):
                startup += n
                continue
            total += n
            own[_frame_name(frames[-1])] += n
            by_area[_frame_area(frames)] += n
            for name in {_frame_name(f) for f in frames}:
                inclusive[name] += n
    if not total:
        return ["py-spy: no samples inside api.jobs.sweep.work"]
    out = [
        f"py-spy --idle (waiting for the database counts), {total} samples inside sweep.work "
        f"({startup} more in start-up left out); by where the time goes:"
    ]
    for area, n in by_area.most_common():
        if n / total >= 0.005:
            out.append(f"  {n / total:>6.1%}  {area}")
    out.append("top frames: own samples, inclusive samples:")
    for name, n in own.most_common(top):
        out.append(f"  {n / total:>6.1%} {inclusive[name] / total:>7.1%}  {name}")
    steps = [
        ("process_group", "api/sweep.py"),
        ("load_cases", "api/ledger.py"),
        ("evaluate_loaded", "engine/evaluator.py"),
        ("build_facts", "engine/facts.py"),
        ("evaluate_facts", "engine/evaluator.py"),
        ("chain", "api/trail.py"),
        ("insert_chained", "api/trail.py"),
        ("canonical", "api/service.py"),
        ("_settle_day", "api/sweep.py"),
        ("active", "api/policies.py"),
        ("commit", "sqlalchemy/orm/session.py"),
        ("_claim", "api/sweep.py"),
    ]
    out.append("inclusive share of the sweep's steps:")
    for func, file in steps:
        n = sum(v for k, v in inclusive.items() if re.match(rf"^(\w+\.)?{func} \(", k) and file in k)
        if n:
            out.append(f"  {n / total:>6.1%}  {file}:{func}")
    return out


def _frame_name(frame: str) -> str:
    # "function (path/file.py:line)" → "function (short)"
    m = re.match(r"(.*) \((.*):(\d+)\)$", frame)
    if not m:
        return frame
    return f"{m.group(1)} ({_short(m.group(2))})"


DRIVER_CALLS = re.compile(r"^(\w+\.)?(do_execute|do_executemany|do_commit|do_rollback|do_execute_no_params|do_ping) \(")


def _frame_file(frame: str) -> str:
    """py-spy writes "function (path:line)" with paths relative to site-packages or the cwd."""
    m = re.match(r".* \((.*):\d+\)$", frame)
    return _short(m.group(1)) if m else frame


def _frame_area(frames: list[str]) -> str:
    """A sample's area: the database (driver code, or SQLAlchemy's do_execute/do_commit leaf, which
    is where sqlite3's C code runs), else the innermost frame of a known package."""
    leaf = frames[-1]
    if "psycopg" in _frame_file(leaf) or DRIVER_CALLS.match(leaf):
        return "database: driver, waiting for the server, sqlite3's C code (execute, commit)"
    for f in reversed(frames):
        a = area_of(_frame_file(f))
        if not a.startswith(("other", "stdlib")):
            return a
    return area_of(_frame_file(leaf))


def profile_worker(backend, n: int, as_of: dt.date, tmp: str, customers: int, use_pyspy: bool) -> dict:
    out: dict = {"backend": backend.label, "customers": customers, "lines": []}
    url = backend.copy(f"n{n}_prof")
    try:
        prof_path = os.path.join(tmp, f"{backend.label}.prof")
        print(f"  cProfile of one worker ({customers} customers) …", flush=True)
        cmd = [
            PYTHON,
            os.path.abspath(__file__),
            "--_profile-worker",
            url,
            as_of.isoformat(),
            str(customers),
            prof_path,
        ]
        r = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True)
        if r.returncode != 0:
            out["lines"].append(f"cProfile worker failed ({r.returncode}): {r.stderr[-1500:]}")
        else:
            info = last_json(r.stdout) or {}
            out["unprofiled_s"] = None
            out["profiled_s"] = info.get("seconds")
            out["lines"] += cprofile_report(prof_path, customers)
    finally:
        backend.drop(url)
    pyspy = shutil.which("py-spy", path=BIN + os.pathsep + os.environ.get("PATH", ""))
    if use_pyspy and pyspy:
        url = backend.copy(f"n{n}_spy")
        try:
            raw = os.path.join(tmp, f"{backend.label}.pyspy.txt")
            print(f"  py-spy of one worker ({customers} customers) …", flush=True)
            cmd = [
                pyspy,
                "record",
                "--idle",
                "--format",
                "raw",
                "--rate",
                "250",
                "--output",
                raw,
                "--",
                PYTHON,
                os.path.abspath(__file__),
                "--_profile-worker",
                url,
                as_of.isoformat(),
                str(customers),
                "-",
            ]
            r = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True)
            if r.returncode != 0 or not os.path.exists(raw):
                out["lines"].append(f"py-spy failed ({r.returncode}): {(r.stderr or r.stdout)[-800:]}")
            else:
                info = last_json(r.stdout) or {}
                out["unprofiled_s"] = info.get("seconds")
                out["lines"] += pyspy_report(raw)
        finally:
            backend.drop(url)
    elif use_pyspy:
        out["lines"].append("py-spy: not installed (pip install py-spy into .venv for a sampling profile)")
    return out


# ============================================================================ report


def fmt_rate(n, s):
    return f"{n / s:,.0f}/s" if s else "–"


def mb(v):
    return f"{v:,.0f} MB" if v is not None else "–"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def table_rows(results: list[dict], sizes: list[int]) -> list[tuple]:
    rows = [("backend", "N", "figure", "measured", "target")]
    biggest = max(sizes)
    for r in results:
        b = r["backend"]
        if "skipped" in r:
            rows.append((b, "", "skipped", r["skipped"], ""))
            continue
        for n, size in sorted(r["sizes"].items()):
            book = size["book"]
            c = book["counts"]
            rows.append(
                (
                    b,
                    f"{n:,}",
                    "book",
                    f"{c['customers']:,} customers, {c['invoices']:,} invoices, "
                    f"{c['payments']:,} payments, {sum(c[k] for k in TABLE_ORDER[3:]):,} other rows"
                    f"{', %s earlier closed actions' % format(c['actions'], ',') if c.get('actions') else ''}; "
                    f"{book['db_bytes'] / 2**20:,.0f} MB",
                    "",
                )
            )
            rows.append(
                (
                    b,
                    f"{n:,}",
                    "bulk insert (Core executemany)",
                    f"{book['insert_s']:.1f} s, {book['rows'] / book['insert_s']:,.0f} rows/s "
                    f"(+ create_app {book['app_s']:.1f} s{', ANALYZE %.1f s' % book['analyze_s'] if book['analyze_s'] > 0.05 else ''})",
                    "",
                )
            )
            base = None
            for w, run in sorted(size["runs"].items()):
                s = run["summary"]
                label = f"sweep, {w} worker{'s' if w > 1 else ''}"
                target = ""
                if b == "sqlite" and w == 1:
                    target = f"< {TARGET_SQLITE_S * n / TARGET_N:,.1f} s (≥ {TARGET_RATE:,.0f}/s)"
                rows.append(
                    (
                        b,
                        f"{n:,}",
                        f"{label}: wall / customers/s",
                        f"{run['wall']:.1f} s, {fmt_rate(n, run['wall'])} (in-run {fmt_rate(n, s.get('run_seconds'))})",
                        target + (f" {verdict(run['wall'] <= TARGET_SQLITE_S * n / TARGET_N)}" if target else ""),
                    )
                )
                procs = run["procs"]
                rows.append(
                    (
                        b,
                        f"{n:,}",
                        f"{label}: CPU, peak RSS",
                        "; ".join(
                            f"w{k}: {p['cpu']:.0f} s CPU ({p['cpu'] / n * 1000 * len(procs):.1f} ms/cust.), "
                            f"peak {mb(p['maxrss_mb'])} (at 25 %: {mb(p['rss_quarter_mb'])}), "
                            f"{(p.get('this_worker') or {}).get('done', '?')} done"
                            for k, p in enumerate(procs)
                        )
                        + f"; rest of machine {run['other_cores']:.2f} cores",
                        "",
                    )
                )
                rows.append(
                    (
                        b,
                        f"{n:,}",
                        f"{label}: outcome",
                        f"{s.get('processed'):,} processed, {s.get('errors')} errors, status {s.get('status')}, "
                        f"{s.get('actions_created'):,} actions; stages {s.get('customers_by_stage')}; "
                        f"buckets {s.get('buckets')}",
                        f"{n:,} processed",
                    )
                )
                pc = run.get("plan")
                if pc and "error" in pc:
                    rows.append((b, f"{n:,}", "one group's step: SQL plans", f"check failed: {pc['error']}", ""))
                elif pc:
                    big = [x for x in pc["scans"] if x["rows"] >= 1000]
                    rows.append(
                        (
                            b,
                            f"{n:,}",
                            "one group's step: SQL statements, full scans",
                            f"{pc['statements']} statements for {pc['group']} customers ({pc['explained']} "
                            "SELECT/UPDATE/DELETE explained); "
                            + (
                                "full scans: "
                                + "; ".join(f"{x['table']} ({x['rows']:,} rows): {x['statement']}" for x in big)
                                if big
                                else "no full scan of a table ≥ 1,000 rows"
                            ),
                            "no full scans",
                        )
                    )
                if w == 1:
                    base = run["wall"]
                elif base:
                    ratio = base / run["wall"]
                    rows.append(
                        (
                            b,
                            f"{n:,}",
                            f"speed-up {w} workers vs 1",
                            f"{ratio:.2f}×",
                            f"≥ {TARGET_SPEEDUP}× {verdict(ratio >= TARGET_SPEEDUP)}",
                        )
                    )
            sim = size.get("simulate")
            if sim and "skipped" in sim:
                rows.append((b, f"{n:,}", "policy simulate", sim["skipped"], ""))
            elif sim:
                p = sim["procs"][0]
                sm = sim["summary"]
                rows.append(
                    (
                        b,
                        f"{n:,}",
                        "policy simulate: wall / customers/s",
                        f"{sim['wall']:.1f} s, {fmt_rate(n, sim['wall'])}; {p['cpu']:.0f} s CPU, peak "
                        f"{mb(p['maxrss_mb'])} (at 25 %: {mb(p['rss_quarter_mb'])}); "
                        f"{sm.get('customers_changed', '?'):,} of {sm.get('customers', '?'):,} changed "
                        f"({sim['candidate']}); rest of machine {sim['other_cores']:.2f} cores",
                        "",
                    )
                )
        # extrapolation
        if biggest < TARGET_N and biggest in r["sizes"]:
            size = r["sizes"][biggest]
            for w, run in sorted(size["runs"].items()):
                per = run["wall"] / biggest
                est = per * TARGET_N
                target = (
                    f"< {TARGET_SQLITE_S:.0f} s {verdict(est <= TARGET_SQLITE_S)}" if b == "sqlite" and w == 1 else ""
                )
                rows.append(
                    (
                        b,
                        "100,000",
                        f"EXTRAPOLATED sweep, {w} worker(s)",
                        f"≈ {est / 60:,.1f} min ({est:,.0f} s) at the {biggest:,} rate",
                        target,
                    )
                )
            if size.get("simulate") and "procs" in size["simulate"]:
                est = size["simulate"]["wall"] / biggest * TARGET_N
                rows.append((b, "100,000", "EXTRAPOLATED policy simulate", f"≈ {est / 60:,.1f} min ({est:,.0f} s)", ""))
            if not size["book"]["counts"].get("actions"):
                est = size["book"]["insert_s"] / biggest * TARGET_N
                rows.append((b, "100,000", "EXTRAPOLATED bulk insert", f"≈ {est:,.0f} s", ""))
    return rows


def render(rows) -> str:
    widths = [min(60, max(len(str(row[i])) for row in rows)) for i in range(len(rows[0]))]
    out = []
    for k, row in enumerate(rows):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown(results, sizes, args, profiles, started: str, load: tuple, code_note: str = "") -> str:
    rows = table_rows(results, sizes)
    lines = [
        "\n## Collections sweep\n",
        f"`make bench-sweep` (bench/sweep_bench.py --customers {','.join(map(str, sizes))}), run {started}, "
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs shared with "
        f"other sessions (load average {load[0]:.2f} at start, {load[1]:.2f} at the end), seed {args.seed}, "
        f"as of {args.as_of}. Each run on a fresh copy of the book; wall time includes each process's "
        f'start-up; "in-run" is the sweep run\'s own started_at → finished_at. {code_note}.\n',
        "| backend | N | figure | measured | target |",
        "|---|---|---|---|---|",
    ]
    for row in rows[1:]:
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in row) + " |")
    for prof in profiles:
        lines.append(
            f"\nProfile of one {prof['backend']} sweep worker (first {prof['customers']:,} customers "
            f"of the {max(sizes):,} book):\n"
        )
        lines.append("```")
        lines += prof["lines"]
        lines.append("```")
    return "\n".join(lines) + "\n"


# ============================================================================ main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--customers",
        default=str(TARGET_N),
        help="book size(s), comma list (default 100000 → ~1M invoices); e.g. 10000,20000",
    )
    p.add_argument("--backends", default="sqlite,postgres", help="comma list of sqlite, postgres")
    p.add_argument("--pg-workers", default="1,2", help="worker counts on PostgreSQL (comma list)")
    p.add_argument("--sqlite-workers", default="1", help="worker counts on SQLite (comma list)")
    p.add_argument("--as-of", default=AS_OF.isoformat())
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--batch", type=int, default=2000, help="customers per insert batch (~10× as many invoices)")
    p.add_argument(
        "--earlier-actions",
        type=int,
        default=0,
        metavar="K",
        help="also insert K closed actions from earlier days (the table after weeks of sweeps)",
    )
    p.add_argument("--no-simulate", action="store_true")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--no-pyspy", action="store_true", help="cProfile only, even when py-spy is installed")
    p.add_argument("--profile-customers", type=int, default=PROFILE_CUSTOMERS)
    p.add_argument("--append-readme", metavar="FILE", help="append the figures as markdown to FILE")
    p.add_argument("--_profile-worker", nargs=4, dest="profile_worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.profile_worker:
        return args
    args.sizes = sorted({int(c.replace("_", "")) for c in args.customers.split(",") if c.strip()})
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.pg_workers = sorted({int(w) for w in args.pg_workers.split(",") if w.strip()})
    args.sqlite_workers = sorted({int(w) for w in args.sqlite_workers.split(",") if w.strip()})
    args.as_of_date = dt.date.fromisoformat(args.as_of)
    return args


def code_fingerprint() -> str:
    """A hash of the code under test (api/, engine/, rules/, policies.yaml): others edit it while
    benchmarks run, so a run reports whether it changed under it."""
    import hashlib

    h = hashlib.sha256()
    for folder in ("api", "engine", "rules"):
        for dirpath, _, files in sorted(os.walk(os.path.join(ROOT, folder))):
            for name in sorted(files):
                if name.endswith((".py", ".yaml")):
                    with open(os.path.join(dirpath, name), "rb") as fh:
                        h.update(name.encode() + fh.read())
    with open(POLICY, "rb") as fh:
        h.update(fh.read())
    return h.hexdigest()[:12]


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def bench_backend(backend, args, tmp: str, sim_why: str | None, profiles: list) -> dict:
    result = {"backend": backend.label, "sizes": {}}
    workers = args.sqlite_workers if backend.label == "sqlite" else args.pg_workers
    for n in args.sizes:
        print(f"\n== {backend.label}, N = {n:,}: generating the book …", flush=True)
        url = backend.make_master(f"book{n}")
        book = load_book(url, n, args.as_of_date, args.seed, args.batch, args.earlier_actions)
        book["db_bytes"] = backend.size(url)
        print(
            f"  {book['rows']:,} rows in {book['insert_s']:.1f} s ({book['rows'] / book['insert_s']:,.0f} rows/s), "
            f"{book['db_bytes'] / 2**20:,.0f} MB",
            flush=True,
        )
        size = {"book": book, "runs": {}}
        for w in workers:
            size["runs"][w] = sweep_run(backend, n, w, args.as_of_date, tmp)
        if not args.no_simulate:
            size["simulate"] = {"skipped": sim_why} if sim_why else simulate_run(backend, n, args.as_of_date, tmp)
        if not args.no_profile and n == max(args.sizes):
            profiles.append(
                profile_worker(backend, n, args.as_of_date, tmp, min(args.profile_customers, n), not args.no_pyspy)
            )
        result["sizes"][n] = size
        backend.drop(url)
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.profile_worker:
        return profile_worker_main(
            args.profile_worker[0], args.profile_worker[1], int(args.profile_worker[2]), args.profile_worker[3]
        )
    os.environ.setdefault("GLIBC_TUNABLES", GLIBC_TUNABLES)
    signal.signal(signal.SIGTERM, _interrupt)
    started = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    load0 = os.getloadavg()[0]
    code0 = code_fingerprint()
    print(
        f"creditctl sweep bench · Python {platform.python_version()} · {os.cpu_count()} CPUs · seed {args.seed} · "
        f"as of {args.as_of} · N = {', '.join(f'{n:,}' for n in args.sizes)} · load average {load0:.2f} · "
        f"code {code0}"
    )
    sim_why = None if args.no_simulate else simulate_available()
    if sim_why:
        print(f"policy simulate: skipped — {sim_why}")
    results, profiles = [], []
    tmp = tempfile.mkdtemp(prefix="creditctl-sweep-bench-")
    t_all = time.perf_counter()
    try:
        for name in args.backends:
            if name == "sqlite":
                backend = Sqlite(tmp)
            elif name == "postgres":
                why = pg_reachable(PG_ADMIN_URL, PG_HOST, PG_PORT)
                if why:
                    print(f"\n== postgres: skipped — {why}")
                    results.append({"backend": "postgres", "skipped": why})
                    continue
                backend = Postgres()
            else:
                raise SystemExit(f"unknown backend {name!r}")
            try:
                results.append(bench_backend(backend, args, tmp, sim_why, profiles))
            finally:
                backend.close()
    except KeyboardInterrupt:
        print("\ninterrupted; databases dropped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = os.getloadavg()[0]
    code1 = code_fingerprint()
    code_note = (
        f"code {code0} unchanged during the run"
        if code1 == code0
        else f"WARNING: the code under test changed during the run ({code0} → {code1}); runs mix versions"
    )
    print(f"\n{code_note}")
    print(f"\nsweep benchmark, {time.perf_counter() - t_all:,.0f} s in all; load average {load0:.2f} → {load1:.2f}\n")
    print(render(table_rows(results, args.sizes)))
    for prof in profiles:
        print(f"\nprofile of one {prof['backend']} sweep worker:")
        print("\n".join(prof["lines"]))
    if args.append_readme:
        with open(args.append_readme, "a", encoding="utf-8") as fh:
            fh.write(markdown(results, args.sizes, args, profiles, started, (load0, load1), code_note))
        print(f"\nappended to {args.append_readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
