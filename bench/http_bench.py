"""HTTP benchmark for POST /v1/credit-checks against a real `creditctl serve` (gunicorn, 2 workers).

For each backend (a fresh SQLite file in a temp dir; and a fresh PostgreSQL database when
127.0.0.1:5432 answers) it:

  1. creates API keys with `creditctl keys create` against the same DATABASE_URL,
  2. starts `creditctl serve` (gunicorn, --workers 2) on 127.0.0.1 on a free port,
  3. seeds a few hundred customers through the API (PUT /v1/customers/{id} and
     POST /v1/events invoice_issued, backoffice key),
  4. drives POST /v1/credit-checks (sales key) from a SEPARATE load-generator process
     (http.client, one connection per client, reused whenever the server keeps it open —
     gunicorn's sync workers close after every response, so in practice each request is a
     new loopback connection):
       a) closed loop: maximum throughput with N concurrent clients (a few N),
       b) open loop: latency at a fixed offered rate (200 req/s for ~10 s); latency is measured
          from each request's *scheduled* send time, so queueing behind a slow server counts,
  5. confirms the trail: counts credit_check decisions in the database, reads a few back via
     GET /v1/decisions/{id} (controller key) and compares with the 201s the load generator saw,
  6. stops the server (SIGTERM, then SIGKILL of its process group if it hangs) — also on errors.

Prints a table of figures with the targets beside them (>= 1,000 req/s on 2 cores; p99 < 10 ms at
200 req/s). Figures only: nothing here asserts.

    make bench-http                                   # both backends if PostgreSQL is up
    .venv/bin/python bench/http_bench.py --backends sqlite --clients 1,4,16
    .venv/bin/python bench/http_bench.py --profile    # also py-spy one worker (pip install py-spy)
    .venv/bin/python bench/http_bench.py --append-readme bench/README.md
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import datetime as dt
import http.client
import itertools
import json
import multiprocessing
import os
import platform
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from pgcheck import pg_reachable  # bench/pgcheck.py, beside this script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"
# the Makefile exports this for durable_rules' C core; set it here too when run directly
GLIBC_TUNABLES = "glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=268435456"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_RPS = 1000
TARGET_P99_MS = 10.0

INDUSTRIES = ["manufacturing", "services", "engineering_project", "manufacturer", "retail_mall", "trading", "other"]


# ============================================================================ load generator
# Everything in this section runs inside the separate load-generator process.

_OUTCOME = re.compile(rb'"outcome": "([a-z_]+)"')
_DECISION = re.compile(rb'"decision_id": "([0-9a-f]+)"')


class _Client:
    """One HTTP/1.1 client: reuses its connection when the server allows, reconnects otherwise."""

    def __init__(self, port: int, key: str):
        self.port = port
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                        "Accept": "application/json"}
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            self.conn.request("POST", path, body=body, headers=self.headers)
            resp = self.conn.getresponse()
            data = resp.read()
            return resp.status, data
        except (OSError, http.client.HTTPException):
            self.conn.close()                      # next request reconnects
            raise

    def close(self):
        self.conn.close()


def _body(rng: random.Random, customers: list[str], order_id: str) -> bytes:
    amount = f"{rng.randint(1_000, 250_000)}.{rng.randint(0, 99):02d}"
    return (f'{{"customer_id": "{rng.choice(customers)}", "order_id": "{order_id}", '
            f'"amount": "{amount}", "currency": "CNY"}}').encode()


class _Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: list[float] = []      # seconds, successful (201) requests only
        self.service: list[float] = []        # open loop: from actual send, not schedule
        self.statuses: collections.Counter = collections.Counter()
        self.outcomes: collections.Counter = collections.Counter()
        self.errors: collections.Counter = collections.Counter()
        self.sample_ids: list[str] = []
        self.first_bad: str | None = None

    def record(self, status: int, data: bytes, latency: float, service: float | None = None):
        with self.lock:
            self.statuses[status] += 1
            if status == 201:
                self.latencies.append(latency)
                if service is not None:
                    self.service.append(service)
                m = _OUTCOME.search(data)
                self.outcomes[m.group(1).decode() if m else "?"] += 1
                if len(self.sample_ids) < 20 and (m := _DECISION.search(data)):
                    self.sample_ids.append(m.group(1).decode())
            elif self.first_bad is None:
                self.first_bad = f"HTTP {status}: {data[:300].decode('utf-8', 'replace')}"

    def error(self, exc: BaseException):
        with self.lock:
            self.errors[exc.__class__.__name__] += 1
            if self.first_bad is None:
                self.first_bad = f"{exc.__class__.__name__}: {exc}"

    def result(self, **extra) -> dict:
        return {"latencies": self.latencies, "service": self.service, "statuses": dict(self.statuses),
                "outcomes": dict(self.outcomes), "errors": dict(self.errors), "sample_ids": self.sample_ids,
                "first_bad": self.first_bad, "ok": self.statuses.get(201, 0), **extra}


def loadgen_closed(port: int, key: str, customers: list[str], clients: int, duration: float,
                   max_requests: int, tag: str, seed: int) -> dict:
    """N clients, each sending its next request as soon as the previous one answers."""
    tally = _Tally()
    budget = itertools.count()                 # next() is atomic under the GIL
    start_gate = threading.Barrier(clients + 1)
    deadline = [0.0]
    ends: list[float] = []

    def client(n: int):
        rng = random.Random(seed * 1000 + n)
        c = _Client(port, key)
        start_gate.wait()
        i = 0
        try:
            while time.perf_counter() < deadline[0] and next(budget) < max_requests:
                i += 1
                body = _body(rng, customers, f"{tag}-{n}-{i}")
                t0 = time.perf_counter()
                try:
                    status, data = c.post("/v1/credit-checks", body)
                except (OSError, http.client.HTTPException) as exc:
                    tally.error(exc)
                    continue
                tally.record(status, data, time.perf_counter() - t0)
        finally:
            c.close()
            ends.append(time.perf_counter())

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    cpu0 = time.process_time()
    deadline[0] = time.perf_counter() + duration
    t_start = time.perf_counter()
    start_gate.wait()
    for t in threads:
        t.join(duration + 60)
    elapsed = (max(ends) if ends else time.perf_counter()) - t_start
    return tally.result(elapsed=elapsed, clients=clients, loadgen_cpu=time.process_time() - cpu0)


def loadgen_open(port: int, key: str, customers: list[str], rate: float, duration: float, pool: int,
                 drain: float, tag: str, seed: int) -> dict:
    """Open loop: request i is due at start + i/rate whatever happened to the earlier ones."""
    tally = _Tally()
    total = int(rate * duration)
    tickets: queue.Queue = queue.Queue()
    rng = random.Random(seed)
    bodies = [_body(rng, customers, f"{tag}-{i}") for i in range(total)]
    late_sends = [0]
    ends: list[float] = []

    def worker():
        c = _Client(port, key)
        try:
            while (item := tickets.get()) is not None:
                i, due = item
                sent = time.perf_counter()
                if sent - due > 0.001:
                    late_sends[0] += 1
                try:
                    status, data = c.post("/v1/credit-checks", bodies[i])
                except (OSError, http.client.HTTPException) as exc:
                    tally.error(exc)
                    continue
                end = time.perf_counter()
                tally.record(status, data, end - due, end - sent)
                ends.append(end)
        finally:
            c.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(pool)]
    for t in threads:
        t.start()
    cpu0 = time.process_time()
    start = time.perf_counter() + 0.1
    for i in range(total):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        tickets.put((i, due))
    for _ in threads:
        tickets.put(None)
    stop_by = time.perf_counter() + drain
    for t in threads:
        t.join(max(0.0, stop_by - time.perf_counter()))
    unfinished = sum(t.is_alive() for t in threads)
    elapsed = (max(ends) if ends else time.perf_counter()) - start
    return tally.result(elapsed=elapsed, offered=total, rate=rate, unfinished_clients=unfinished,
                        late_sends=late_sends[0], loadgen_cpu=time.process_time() - cpu0)


# ============================================================================ server handling

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def creditctl_cmd() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "creditctl")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "api.cli"]


def server_env() -> dict:
    env = dict(os.environ)
    env.setdefault("GLIBC_TUNABLES", GLIBC_TUNABLES)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("DATABASE_URL", None)              # always passed explicitly
    return env


def create_key(url: str, name: str, role: str, policy: str) -> str:
    out = subprocess.run(creditctl_cmd() + ["keys", "create", name, "--role", role, "--database-url", url,
                                            "--policy", policy],
                         cwd=ROOT, env=server_env(), capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"creditctl keys create {name} failed: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout.strip().splitlines()[-1]


class Server:
    """`creditctl serve` in its own session; stop() is safe to call more than once."""

    def __init__(self, url: str, policy: str, workers: int, logdir: str):
        self.url, self.policy, self.workers = url, policy, workers
        self.port = free_port()
        self.log_path = os.path.join(logdir, f"server-{self.port}.log")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> None:
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            creditctl_cmd() + ["serve", "--host", HOST, "--port", str(self.port), "--workers", str(self.workers),
                               "--database-url", self.url, "--policy", self.policy],
            cwd=ROOT, env=server_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if self.proc.poll() is not None:
                raise RuntimeError(f"creditctl serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, _ = http_json("GET", self.port, "/healthz", timeout=2)
                if status == 200 and len(self.worker_pids()) >= self.workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"creditctl serve did not become healthy in {timeout:.0f} s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        return sorted(children_of(self.proc.pid))

    def stop(self, timeout: float = 30) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)          # gunicorn: graceful stop of master + workers
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)   # its own session: only what we started
                proc.wait(10)
        # a worker outliving its master would hold the port: make sure the group is gone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, 0)
            time.sleep(0.5)
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-n:])
        except OSError:
            return "(no log)"


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    kids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU time of the given processes (Linux /proc)."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def busy_cpu_seconds() -> float:
    """CPU seconds spent by the whole machine, all processes (Linux /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)          # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def db_backend_pids(url: str) -> list[int]:
    """PostgreSQL backends serving our database (their process title names it)."""
    if not url.startswith("postgresql://"):
        return []
    name = url.rsplit("/", 1)[1]
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if f" {name} ".encode() in fh.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


class CpuMeter:
    """CPU used during one phase: server workers, PostgreSQL backends, the load generator, everything."""

    def __init__(self, server: "Server", url: str, loadgen_pid: int | None):
        self.server, self.url, self.loadgen_pid = server, url, loadgen_pid

    def _sample(self):
        workers = self.server.worker_pids()
        db = db_backend_pids(self.url)
        return {"workers": workers, "db": db, "t": time.perf_counter(), "server": cpu_seconds(workers),
                "dbcpu": cpu_seconds(db), "loadgen": cpu_seconds([self.loadgen_pid] if self.loadgen_pid else []),
                "busy": busy_cpu_seconds()}

    def __enter__(self):
        self.before = self._sample()
        return self

    def __exit__(self, *exc):
        a = self.before
        # measure the same processes as before (a backend may have connected meanwhile: count it from 0)
        workers, db = a["workers"], sorted(set(a["db"]) | set(db_backend_pids(self.url)))
        wall = time.perf_counter() - a["t"]
        server = cpu_seconds(workers) - a["server"]
        dbcpu = cpu_seconds(db) - a["dbcpu"]
        loadgen = cpu_seconds([self.loadgen_pid] if self.loadgen_pid else []) - a["loadgen"]
        busy = busy_cpu_seconds() - a["busy"]
        self.result = {"wall": wall, "server_cpu": server, "db_cpu": dbcpu, "loadgen_cpu": loadgen,
                       "other_cpu": max(0.0, busy - server - dbcpu - loadgen), "busy_cpu": busy}
        return False


def cores(r: dict) -> str:
    c = r["cpu"]
    w = c["wall"] or 1
    db = f" + PostgreSQL {c['db_cpu'] / w:.2f}" if c["db_cpu"] else ""
    return (f"CPU cores used: workers {c['server_cpu'] / w:.2f}{db}, load generator {c['loadgen_cpu'] / w:.2f}, "
            f"rest of the machine {c['other_cpu'] / w:.2f}")


def http_json(method: str, port: int, path: str, key: str | None = None, body=None, timeout: float = 30):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw.decode("utf-8", "replace")
    finally:
        conn.close()


# ============================================================================ database backends

@contextlib.contextmanager
def sqlite_backend(tmp: str):
    path = os.path.join(tmp, "creditctl-bench.sqlite3")
    yield f"sqlite:///{path}"


@contextlib.contextmanager
def postgres_backend():
    import psycopg
    from psycopg import sql
    name = f"creditctl_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        try:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        except Exception as exc:   # noqa: BLE001
            print(f"  warning: could not drop database {name}: {exc}", file=sys.stderr)


def count_decisions(url: str, kind: str) -> int:
    if url.startswith("sqlite:///"):
        import sqlite3
        with contextlib.closing(sqlite3.connect(url[len("sqlite:///"):], timeout=30)) as conn:
            return conn.execute("SELECT count(*) FROM decisions WHERE kind = ?", (kind,)).fetchone()[0]
    import psycopg
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute("SELECT count(*) FROM decisions WHERE kind = %s", (kind,)).fetchone()[0]


# ============================================================================ seeding

def make_book(n: int, today: dt.date, seed: int) -> list[dict]:
    """n customers with 1-3 invoices each: a mix of reputations, new customers and overdue debt,
    so credit checks come out approve / approve_with_conditions / refer / reject."""
    rng = random.Random(seed)
    book = []
    for i in range(n):
        since = today - dt.timedelta(days=rng.choice([rng.randint(30, 170), rng.randint(400, 3000),
                                                       rng.randint(400, 3000)]))
        customer = {"name": f"Bench customer {i}", "type": rng.choice(["enterprise"] * 4 + ["individual"]),
                    "industry": rng.choice(INDUSTRIES), "region": rng.choice(["local", "remote"]),
                    "size": rng.choice(["large", "medium", "small"]), "since": since.isoformat(),
                    "credit_score": rng.choice([None, rng.randint(35, 98), rng.randint(60, 98)]),
                    "external_rating": rng.choice([None, rng.randint(30, 95)])}
        invoices = []
        for k in range(rng.randint(1, 3)):
            issued = max(since, today - dt.timedelta(days=rng.choice([rng.randint(0, 40), rng.randint(0, 40),
                                                                      rng.randint(41, 160)])))
            amount = f"{rng.randint(500, 90_000)}.{rng.randint(0, 99):02d}"
            invoices.append({"id": f"HB-{i:04d}-INV-{k + 1}", "amount": amount, "currency": "CNY",
                             "issued_on": issued.isoformat(), "due_on": (issued + dt.timedelta(days=30)).isoformat()})
        book.append({"id": f"HB-{i:04d}", "customer": customer, "invoices": invoices})
    return book


def seed(port: int, key: str, book: list[dict], threads: int = 6, file_key: str | None = None
         ) -> tuple[int, int, float]:
    def one(case):
        # the credit file by a controller: credit_score is a decision field (back office may not set it)
        status, body = http_json("PUT", port, f"/v1/customers/{case['id']}", file_key or key, case["customer"])
        if status not in (200, 201):
            raise RuntimeError(f"PUT /v1/customers/{case['id']} → {status}: {body}")
        for k, inv in enumerate(sorted(case["invoices"], key=lambda v: v["issued_on"])):
            event = {"event_id": f"{case['id']}-ev-{k}", "type": "invoice_issued", "customer_id": case["id"],
                     "as_of": inv["issued_on"], "data": inv}
            status, body = http_json("POST", port, "/v1/events", key, event)
            if status not in (200, 201):
                raise RuntimeError(f"POST /v1/events {event['event_id']} → {status}: {body}")
        return len(case["invoices"])

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        events = sum(pool.map(one, book))
    return len(book), events, time.perf_counter() - t0


# ============================================================================ profiling

def find_py_spy() -> str | None:
    local = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return local if os.path.exists(local) else shutil.which("py-spy")


def start_profile(pid: int, duration: float, out: str, native: bool, idle: bool) -> subprocess.Popen | None:
    exe = find_py_spy()
    if exe is None:
        print("  (--profile: py-spy not found; `.venv/bin/pip install py-spy`)", file=sys.stderr)
        return None
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(duration))), "--rate", "250",
           "--format", "raw", "--output", out]
    if native:
        cmd.append("--native")            # native stacks need the target paused while sampled
    else:
        cmd.append("--nonblocking")
    if idle:
        cmd.append("--idle")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def summarize_profile(path: str, top: int = 15) -> list[str]:
    """Collapsed stacks (py-spy --format raw) → top functions by self and by inclusive samples."""
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [_short_frame(f) for f in stack.split(";")]
            own[frames[-1]] += n
            for f in set(frames):
                incl[f] += n
    if not total:
        return ["  (no samples)"]
    lines = [f"  {total} samples of one busy worker", "  top self time:"]
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("  top inclusive time (frames below the WSGI/Flask/gunicorn plumbing):")
    plumbing = ("gunicorn/", "flask/app.py", "werkzeug/", "<module>", "api/server.py", "api/cli.py",
                "(threading.py", "(cli.py", "(__init__.py")
    shown = 0
    for f, n in incl.most_common():
        if any(p in f for p in plumbing) or 100 * n / total > 99.5:
            continue
        lines.append(f"    {100 * n / total:5.1f}%  {f}")
        shown += 1
        if shown >= top + 10:
            break
    return lines


def _short_frame(frame: str) -> str:
    # "func (path/to/site-packages/pkg/mod.py:123)" → "func (pkg/mod.py)"
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    for marker in ("site-packages/", ROOT + "/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


# ============================================================================ the run

def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1000:.1f} ms"


def run_backend(label: str, url: str, args, tmp: str, executor) -> dict:
    policy = os.path.abspath(args.policy)
    print(f"\n== {label}: {url}")
    keys = {role: create_key(url, f"bench-{role}", role, policy) for role in ("sales", "backoffice", "controller")}
    server = Server(url, policy, args.workers, tmp)
    res: dict = {"label": label, "url": url, "levels": []}
    try:
        server.start()
        workers = server.worker_pids()
        print(f"  creditctl serve: gunicorn master {server.proc.pid}, workers {workers}, port {server.port}")

        book = make_book(args.customers, dt.date.today(), args.seed)
        n_cust, n_events, secs = seed(server.port, keys["backoffice"], book, file_key=keys["controller"])
        res["seed"] = (n_cust, n_events, secs)
        print(f"  seeded {n_cust} customers + {n_events} invoice_issued events through the API in {secs:.1f} s")
        customers = [c["id"] for c in book]
        ok_total = 0
        sample_ids: list[str] = []

        loadgen_pid = executor.submit(os.getpid).result()
        warm = executor.submit(loadgen_closed, server.port, keys["sales"], customers, 2, 3.0, args.warmup,
                               f"{label}-warm", args.seed).result()
        ok_total += warm["ok"]
        print(f"  warm-up: {warm['ok']} checks")

        profile = None
        for clients in args.clients:
            last = clients == max(args.clients)
            wpids = server.worker_pids()
            if args.profile and last and wpids:
                profile = (os.path.join(tmp, f"profile-{label}.txt"),)
                profile += (start_profile(wpids[0], args.duration, profile[0], args.native, args.idle),)
            with CpuMeter(server, url, loadgen_pid) as meter:
                r = executor.submit(loadgen_closed, server.port, keys["sales"], customers, clients, args.duration,
                                    args.max_requests, f"{label}-c{clients}", args.seed + clients).result()
            r["cpu"] = meter.result
            r["server_cpu"] = meter.result["server_cpu"]
            ok_total += r["ok"]
            sample_ids += r["sample_ids"][:3]
            res["levels"].append(r)
            rps = r["ok"] / r["elapsed"] if r["elapsed"] else 0
            print(f"  closed loop {clients:>3} clients: {rps:7.1f} req/s  ok {r['ok']}  "
                  f"p50 {ms(pct(r['latencies'], 50))}  p99 {ms(pct(r['latencies'], 99))}"
                  + (f"  errors {r['errors']} statuses {r['statuses']}" if r["errors"] or len(r["statuses"]) > 1
                     else ""))
            print(f"      {cores(r)}")
            if r["first_bad"]:
                print(f"    first failure: {r['first_bad']}")

        if profile and profile[1] is not None:
            try:
                _, err = profile[1].communicate(timeout=args.duration + 60)
            except subprocess.TimeoutExpired:
                profile[1].kill()
                _, err = profile[1].communicate()
            if os.path.exists(profile[0]) and os.path.getsize(profile[0]):
                res["profile"] = summarize_profile(profile[0])
                keep = os.path.join(ROOT, "var", f"http-bench-profile-{label}.txt")
                os.makedirs(os.path.dirname(keep), exist_ok=True)
                shutil.copy(profile[0], keep)
                res["profile"].insert(0, f"  (collapsed stacks kept in {os.path.relpath(keep, ROOT)})")
            else:
                res["profile"] = [f"  py-spy produced no profile: {(err or '').strip()[:300]}"]

        with CpuMeter(server, url, loadgen_pid) as meter:
            o = executor.submit(loadgen_open, server.port, keys["sales"], customers, args.rate, args.rate_seconds,
                                args.open_pool, args.drain, f"{label}-open", args.seed + 7).result()
        o["cpu"] = meter.result
        o["server_cpu"] = meter.result["server_cpu"]
        ok_total += o["ok"]
        sample_ids += o["sample_ids"][:3]
        res["open"] = o
        print(f"  open loop {args.rate:g} req/s offered for {args.rate_seconds:g} s: ok {o['ok']}/{o['offered']}  "
              f"p50 {ms(pct(o['latencies'], 50))}  p99 {ms(pct(o['latencies'], 99))}  "
              f"(service time p50 {ms(pct(o['service'], 50))} p99 {ms(pct(o['service'], 99))})"
              + (f"  errors {o['errors']} statuses {o['statuses']}" if o["errors"] or len(o["statuses"]) > 1
                 else ""))
        print(f"      {cores(o)}")
        if o["first_bad"]:
            print(f"    first failure: {o['first_bad']}")

        # the trail: every 201 must have left exactly one credit_check decision
        written = count_decisions(url, "credit_check")
        readable = 0
        for did in sample_ids[:10]:
            status, body = http_json("GET", server.port, f"/v1/decisions/{did}", keys["controller"])
            readable += status == 200 and isinstance(body, dict) and body.get("kind") == "credit_check"
        status, page = http_json("GET", server.port, "/v1/decisions?kind=credit_check&limit=5", keys["controller"])
        listed = len(page.get("decisions", [])) if status == 200 and isinstance(page, dict) else 0
        res["trail"] = {"written": written, "expected": ok_total, "readable": readable,
                        "sampled": min(10, len(sample_ids)), "listed": listed}
        print(f"  trail: {written} credit_check decisions in the database for {ok_total} answered checks; "
              f"{readable}/{min(10, len(sample_ids))} sampled ids readable via GET /v1/decisions/{{id}}; "
              f"GET /v1/decisions?kind=credit_check listed {listed}")
    finally:
        rc = server.stop()
        res["stop_rc"] = rc
        print(f"  server stopped (exit {rc})")
    return res


def cpu_per_request(r: dict) -> str:
    c, ok = r["cpu"], r["ok"]
    if not ok:
        return "no requests"
    out = f"{1000 * c['server_cpu'] / ok:.1f} ms worker CPU/req"
    if c["db_cpu"]:
        out += f" + {1000 * c['db_cpu'] / ok:.1f} ms PostgreSQL"
    return out


def table(results: list[dict], args) -> list[str]:
    cpus = os.cpu_count()
    rows = [("backend", "figure", "measured", "target")]
    for r in results:
        if "skipped" in r:
            rows.append((r["label"], "skipped", r["skipped"], ""))
            continue
        best = None
        for lv in r["levels"]:
            rps = lv["ok"] / lv["elapsed"] if lv["elapsed"] else 0.0
            best = max(best or 0.0, rps)
            rows.append((r["label"], f"throughput, {lv['clients']} client(s)",
                         f"{rps:,.0f} req/s (p99 {ms(pct(lv['latencies'], 99))}; {cpu_per_request(lv)})",
                         f">= {TARGET_RPS:,} req/s"))
        if best is not None:
            rows.append((r["label"], "max throughput", f"{best:,.0f} req/s", f">= {TARGET_RPS:,} req/s"))
        o = r.get("open")
        if o:
            achieved = o["ok"] / o["elapsed"] if o["elapsed"] else 0.0
            rows.append((r["label"], f"p50 @ {args.rate:g} req/s offered", ms(pct(o["latencies"], 50)), ""))
            rows.append((r["label"], f"p99 @ {args.rate:g} req/s offered", ms(pct(o["latencies"], 99)),
                         f"< {TARGET_P99_MS:g} ms"))
            rows.append((r["label"], "  service time p50 / p99 (from actual send)",
                         f"{ms(pct(o['service'], 50))} / {ms(pct(o['service'], 99))}", ""))
            rows.append((r["label"], f"achieved rate ({o['ok']}/{o['offered']} ok)", f"{achieved:,.0f} req/s",
                         f"{args.rate:g} req/s"))
            bad = sum(v for k, v in o["statuses"].items() if k != 201) + sum(o["errors"].values())
            bad += sum(sum(v for k, v in lv["statuses"].items() if k != 201) + sum(lv["errors"].values())
                       for lv in r["levels"])
            rows.append((r["label"], "non-201 / transport errors", str(bad), "0"))
        t = r.get("trail")
        if t:
            rows.append((r["label"], "trail: credit_check decisions", f"{t['written']} for {t['expected']} 201s",
                         "equal"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    out = [f"HTTP credit checks: creditctl serve, gunicorn {args.workers} sync workers, {cpus} CPUs shared with the "
           f"load generator, {args.customers} customers, loopback",
           ""]
    for k, row in enumerate(rows):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def markdown(results: list[dict], args) -> str:
    lines = ["\n## HTTP credit checks\n",
             f"`make bench-http` (bench/http_bench.py), {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}, "
             f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs "
             f"(server and load generator share them), gunicorn {args.workers} sync workers, "
             f"{args.customers} customers seeded through the API, closed loop {args.duration:g} s per level, "
             f"open loop {args.rate:g} req/s for {args.rate_seconds:g} s (latency from the scheduled send time).\n",
             "| backend | figure | measured | target |", "|---|---|---|---|"]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['label']} | skipped | {r['skipped']} | |")
            continue
        best = 0.0
        for lv in r["levels"]:
            rps = lv["ok"] / lv["elapsed"] if lv["elapsed"] else 0.0
            best = max(best, rps)
            c = lv["cpu"]
            lines.append(f"| {r['label']} | throughput, {lv['clients']} client(s) | {rps:,.0f} req/s "
                         f"(p50 {ms(pct(lv['latencies'], 50))}, p99 {ms(pct(lv['latencies'], 99))}; "
                         f"{cpu_per_request(lv)}; rest of machine {c['other_cpu'] / (c['wall'] or 1):.2f} cores) "
                         f"| ≥ {TARGET_RPS:,} req/s |")
        lines.append(f"| {r['label']} | **max throughput** | **{best:,.0f} req/s** | ≥ {TARGET_RPS:,} req/s |")
        o = r.get("open")
        if o:
            lines.append(f"| {r['label']} | p50 @ {args.rate:g} req/s offered | {ms(pct(o['latencies'], 50))} | |")
            lines.append(f"| {r['label']} | **p99 @ {args.rate:g} req/s offered** | **{ms(pct(o['latencies'], 99))}** "
                         f"| < {TARGET_P99_MS:g} ms |")
            lines.append(f"| {r['label']} | service time p50 / p99 (from actual send, excludes queueing) | "
                         f"{ms(pct(o['service'], 50))} / {ms(pct(o['service'], 99))} | |")
            achieved = o["ok"] / o["elapsed"] if o["elapsed"] else 0.0
            c = o["cpu"]
            lines.append(f"| {r['label']} | achieved rate | {achieved:,.0f} req/s ({o['ok']}/{o['offered']} ok; "
                         f"rest of machine {c['other_cpu'] / (c['wall'] or 1):.2f} cores) | {args.rate:g} req/s |")
        t = r.get("trail")
        if t:
            lines.append(f"| {r['label']} | trail: credit_check decisions | {t['written']} for {t['expected']} "
                         f"answered checks | equal |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="sqlite,postgres", help="comma list of sqlite, postgres")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--customers", type=int, default=300)
    p.add_argument("--clients", default="1,4,16", help="closed-loop client counts (comma list)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per closed-loop level")
    p.add_argument("--max-requests", type=int, default=20_000, help="request cap per closed-loop level")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--rate", type=float, default=200.0, help="open-loop offered rate, req/s")
    p.add_argument("--rate-seconds", type=float, default=10.0)
    p.add_argument("--open-pool", type=int, default=32, help="open-loop client threads")
    p.add_argument("--drain", type=float, default=60.0, help="open loop: seconds to wait for stragglers")
    p.add_argument("--policy", default=os.path.join(ROOT, "policies.yaml"))
    p.add_argument("--seed", type=int, default=20261122)
    p.add_argument("--profile", action="store_true",
                   help="py-spy one worker during the largest closed-loop level (needs py-spy)")
    p.add_argument("--native", action="store_true", help="with --profile: include native (C) frames")
    p.add_argument("--idle", action="store_true",
                   help="with --profile: sample waiting threads too (lock waits, accept)")
    p.add_argument("--append-readme", metavar="FILE", help="append the figures as markdown to FILE")
    args = p.parse_args(argv)
    args.clients = sorted({int(c) for c in args.clients.split(",") if c.strip()})
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    return args


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    args = parse_args(argv)
    # SIGTERM/SIGINT → KeyboardInterrupt, so the finally blocks stop the server and drop the database
    signal.signal(signal.SIGTERM, _interrupt)
    results = []
    tmp = tempfile.mkdtemp(prefix="creditctl-http-bench-")
    ctx = multiprocessing.get_context("spawn")
    try:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as executor:
            executor.submit(int, 0).result()        # start the load generator before the servers
            for backend in args.backends:
                if backend == "sqlite":
                    with sqlite_backend(tmp) as url:
                        results.append(run_backend("sqlite", url, args, tmp, executor))
                elif backend == "postgres":
                    why = pg_reachable(PG_ADMIN_URL, HOST)
                    if why:
                        print(f"\n== postgres: skipped — {why}")
                        results.append({"label": "postgres", "skipped": why})
                        continue
                    with postgres_backend() as url:
                        results.append(run_backend("postgres", url, args, tmp, executor))
                else:
                    raise SystemExit(f"unknown backend {backend!r}")
    except KeyboardInterrupt:
        print("\ninterrupted; server stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("\n".join(table(results, args)))
    for r in results:
        if r.get("profile"):
            print(f"\nprofile of one {r['label']} worker ({max(args.clients)} clients):")
            print("\n".join(r["profile"]))
    if args.append_readme:
        path = args.append_readme
        new = not os.path.exists(path)
        with open(path, "a", encoding="utf-8") as fh:
            if new:
                fh.write("# creditctl benchmarks\n")
            fh.write(markdown(results, args))
        print(f"\nappended to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
