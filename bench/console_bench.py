"""Console page render times on a large generated book (not a test): `make bench-console`.

Builds a book of N customers (bench/sweep_bench.py's generator: ~10 invoices each, payments,
promises, disputes, …) in a fresh SQLite file (and a fresh PostgreSQL database when 127.0.0.1:5432
answers), signs in a console user, and renders each page R times through the Flask app in process
(test client: the full request — session, CSRF token, queries, Jinja2, babel — without the socket).
Prints p50 / p95 / max in ms per page and backend, and the same as JSON on the last line.

Names: the generated book's customers get Chinese company names (城市 + 字号 + 行业 + 有限公司, 1 in 20
without the suffix), so the Chinese searches match as in a real book: "有限公司" almost every customer,
"宏达机械" about one in 300.

The overview's book figures are measured twice in the same run: live (one pass over the whole book,
api/reports/console.book_figures: what every first overview of a day cost before the sweep wrote them)
and from the snapshot the sweep writes (api/reports/figures.py). The sweep in between is timed too: it
is what makes the snapshot. On a tree without api/reports/figures.py only the live figures are measured.

    .venv/bin/python bench/console_bench.py --customers 100000 --repeats 30

`--url URL --only customers` renders the list on an existing generated book (loaded, renamed and swept by
an earlier run, e.g. a kept PostgreSQL database or SQLite file) without building one: two trees (`--tree`)
measured on the very same book, one after the other.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import pathlib
import re
import statistics
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
# --tree PATH: the code of another checkout (e.g. `git worktree add /tmp/before <commit>`) with this bench
ROOT = pathlib.Path(sys.argv[sys.argv.index("--tree") + 1]).resolve() if "--tree" in sys.argv else HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from pgcheck import pg_reachable  # noqa: E402
from sweep_bench import load_book  # noqa: E402

AS_OF = dt.date(2026, 11, 30)
PG_ADMIN = os.environ.get("CREDITCTL_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


CITIES = ("上海", "北京", "深圳", "广州", "杭州", "成都", "武汉", "南京", "苏州", "重庆", "天津", "西安")
MARKS = ("宏达", "永兴", "华信", "金桥", "瑞丰", "恒通", "鼎盛", "天成", "新锐", "东方", "盛世", "远航", "博雅",
         "安泰", "汇丰", "万达", "长城", "海川", "中南", "嘉禾", "明德", "广源", "同创", "众诚", "利达")
TRADES = ("机械", "电子", "贸易", "物流", "建材", "食品", "化工", "纺织", "软件", "医疗", "能源", "包装")


def chinese_names(url: str) -> None:
    """Every generated customer a Chinese company name, deterministic by its number."""
    from sqlalchemy import bindparam, create_engine, select, update

    from api.store.tables import Customer
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        ids = conn.execute(select(Customer.id).order_by(Customer.id)).scalars().all()
        rows = [{"b_id": cid, "b_name": CITIES[i % 12] + MARKS[(i // 12) % 25] + TRADES[(i // 300) % 12]
                 + ("有限公司" if i % 20 else "商行")} for i, cid in enumerate(ids)]
        conn.execute(update(Customer.__table__).where(Customer.__table__.c.id == bindparam("b_id"))
                     .values(name=bindparam("b_name")), rows)
    engine.dispose()


def keyset() -> bool:
    """The tree's list pages by cursor (issue 14's customer_list) rather than by page number."""
    return (ROOT / "api" / "service" / "customer_list.py").exists()


def pages(n: int, url: str) -> dict[str, str]:
    deep = max(1, n // 50 // 2)
    if keyset():       # the same rows as ?page=deep: continue after the last id of the page before it
        from sqlalchemy import create_engine, select

        from api.store.tables import Customer
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as conn:
            last = conn.execute(select(Customer.id).order_by(Customer.id).offset((deep - 1) * 50 - 1).limit(1)).scalar()
        engine.dispose()
        deep_path = f"/console/customers?cursor={last}"
        more = {"customers filter tier": "/console/customers?tier=large",
                "customers filter reputation": "/console/customers?reputation=low",
                "customers filter hold": "/console/customers?hold=yes",
                "customers sort outstanding desc": "/console/customers?sort=outstanding&dir=desc",
                "customers 中文 + tier": "/console/customers?q=有限公司&tier=medium"}
    else:
        deep_path, more = f"/console/customers?page={deep}", {}
    return {"customers p1": "/console/customers",
            f"customers p{deep}": deep_path,
            "customers search id": "/console/customers?q=C00012",
            "customers search 中文": "/console/customers?q=有限公司",
            "customers search 中文 rare": "/console/customers?q=宏达机械",
            "customers sort name desc": "/console/customers?sort=name&dir=desc",
            "customers filter stage": "/console/customers?stage=2",
            **more,
            "customer page": "/console/customers/C0000042?as_of=" + AS_OF.isoformat(),
            "worklist": "/console/worklist",
            "trail": "/console/trail",
            "runs": "/console/runs",
            "policy": "/console/policy"}


def measure(client, path: str, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{path}: HTTP {r.status_code}: {r.get_data(as_text=True)[:300]}")
    return measure_times(times)


def measure_times(times: list[float]) -> dict:
    """p50 / p95 (nearest rank) / max of times in ms."""
    repeats = len(times)
    times = sorted(times)
    rank = max(0, math.ceil(len(times) * 0.95) - 1)                    # nearest rank
    return {"p50": round(statistics.median(times), 1), "p95": round(times[rank], 1),
            "max": round(times[-1], 1), "n": repeats}


def run_backend(name: str, url: str, n: int, repeats: int, overview_repeats: int, only: str | None = None,
                existing: bool = False) -> dict:
    from api.http.app import create_app
    from api.service import users
    if not existing:
        t0 = time.perf_counter()
        load_book(url, n, AS_OF, 7, 2000)
        chinese_names(url)
        print(f"[{name}] book of {n} customers loaded in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    app = create_app({"DATABASE_URL": url, "POLICY_FILE": str(ROOT / "policies.yaml"), "SECRET_KEY": "bench",
                      "CLOCK": lambda: dt.datetime.combine(AS_OF, dt.time(9))})
    if existing:
        from sqlalchemy import func, select

        from api.store.tables import Customer
        with app.extensions["creditctl"].read_tx() as s:
            n = s.execute(select(func.count()).select_from(Customer)).scalar_one()
    try:
        users.create_user(app.extensions["creditctl"], "bench", "admin", "bench-password")
    except Exception:           # noqa: BLE001 — an existing book (--url) has the user from its first run
        if not existing:
            raise
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/sign-in").text).group(1)
    r = client.post("/console/sign-in", data={"csrf_token": token, "name": "bench", "password": "bench-password"})
    assert r.status_code == 302, r.status_code
    out = {}
    if only == "customers" and not existing:   # the list's summary comes from decisions: the sweep first
        from api.jobs import sweep
        t0 = time.perf_counter()
        sweep.run_sweep(app.extensions["creditctl"], AS_OF, "bench")
        print(f"[{name}] sweep: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    for label, path in pages(n, url).items():
        if only and not label.startswith(only):
            continue
        out[label] = measure(client, path, repeats)
        print(f"[{name}] {label:<28} p50 {out[label]['p50']:>8} ms  p95 {out[label]['p95']:>8} ms", file=sys.stderr)
    if only:
        app.extensions["creditctl.engine"].dispose()
        return out
    out["overview"] = measure(client, "/console/overview", repeats)
    app.config.update(CONSOLE_FIGURES_SECONDS=0, CONSOLE_LIVE_FIGURES_MAX=10**9)
    out["overview figures (live: whole book)"] = measure(client, "/console/overview/figures", overview_repeats)
    try:
        from api.reports import figures
    except ImportError:            # a tree from before the snapshot
        figures = None
    if figures is not None:
        from api.jobs import sweep
        t0 = time.perf_counter()
        done = sweep.run_sweep(app.extensions["creditctl"], AS_OF, "bench")
        seconds = time.perf_counter() - t0
        out["sweep (writes the snapshot)"] = {"s": round(seconds, 1), "customers": done["processed"],
                                              "per_s": round(done["processed"] / seconds, 1)}
        print(f"[{name}] sweep of {done['processed']} customers: {seconds:.1f} s", file=sys.stderr)
        app.config.update(CONSOLE_LIVE_FIGURES_MAX=0)
        out["overview figures (snapshot)"] = measure(client, "/console/overview/figures", repeats)
        assert 'data-source="snapshot"' in client.get("/console/overview/figures").text
    for label in ("overview", "overview figures (live: whole book)", "overview figures (snapshot)"):
        if label in out:
            print(f"[{name}] {label:<28} p50 {out[label]['p50']:>8} ms  p95 {out[label]['p95']:>8} ms",
                  file=sys.stderr)
    app.extensions["creditctl.engine"].dispose()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--overview-repeats", type=int, default=3)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--tree", help="import the code of this checkout instead of this one's")
    ap.add_argument("--only", choices=["customers"], help="only the customer list and page (after a sweep)")
    ap.add_argument("--url", help="with --only customers: an existing generated, swept book (no new one)")
    args = ap.parse_args(argv)
    results = {"customers": args.customers, "tree": str(ROOT), "backends": {}}
    if args.url:
        if args.only != "customers":
            ap.error("--url needs --only customers")
        name = "postgresql" if args.url.startswith("postgresql") else "sqlite"
        results["backends"][name] = run_backend(name, args.url, 0, args.repeats, 0, "customers", existing=True)
        print(json.dumps(results, ensure_ascii=False, sort_keys=True))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in args.backends:
            results["backends"]["sqlite"] = run_backend("sqlite", f"sqlite:///{tmp}/console.sqlite3", args.customers,
                                                        args.repeats, args.overview_repeats, args.only)
        if "postgresql" in args.backends and pg_reachable(PG_ADMIN) is None:
            import psycopg
            db = f"creditctl_console_bench_{os.getpid()}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{db}"')
            try:
                results["backends"]["postgresql"] = run_backend(
                    "postgresql", f"{PG_ADMIN.rsplit('/', 1)[0]}/{db}", args.customers, args.repeats,
                    args.overview_repeats, args.only)
            finally:
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    print(json.dumps(results, ensure_ascii=False, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
