"""creditctl's full command line: the engine's commands plus the service's (serve, keys, seed)."""
from __future__ import annotations

import datetime as dt
import json
import os
import sys
from decimal import Decimal

from engine import cli as engine_cli

from .codes import exit_code

argparse_SUPPRESS = "==SUPPRESS=="
DEFAULT_DB = "sqlite:///var/creditctl.sqlite3"
DEMO_KEYS = {role: f"cc_demo_{role}" for role in ("sales", "backoffice", "controller", "auditor", "admin")}


def _db_url(args) -> str:
    return args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_DB


def _prepare_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        folder = os.path.dirname(url[len("sqlite:///"):])
        if folder:
            os.makedirs(folder, exist_ok=True)


def _service(url: str, policy_file: str):
    from .http.app import create_app
    _prepare_sqlite_dir(url)
    app = create_app({"DATABASE_URL": url, "POLICY_FILE": policy_file})
    return app, app.extensions["creditctl"]


def seed_demo(service, portfolio_path: str) -> int:
    """Load the example book through the same events a back-office system would post."""
    from sqlalchemy import select

    from .service import customers
    from .service import events as ledger_events
    from .service.auth import hash_key
    from .store.tables import ApiKey, Customer
    with service.tx() as s:
        for role, raw in DEMO_KEYS.items():
            if s.execute(select(ApiKey).where(ApiKey.name == f"demo-{role}")).scalar_one_or_none() is None:
                s.add(ApiKey(name=f"demo-{role}", role=role, key_hash=hash_key(raw), created_at=service.clock(),
                             revoked=False))
        if s.execute(select(Customer).limit(1)).scalar_one_or_none() is not None:
            return 0
    with open(portfolio_path, encoding="utf-8") as fh:
        book = json.load(fh, parse_float=Decimal)
    as_of = dt.date.fromisoformat(book["as_of"])
    n = 0
    for case in book["customers"]:
        customer = dict(case["customer"])
        cid = customer.pop("id")
        customers.put_customer(service, cid, customer)
        events = [("invoice_issued", i["issued_on"], i) for i in case.get("invoices", [])]
        events += [("payment_received", p["paid_on"], p) for p in case.get("payments", [])]
        events += [("credit_note", c["issued_on"], c) for c in case.get("credit_notes", [])]
        events += [("promise_to_pay", p["made_on"], p) for p in case.get("promises", [])]
        events += [("dispute_opened", d["opened_on"], {k: v for k, v in d.items() if k != "resolved_on"})
                   for d in case.get("disputes", [])]
        events += [("instalment_plan_agreed", p["agreed_on"], p) for p in case.get("instalment_plans", [])]
        for k, (kind, day, data) in enumerate(sorted(events, key=lambda e: (str(e[1]), e[0]))):
            raw = {"event_id": f"demo-{cid}-{k}", "type": kind, "customer_id": cid, "as_of": str(day),
                   "data": data}
            parsed = dict(raw, as_of=dt.date.fromisoformat(str(day)))
            ledger_events.post_event(service, raw, parsed, "seed:demo", f"seed-{cid}-{k}")
        if case.get("arrears_reason"):
            raw = {"event_id": f"demo-{cid}-reason", "type": "arrears_reason_recorded", "customer_id": cid,
                   "as_of": as_of.isoformat(), "data": {"reason": case["arrears_reason"]}}
            ledger_events.post_event(service, raw, dict(raw, as_of=as_of), "seed:demo", f"seed-{cid}-reason")
        n += 1
    return n


def cmd_serve(args) -> int:
    url = _db_url(args)
    app, service = _service(url, args.policy)
    if args.demo:
        n = seed_demo(service, args.portfolio)
        print(f"demo book: {n} customers loaded" if n else "demo book already loaded")
        print("demo API keys (Authorization: Bearer <key>):")
        for role, raw in DEMO_KEYS.items():
            print(f"  {role:<11} {raw}")
    print(f"creditctl on http://{args.host}:{args.port}  (docs: /docs, OpenAPI: /openapi.json) database {url}")
    sys.stdout.flush()
    if args.dev:
        app.run(args.host, args.port, threaded=True)
        return 0
    from .http.server import run_gunicorn
    run_gunicorn(url, args.policy, args.host, args.port, args.workers)
    return 0


def cmd_keys_create(args) -> int:
    app, service = _service(_db_url(args), args.policy)
    from .service.auth import create_key
    try:
        with service.tx() as s:
            raw = create_key(s, args.name, args.role, service.clock(), person=args.person, authority=args.authority)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except Exception as exc:          # e.g. the name is taken
        print(f"could not create key {args.name!r}: {exc.__class__.__name__}", file=sys.stderr)
        return 1
    print(raw)
    return 0


def cmd_referrals_expire(args) -> int:
    """Expire the referrals open past their last day (docs/governance.md); prints what it expired."""
    from .errors import DomainError
    from .service import referrals
    as_of = _as_of(args.as_of) if args.as_of else None
    if args.as_of and as_of is None:
        return 2
    app, service = _service(_db_url(args), args.policy)
    try:
        result = referrals.expire(service, as_of or service.today(), "cli:referrals-expire", "cli")
    except DomainError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return exit_code(exc.code)
    print(json.dumps(result, ensure_ascii=False, sort_keys=True))
    return 0


def _as_of(text: str) -> dt.date | None:
    """--as-of as a date the service accepts; None (after saying why on stderr) otherwise."""
    from .service.validation import DATE_MAX, DATE_MIN
    try:
        as_of = dt.date.fromisoformat(text)
    except ValueError:
        print(f"--as-of: '{text}' is not an ISO date", file=sys.stderr)
        return None
    if not DATE_MIN <= as_of <= DATE_MAX:
        print(f"--as-of: {as_of} is not between {DATE_MIN} and {DATE_MAX}", file=sys.stderr)
        return None
    return as_of


def cmd_sweep(args) -> int:
    """Run (or resume) the sweep for one day, with a progress bar on stderr."""
    from .jobs import sweep
    as_of = _as_of(args.as_of)
    if as_of is None:
        return 2
    if args.partition_size is not None and args.partition_size < 1:
        print("--partition-size: at least 1", file=sys.stderr)
        return 2
    app, service = _service(_db_url(args), args.policy)
    run_id = sweep.start(service, as_of, f"cli:{os.environ.get('USER', 'sweep')}",
                         partition_size=args.partition_size or sweep.PARTITION_SIZE)
    total = sweep.summary(service, run_id)["customers"]
    done = [0]

    def progress(n):
        done[0] += n
        if not args.quiet and (done[0] % 25 == 0 or done[0] == total):
            width = 30
            filled = int(width * done[0] / max(total, 1))
            print(f"\rsweep {run_id} [{'#' * filled}{'.' * (width - filled)}] {done[0]}/{total}", end="",
                  file=sys.stderr, flush=True)
    counts = sweep.work(service, run_id, progress=progress, reclaim=args.reclaim,
                        stop_after=args.stop_after)
    if not args.quiet:
        print(file=sys.stderr)
    result = sweep.summary(service, run_id)
    result["this_worker"] = counts
    print(json.dumps(result, ensure_ascii=False, sort_keys=True))
    return 0 if result["errors"] == 0 else 1


def cmd_policy_simulate(args) -> int:
    from .jobs.simulate import run_cli
    return run_cli(args, _db_url(args))


def cmd_scheduler(args) -> int:
    """The one scheduler process (see api/jobs/scheduler.py); `--run-now JOB` runs one job and exits."""
    import logging
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from .jobs import scheduler
    jobs = {job_id: fn for job_id, fn, _ in scheduler.JOBS}
    as_of = None
    if args.run_now:                 # bad arguments are refused before anything is opened or migrated
        if args.run_now not in jobs:
            print(f"unknown job {args.run_now!r}; one of {', '.join(jobs)}", file=sys.stderr)
            return 2
        if args.as_of:
            as_of = _as_of(args.as_of)
            if as_of is None:
                return 2
    app, service = _service(_db_url(args), args.policy)
    if args.run_now:
        scheduler._service = service
        result = jobs[args.run_now](as_of)
        print(json.dumps(result, ensure_ascii=False, sort_keys=True, default=str))
        return 0 if result["outcome"] == "ok" else 1
    return scheduler.run(service, app.extensions["creditctl.engine"], wait_for_lock=not args.no_wait)


def build_parser():
    parser = engine_cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--database-url", dest="database_url")
    serve.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
    serve.add_argument("--workers", type=int, default=2)
    serve.add_argument("--demo", action="store_true", help="load the demo book and demo keys")
    serve.add_argument("--portfolio", default=os.path.join("examples", "portfolio.json"))
    serve.add_argument("--dev", action="store_true", help="Flask's development server instead of gunicorn")
    serve.set_defaults(func=cmd_serve)
    sw = sub.add_parser("sweep", help="run (or resume, or join) the collections sweep for a day")
    sw.add_argument("--as-of", dest="as_of", required=True)
    sw.add_argument("--database-url", dest="database_url")
    sw.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
    sw.add_argument("--reclaim", action="store_true",
                    help="take over partitions claimed by workers that died (no other worker may be running)")
    sw.add_argument("--quiet", action="store_true")
    sw.add_argument("--stop-after", dest="stop_after", type=int, default=None, help=argparse_SUPPRESS)
    sw.add_argument("--partition-size", dest="partition_size", type=int, default=None,
                    help="customers per partition when this command creates the run (default 500)")
    sw.set_defaults(func=cmd_sweep)
    policy = next(a for a in sub.choices["policy"]._actions if a.dest == "action")
    sim = policy.add_parser("simulate", help="what-if: the whole book under a candidate policy vs the active one")
    sim.add_argument("file", help="the candidate policy (YAML)")
    sim.add_argument("--as-of", dest="as_of", help="evaluation date (default: today)")
    sim.add_argument("--database-url", dest="database_url")
    sim.add_argument("--format", choices=["json", "csv"], default="json")
    sim.add_argument("--output", help="write the report here instead of stdout")
    sim.set_defaults(func=cmd_policy_simulate)
    sc = sub.add_parser("scheduler", help="run the job scheduler (one per deployment)")
    sc.add_argument("--database-url", dest="database_url")
    sc.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
    sc.add_argument("--run-now", dest="run_now",
                    help="run one job now and exit (collections-sweep, interest-accrual, credit-review, "
                         "monthly-statements)")
    sc.add_argument("--as-of", dest="as_of")
    sc.add_argument("--no-wait", dest="no_wait", action="store_true", help="exit if another scheduler runs")
    sc.set_defaults(func=cmd_scheduler)
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_action", required=True)
    create = keys.add_parser("create", help="create a key and print it once")
    create.add_argument("name")
    create.add_argument("--role", required=True)
    create.add_argument("--person", help="who holds the key (default: NAME)")
    create.add_argument("--authority", help="the key's level in the policy's authority matrix, e.g. team_lead")
    create.add_argument("--database-url", dest="database_url")
    create.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
    create.set_defaults(func=cmd_keys_create)
    refs = sub.add_parser("referrals", help="referred credit checks").add_subparsers(dest="referrals_action",
                                                                                    required=True)
    exp = refs.add_parser("expire", help="expire the referrals open past their last day, freeing their holds")
    exp.add_argument("--as-of", dest="as_of", help="the day (default: today)")
    exp.add_argument("--database-url", dest="database_url")
    exp.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
    exp.set_defaults(func=cmd_referrals_expire)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
