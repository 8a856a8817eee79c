"""creditctl's full command line: the engine's commands plus the service's (serve, keys, seed)."""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import sys
import time

from engine import cli as engine_cli

from .codes import exit_code
from .errors import DomainError

argparse_SUPPRESS = "==SUPPRESS=="
DEFAULT_DB = "sqlite:///var/creditctl.sqlite3"
DEMO_KEYS = {role: f"cc_demo_{role}" for role in ("sales", "backoffice", "controller", "auditor", "admin")}


def _db_url(args) -> str:
    return args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_DB


def _prepare_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        folder = os.path.dirname(url[len("sqlite:///") :])
        if folder:
            os.makedirs(folder, exist_ok=True)


_PROJECT = pathlib.Path(__file__).resolve().parents[1]  # the project folder: the demo's book and policy


def _service(url: str, policy_file: str, extra: dict | None = None):
    from .http.app import create_app

    _prepare_sqlite_dir(url)
    app = create_app({"DATABASE_URL": url, "POLICY_FILE": policy_file, **(extra or {})})
    return app, app.extensions["creditctl"]


DEMO_AS_OF = dt.date(2026, 11, 22)  # the day the demo book's figures are written for


def seed_demo(service, book_folder: str) -> int:
    """Install the demo keys; load the example book through the importer, as a department loads its own."""
    from sqlalchemy import select

    from .jobs.importer.reader import Source
    from .jobs.importer.run import run_import
    from .service.auth import hash_key
    from .store.tables import ApiKey, Customer

    with service.tx() as s:
        for role, raw in DEMO_KEYS.items():
            if s.execute(select(ApiKey).where(ApiKey.name == f"demo-{role}")).scalar_one_or_none() is None:
                s.add(
                    ApiKey(
                        name=f"demo-{role}",
                        role=role,
                        key_hash=hash_key(raw),
                        created_at=service.clock(),
                        revoked=False,
                    )
                )
        if s.execute(select(Customer).limit(1)).scalar_one_or_none() is not None:
            return 0
    files = sorted(os.path.join(book_folder, f) for f in os.listdir(book_folder) if f.endswith((".csv", ".xlsx")))
    result = run_import(
        service, [Source(f, (lambda f=f: open(f, "rb"))) for f in files], actor="seed:demo", as_of=DEMO_AS_OF
    )
    if result["status"] != "done":
        raise DomainError("E_IMPORT_INVALID", "the demo book did not import: " + "; ".join(result["errors"][:3]))
    return result["counts"]["customers"]["new"]


def demo_refusal(service, force: bool = False) -> str | None:
    """Why the public demo keys may not go into this database (None: they may). Allowed into an empty
    database (which is then marked `demo`), into one the demo created, or with --force-demo."""
    from sqlalchemy import func, select

    from .store.tables import ApiKey, Customer, DbMark, DecisionRecord

    with service.tx() as s:
        if force or s.get(DbMark, "demo") is not None:
            return None
        customers = s.execute(select(func.count()).select_from(Customer)).scalar_one()
        decisions = s.execute(select(func.count()).select_from(DecisionRecord)).scalar_one()
        keys = s.execute(select(func.count()).select_from(ApiKey).where(ApiKey.name.not_like("demo-%"))).scalar_one()
        if customers or decisions or keys:
            return (
                f"refusing --demo: the database holds a book ({customers} customers, {decisions} decisions, "
                f"{keys} API keys) that the demo did not create, and the demo keys are public; "
                "use another --database-url, or --force-demo"
            )
        s.add(DbMark(name="demo", value="created by serve --demo", created_at=service.clock()))
    return None


def _demo_audit_key() -> None:
    """serve --demo signs checkpoints with var/audit-key, created here when missing."""
    from .service.audit import DEFAULT_KEY
    from .store.checkpoints import generate_key

    if not os.environ.get("CREDITCTL_AUDIT_KEY") and not os.path.exists(DEFAULT_KEY):
        generate_key(DEFAULT_KEY)
        print(f"audit signing key created: {DEFAULT_KEY} (move it off the database host for real use)")


def serve_policy(args) -> str:
    """serve's policy file: --policy, else policies.yaml here; the demo runs from any folder on the project's own
    policy, as on its own book."""
    if args.policy is not None:
        return args.policy
    here = engine_cli.DEFAULT_POLICY
    return here if os.path.exists(here) or not args.demo else str(_PROJECT / engine_cli.DEFAULT_POLICY)


def cmd_serve(args) -> int:
    url = _db_url(args)
    args.policy = serve_policy(args)
    if args.demo and not os.path.isdir(args.book):  # before anything is created or migrated
        print(f"--book: no folder '{args.book}' (the demo book's import files)", file=sys.stderr)
        return 2
    if args.demo and not os.path.isfile(args.policy):
        print(f"--policy: no file '{args.policy}'", file=sys.stderr)
        return 2
    if args.demo:
        _demo_audit_key()
    run_dir = None
    if not args.dev:
        from .http import server

        server.configure_logging()
        run_dir = server.make_run_dir()
    try:
        app, service = _serving_app(url, args.policy, run_dir)
    except BaseException:
        _remove_run_dir(run_dir)
        raise
    if app is None:
        _remove_run_dir(run_dir)
        return 2
    if args.demo:
        refusal = demo_refusal(service, args.force_demo)
        if refusal:
            print(refusal, file=sys.stderr)
            app.extensions["creditctl.engine"].dispose()
            _remove_run_dir(run_dir)
            return 2
        n = seed_demo(service, args.book)
        print(f"demo book: {n} customers loaded" if n else "demo book already loaded")
        print("demo API keys (Authorization: Bearer <key>):")
        for role, raw in DEMO_KEYS.items():
            print(f"  {role:<11} {raw}")
    print(
        f"creditctl on http://{args.host}:{args.port}  console: http://{args.host}:{args.port}/console  "
        f"(docs: /docs, OpenAPI: /openapi.json) database {url}"
    )
    sys.stdout.flush()
    if args.dev:
        app.run(args.host, args.port, threaded=True)
        return 0
    from .http.server import run_gunicorn

    run_gunicorn(url, args.policy, args.host, args.port, args.workers, run_dir)
    return 0


def _serving_app(url: str, policy_file: str, run_dir: str | None):
    """The app `serve` starts with: a policy file that is refused while a version is stored starts the service
    on the stored active version (its errors logged at ERROR); with no stored version there is nothing to
    serve: the errors on stderr and (None, None)."""
    from engine.errors import PolicyInvalid

    from .http.app import create_app
    from .http.server import first_report
    from .service.policies import file_errors

    _prepare_sqlite_dir(url)
    try:
        app = create_app(
            {
                "DATABASE_URL": url,
                "POLICY_FILE": policy_file,
                "POLICY_FILE_FALLBACK": True,
                "POLICY_FAILURE_FIRST": first_report(run_dir) if run_dir else None,
            }
        )
    except (OSError, PolicyInvalid, DomainError) as exc:
        if isinstance(exc, DomainError) and exc.code not in ("E_POLICY_CURRENCY", "E_INPUT_INVALID"):
            raise
        for e in file_errors(policy_file, exc):
            print(f"{e['file']}:{e['line']}:{e['column']}: {e['code']}: {e['message']}", file=sys.stderr)
        print(
            f"serve: the policy file {policy_file} was refused and no policy version is stored: nothing to serve",
            file=sys.stderr,
        )
        return None, None
    return app, app.extensions["creditctl"]


def _remove_run_dir(run_dir: str | None) -> None:
    if run_dir:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)


def cmd_keys_create(args) -> int:
    app, service = _service(_db_url(args), args.policy)
    from .service.auth import create_key

    try:
        with service.tx() as s:
            raw = create_key(s, args.name, args.role, service.clock(), person=args.person, authority=args.authority)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except Exception as exc:  # e.g. the name is taken
        print(f"could not create key {args.name!r}: {exc.__class__.__name__}", file=sys.stderr)
        return 1
    print(raw)
    return 0


def cmd_keys_lifecycle(args) -> int:
    """keys list | revoke NAME --reason R | rotate NAME --reason R [--grace-seconds N] (docs/governance.md)."""
    from .service import keys

    app, service = _service(_db_url(args), args.policy)
    actor = f"cli:{os.environ.get('USER') or 'keys'}"
    if args.keys_action == "list":
        result = keys.list_keys(service, include_revoked=not args.active)
    elif args.keys_action == "revoke":
        result = keys.revoke(service, args.name, {"reason": args.reason}, actor, "cli")
    else:
        result = keys.rotate(
            service, args.name, {"reason": args.reason, "grace_seconds": args.grace_seconds}, actor, "cli"
        )
    print(json.dumps(result, ensure_ascii=False, sort_keys=True))
    return 0


def cmd_users_create(args) -> int:
    """A console user; the password from --password-stdin (one line) or asked twice on the terminal."""
    import getpass
    from .codes import exit_code
    from .errors import DomainError
    from .service import users

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 2
    app, service = _service(_db_url(args), args.policy)
    try:
        user = users.create_user(service, args.name, args.role, password, args.locale, args.authority)
    except DomainError as exc:
        detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.errors.items())
        print(f"{exc.code}: {exc.message}" + (f" ({detail})" if detail else ""), file=sys.stderr)
        return exit_code(exc.code)
    print(json.dumps(user, ensure_ascii=False, sort_keys=True))
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
    from .http.server import configure_logging

    configure_logging()  # the notifier's and the alerts' INFO lines, as under `serve`
    app, service = _service(_db_url(args), args.policy)
    run_id = sweep.start(
        service,
        as_of,
        f"cli:{os.environ.get('USER', 'sweep')}",
        partition_size=args.partition_size or sweep.PARTITION_SIZE,
    )
    total = sweep.summary(service, run_id)["customers"]
    done = [0]

    def progress(n):
        done[0] += n
        if not args.quiet and (done[0] % 25 == 0 or done[0] == total):
            width = 30
            filled = int(width * done[0] / max(total, 1))
            print(
                f"\rsweep {run_id} [{'#' * filled}{'.' * (width - filled)}] {done[0]}/{total}",
                end="",
                file=sys.stderr,
                flush=True,
            )

    counts = sweep.work(service, run_id, progress=progress, reclaim=args.reclaim, stop_after=args.stop_after)
    # the run is finished here or we say what is left: partitions other live workers hold are waited
    # for (their lease lapses if they die; a worker of this host that died was taken over already)
    while args.stop_after is None:
        left = sweep.left_over(service, run_id)
        if not left:
            break
        if args.no_wait:
            if not args.quiet:
                print(file=sys.stderr)
            for p in left:
                print(
                    f"sweep {run_id} not finished: partition {p['partition']} {p['status']} by {p['worker']}, "
                    f"lease lapses at {p['lease_until']}; run again then (or with --reclaim)",
                    file=sys.stderr,
                )
            print(json.dumps({**sweep.summary(service, run_id), "left_over": left}, ensure_ascii=False, sort_keys=True))
            return 4
        time.sleep(2)
        more = sweep.work(service, run_id, progress=progress, reclaim=args.reclaim)
        counts = {k: counts[k] + more[k] for k in counts}
    if not args.quiet:
        print(file=sys.stderr)
    from .service.audit import checkpoint_if_configured

    checkpoint_if_configured(service)
    result = sweep.summary(service, run_id)
    result["this_worker"] = counts
    print(json.dumps(result, ensure_ascii=False, sort_keys=True))
    return 0 if result["errors"] == 0 else 1


def cmd_import(args) -> int:
    """Validate every file, then write and decide (api/jobs/importer); exit 1 when rows were refused."""
    from .jobs.importer.reader import Source
    from .jobs.importer.run import run_import
    from .jobs.importer.template import template_xlsx

    if args.template:
        with open(args.template, "wb") as fh:
            fh.write(template_xlsx())
        print(f"template written to {args.template}", file=sys.stderr)
        return 0
    if not args.files:
        print("import: name at least one file (or --template OUT.xlsx)", file=sys.stderr)
        return 2
    missing = [f for f in args.files if not os.path.isfile(f)]
    if missing:
        print(f"import: no such file: {missing[0]}", file=sys.stderr)
        return 2
    as_of = _as_of(args.as_of) if args.as_of else None
    if args.as_of and as_of is None:
        return 2
    if args.workers < 1:
        print("import: --workers must be at least 1", file=sys.stderr)
        return 2
    app, service = _service(_db_url(args), args.policy)
    done: dict = {}

    def progress(what, n):
        done[what] = done.get(what, 0) + n
        if not args.quiet:
            print("\rimport " + ", ".join(f"{k} {v:,}" for k, v in done.items()), end="", file=sys.stderr, flush=True)

    sources = [Source(f, (lambda f=f: open(f, "rb")), args.encoding) for f in args.files]
    result = run_import(
        service,
        sources,
        actor=f"cli:{os.environ.get('USER', 'import')}",
        as_of=as_of,
        dry_run=args.dry_run,
        skip_invalid=args.skip_invalid,
        progress=progress,
        workers=args.workers,
        reason=args.reason,
    )
    if not args.quiet and done:
        print(file=sys.stderr)
    for line in result["errors"]:
        print(line, file=sys.stderr)
    if result["error_count"] > len(result["errors"]):
        print(f"… and {result['error_count'] - len(result['errors'])} more errors", file=sys.stderr)
    rejected_csv = result.pop("rejected_csv")
    if args.skip_invalid and rejected_csv:
        with open(args.rejected, "w", encoding="utf-8-sig", newline="") as fh:
            fh.write(rejected_csv)
        print(f"rejected rows written to {args.rejected}", file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False, sort_keys=True))
    return 0 if result["status"] in ("done", "checked") and not result["error_count"] else 1


def _audit_service(args):
    from .http.app import create_app

    url = _db_url(args)
    _prepare_sqlite_dir(url)
    config = {"DATABASE_URL": url, "POLICY_FILE": args.policy}
    for name, value in (
        ("AUDIT_KEY", getattr(args, "key", None)),
        ("AUDIT_PUBLIC_KEY", getattr(args, "public_key", None)),
        ("AUDIT_CHECKPOINTS", args.checkpoints),
    ):
        if value:
            config[name] = value
    return create_app(config).extensions["creditctl"]


def cmd_audit_keygen(args) -> int:
    from .store.checkpoints import generate_key

    try:
        public = generate_key(args.out)
    except FileExistsError:
        print(f"{args.out} exists: a key is never overwritten", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    print(
        f"private key written to {args.out} (keep it off the database host; CREDITCTL_AUDIT_KEY={args.out})",
        file=sys.stderr,
    )
    print(public, end="")
    return 0


def cmd_audit_checkpoint(args) -> int:
    from .codes import exit_code
    from .errors import DomainError
    from .service import audit

    try:
        result = audit.checkpoint(_audit_service(args))
    except DomainError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return exit_code(exc.code)
    print(json.dumps(result, ensure_ascii=False, sort_keys=True))
    return 0


def cmd_audit_verify(args) -> int:
    """Exit 0 when the chains and every checkpoint hold, 1 with the findings otherwise."""
    from .codes import exit_code
    from .errors import DomainError
    from .service import audit

    try:
        result = audit.verify(_audit_service(args))
    except DomainError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return exit_code(exc.code)
    for f in result["findings"]:
        where = f["subject"] if f["subject"] is not None else f"checkpoint {f['checkpoint'] + 1}"
        print(f"{f['kind']}: {where}: {f['problem']}", file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False, sort_keys=True, default=str))
    return 0 if result["ok"] else 1


def cmd_policy_versions(args) -> int:
    """`policy publish FILE [--effective-from D] [--reason R]`, `policy versions`, `policy cancel ID --reason R`:
    the effective-dated timeline (docs/governance.md#effective-dates-policy-versions-in-force-by-day)."""
    from engine.errors import PolicyInvalid
    from engine.yamlsource import read_text_file

    from .errors import DomainError
    from .service import policies

    effective_from, text = None, None
    if getattr(args, "effective_from", None):  # refused before anything is opened or migrated
        try:
            effective_from = dt.date.fromisoformat(args.effective_from)
        except ValueError:
            print(f"--effective-from: '{args.effective_from}' is not an ISO date", file=sys.stderr)
            return 2
    if args.action == "publish":
        try:
            text = read_text_file(args.file)
        except OSError as exc:
            print(f"{args.file}: E_FILE: {exc.strerror or exc}", file=sys.stderr)
            return 2
        except PolicyInvalid as exc:
            for e in exc.errors:
                print(f"{e.file}:{e.line}:{e.column}: {e.code}: {e.message}", file=sys.stderr)
            return 1
    app, service = _service(_db_url(args), args.policy)
    actor = f"cli:{os.environ.get('USER', 'operator')}"
    try:
        if args.action == "publish":
            result, _ = policies.publish(
                service, text, args.file, actor, None, "cli", effective_from=effective_from, reason=args.reason
            )
        elif args.action == "cancel":
            result = policies.cancel_scheduled(service, args.activation_id, args.reason, actor, "cli")
        else:
            result = policies.list_policies(service)
    except PolicyInvalid as exc:
        for e in exc.errors:
            print(f"{e.file}:{e.line}:{e.column}: {e.code}: {e.message}", file=sys.stderr)
        return 1
    except DomainError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        for field, messages in (getattr(exc, "errors", None) or {}).items():
            print(f"  {field}: {'; '.join(messages)}", file=sys.stderr)
        return exit_code(exc.code)
    finally:
        app.extensions["creditctl.engine"].dispose()  # its connections closed, not left to the collector
    print(json.dumps(result, ensure_ascii=False, sort_keys=True, default=str))
    return 0


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
    if args.run_now:  # bad arguments are refused before anything is opened or migrated
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


def cmd_deliver(args) -> int:
    """Send the outbox once (or every --interval seconds with --loop): api/jobs/outbox.py, docs/delivery.md."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from .jobs import outbox

    if args.interval <= 0 or (args.limit is not None and args.limit < 1):
        print("deliver: --interval and --limit must be positive", file=sys.stderr)
        return 2
    if args.requeue is not None and (args.requeue < 1 or not (args.reason or "").strip() or args.loop):
        print("deliver: --requeue ID needs a positive ID and --reason TEXT (and no --loop)", file=sys.stderr)
        return 2
    if args.requeue is None and args.reason:
        print("deliver: --reason goes with --requeue ID", file=sys.stderr)
        return 2
    extra = {}
    if args.config:
        data = outbox.load_config_file(args.config)
        extra = {"DELIVERY": data.get("delivery") or {}, "DOCUMENTS": data.get("documents")}
    app, service = _service(_db_url(args), args.policy, extra)
    settings = service.delivery
    try:
        if args.requeue is not None:  # a dead letter queued again; the next round (or this one) sends it
            from .service import deliveries

            actor = f"cli:{os.environ.get('USER') or 'deliver'}"
            result = deliveries.requeue(service, args.requeue, {"reason": args.reason}, actor, "cli")
            print(json.dumps(result, ensure_ascii=False, sort_keys=True))
            return 0
        if args.loop:

            def report(counts):
                if any(counts.values()):
                    print(json.dumps(counts, sort_keys=True), flush=True)

            totals = outbox.run_loop(service, settings, interval=args.interval, on_round=report)
            print(json.dumps({"totals": totals}, sort_keys=True))
            return 0
        counts = outbox.run_once(service, settings, limit=args.limit)
        print(json.dumps(counts, sort_keys=True))
        return 0
    finally:
        app.extensions["creditctl.engine"].dispose()


def cmd_statements(args) -> int:
    """Queue the monthly statements of account in the outbox (api/jobs/statements.py, docs/delivery.md)."""
    from .jobs import statements

    as_of = _as_of(args.as_of) if args.as_of else None
    if args.as_of and as_of is None:
        return 2
    reason = args.reason.strip() if args.reason else None
    if args.reason is not None and not reason:
        print("statements: --reason must not be blank", file=sys.stderr)
        return 2
    app, service = _service(_db_url(args), args.policy)
    try:
        result = statements.queue_statements(
            service,
            as_of or service.today(),
            f"cli:{os.environ.get('USER') or 'statements'}",
            reason,
            period=args.period,
        )
        print(json.dumps(result, ensure_ascii=False, sort_keys=True))
        return 0
    finally:
        app.extensions["creditctl.engine"].dispose()


def _document_types(policy_file: str) -> list[str]:
    """The action types of the policy that send a document (its reminders, demands, letters), found in its
    YAML wherever an action names its `type`; [] when the file does not parse (the policy check says why)."""
    import yaml

    from .documents.context import ACTION_DOCUMENTS

    try:
        with open(policy_file, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("type"), str) and node["type"] in ACTION_DOCUMENTS:
                found.add(node["type"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(data)
    dunning = data.get("dunning") if isinstance(data, dict) else None
    if isinstance(dunning, dict) and dunning.get("reminders"):
        found.add("payment_reminder")
    return sorted(found)


def template_problems(policy_file: str, compiled: bool = True) -> tuple[str, int, list]:
    """(folder, files, problems) of the document templates beside the policy (templates/ next to it): every
    problem as a PolicyError (FILE:LINE:COL: CODE). No folder is a problem only when the policy's actions
    send documents (read only from a policy that compiled: an invalid file may be an alias bomb)."""
    from engine.errors import PolicyError

    from .documents.check import check_templates
    from .documents.render import default_folder

    folder = default_folder(policy_file)
    if not folder.is_dir():
        types = _document_types(policy_file) if compiled else []
        if not types:
            return str(folder), 0, []
        return (
            str(folder),
            0,
            [
                PolicyError(
                    "E_TEMPLATE_MISSING",
                    f"no template folder for the documents the policy's actions send ({', '.join(types)})",
                    file=str(folder),
                )
            ],
        )
    return str(folder), sum(1 for _ in folder.rglob("*.j2")), check_templates(folder)


def cmd_policy_check(args) -> int:
    """The engine's policy check, and the document templates beside the policy (api/documents/check.py)."""
    from engine.errors import PolicyInvalid

    errors, policy = [], None
    try:
        policy = engine_cli._read_policy(args.file)
    except OSError as exc:
        return engine_cli._file_error(args.file, exc, args.format)
    except PolicyInvalid as exc:
        errors = list(exc.errors)
    folder, files, problems = template_problems(args.file, compiled=policy is not None)
    errors += problems
    if errors:
        engine_cli._print_policy_errors(PolicyInvalid(errors), args.format)
        if policy is not None:
            policy.dispose()
        return 1
    if args.format == "json":
        print(
            json.dumps(
                {
                    "valid": True,
                    "version": policy.version,
                    "rules": len(policy.rules),
                    "templates": {"folder": folder, "files": files},
                },
                ensure_ascii=False,
            )
        )
    else:
        print(
            f"{args.file}: ok, version {policy.version[:12]}, {len(policy.rules)} rules"
            + (f"; templates {folder}: ok, {files} files" if files else "")
        )
    policy.dispose()
    return 0


def build_parser():
    parser = engine_cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--database-url", dest="database_url")
    serve.add_argument(
        "--policy",
        default=None,
        help=f"the policy file (default {engine_cli.DEFAULT_POLICY} here; with --demo, the project's own when there is none here)",
    )
    serve.add_argument("--workers", type=int, default=2)
    serve.add_argument("--demo", action="store_true", help="load the demo book and demo keys")
    # the project's own demo book, wherever the command is run from
    serve.add_argument("--book", default=str(_PROJECT / "examples" / "book"), help="the demo book's import files")
    serve.add_argument(
        "--force-demo",
        dest="force_demo",
        action="store_true",
        help="install the public demo keys even into a database the demo did not create",
    )
    serve.add_argument("--dev", action="store_true", help="Flask's development server instead of gunicorn")
    serve.set_defaults(func=cmd_serve)
    sw = sub.add_parser("sweep", help="run (or resume, or join) the collections sweep for a day")
    sw.add_argument("--as-of", dest="as_of", required=True)
    sw.add_argument("--database-url", dest="database_url")
    sw.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
    sw.add_argument(
        "--reclaim",
        action="store_true",
        help="take over partitions claimed by workers that died (no other worker may be running)",
    )
    sw.add_argument("--quiet", action="store_true")
    sw.add_argument(
        "--no-wait",
        dest="no_wait",
        action="store_true",
        help="exit 4 (saying which partitions other live workers hold, and until when) instead of "
        "waiting for them to finish or their lease to lapse",
    )
    sw.add_argument("--stop-after", dest="stop_after", type=int, default=None, help=argparse_SUPPRESS)
    sw.add_argument(
        "--partition-size",
        dest="partition_size",
        type=int,
        default=None,
        help="customers per partition when this command creates the run (default 500)",
    )
    sw.set_defaults(func=cmd_sweep)
    policy = next(a for a in sub.choices["policy"]._actions if a.dest == "action")
    policy.choices["check"].set_defaults(func=cmd_policy_check)  # + the document templates
    sim = policy.add_parser("simulate", help="what-if: the whole book under a candidate policy vs the active one")
    sim.add_argument("file", help="the candidate policy (YAML)")
    sim.add_argument("--as-of", dest="as_of", help="evaluation date (default: today)")
    sim.add_argument("--database-url", dest="database_url")
    sim.add_argument("--format", choices=["json", "csv"], default="json")
    sim.add_argument("--output", help="write the report here instead of stdout")
    sim.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes to evaluate the book in, each a customer-id range with its own database "
        "connection (default 1); the report is the same for any number",
    )
    sim.set_defaults(func=cmd_policy_simulate)
    pub = policy.add_parser("publish", help="store a policy version in force from today or a later day")
    pub.add_argument("file")
    pub.add_argument("--effective-from", dest="effective_from", help="the day it is in force from (default today)")
    pub.add_argument("--reason", default=None)
    vers = policy.add_parser("versions", help="the stored versions and the activation timeline (JSON)")
    can = policy.add_parser("cancel", help="cancel a scheduled version before its day")
    can.add_argument("activation_id", type=int)
    can.add_argument("--reason", required=True)
    for p in (pub, vers, can):
        p.add_argument("--database-url", dest="database_url")
        p.add_argument("--policy", default=engine_cli.DEFAULT_POLICY, help="the policy file the service loads")
        p.set_defaults(func=cmd_policy_versions)
    sc = sub.add_parser("scheduler", help="run the job scheduler (one per deployment)")
    sc.add_argument("--database-url", dest="database_url")
    sc.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
    sc.add_argument(
        "--run-now",
        dest="run_now",
        help="run one job now and exit (collections-sweep, interest-accrual, credit-review, "
        "monthly-statements, audit-checkpoint, outbox-delivery)",
    )
    sc.add_argument("--as-of", dest="as_of")
    sc.add_argument("--no-wait", dest="no_wait", action="store_true", help="exit if another scheduler runs")
    sc.set_defaults(func=cmd_scheduler)
    dl = sub.add_parser("deliver", help="send the outbox: the automated actions the sweep queued (docs/delivery.md)")
    dl.add_argument("--loop", action="store_true", help="keep sending every --interval seconds until interrupted")
    dl.add_argument("--interval", type=float, default=30.0, help="seconds between rounds with --loop (default 30)")
    dl.add_argument("--limit", type=int, default=None, help="send at most this many messages (once)")
    dl.add_argument("--config", help="delivery configuration file (default $CREDITCTL_DELIVERY_CONFIG)")
    dl.add_argument("--requeue", type=int, metavar="ID", help="queue the dead letter ID again (with --reason) and exit")
    dl.add_argument("--reason", help="why the dead letter is requeued (recorded in the customer's trail)")
    dl.add_argument("--database-url", dest="database_url")
    dl.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
    dl.set_defaults(func=cmd_deliver)
    st = sub.add_parser("statements", help="queue the month's statements of account in the outbox (docs/delivery.md)")
    st.add_argument("--as-of", dest="as_of", help="the run's date (default: today); states the month before it")
    st.add_argument("--period", help="the month to state, YYYY-MM (default: the month before --as-of)")
    st.add_argument("--reason", help="recorded in each customer's trail (default: monthly statement of account …)")
    st.add_argument("--database-url", dest="database_url")
    st.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
    st.set_defaults(func=cmd_statements)
    imp = sub.add_parser("import", help="load a book from CSV / XLSX files (docs/import.md)")
    imp.add_argument("files", nargs="*", help="customers.csv, invoices.csv, … or one workbook with a sheet per kind")
    imp.add_argument("--dry-run", dest="dry_run", action="store_true", help="check and count; write nothing")
    imp.add_argument(
        "--skip-invalid",
        dest="skip_invalid",
        action="store_true",
        help="write the good rows; the rejected ones go to --rejected",
    )
    imp.add_argument("--rejected", default="rejected.csv", help="where --skip-invalid writes the rejected rows")
    imp.add_argument("--encoding", choices=["utf-8", "gb18030"], help="CSV encoding (default: detected)")
    imp.add_argument("--as-of", dest="as_of", help="the date of the decisions after the import (default: today)")
    imp.add_argument("--template", metavar="OUT.xlsx", help="write the import template and exit")
    imp.add_argument(
        "--reason",
        help="why existing credit files' decision fields change (a trail record's reason; required when they do)",
    )
    imp.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes that evaluate the decisions after the import (default 1; the parent writes)",
    )
    imp.add_argument("--database-url", dest="database_url")
    imp.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
    imp.add_argument("--quiet", action="store_true")
    imp.set_defaults(func=cmd_import)
    audit = sub.add_parser("audit", help="signed checkpoints of the trail (docs/audit.md)").add_subparsers(
        dest="audit_action", required=True
    )
    keygen = audit.add_parser("keygen", help="create an Ed25519 signing key; prints its public key")
    keygen.add_argument("--out", required=True)
    keygen.set_defaults(func=cmd_audit_keygen)
    for name, func, text in (
        ("checkpoint", cmd_audit_checkpoint, "sign and append a checkpoint of every chain"),
        ("verify", cmd_audit_verify, "check the chains and every checkpoint"),
    ):
        p = audit.add_parser(name, help=text)
        p.add_argument("--database-url", dest="database_url")
        p.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
        p.add_argument(
            "--checkpoints", help="the checkpoint log (default $CREDITCTL_CHECKPOINTS or var/checkpoints.jsonl)"
        )
        if name == "checkpoint":
            p.add_argument("--key", help="the private key file (default $CREDITCTL_AUDIT_KEY or var/audit-key)")
        else:
            p.add_argument(
                "--public-key",
                dest="public_key",
                help="the public key (PEM file) that verifies the checkpoints' signatures",
            )
        p.set_defaults(func=func)
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_action", required=True)
    create = keys.add_parser("create", help="create a key and print it once")
    create.add_argument("name")
    create.add_argument("--role", required=True)
    create.add_argument("--person", help="who holds the key (default: NAME)")
    create.add_argument("--authority", help="the key's level in the policy's authority matrix, e.g. team_lead")
    create.add_argument("--database-url", dest="database_url")
    create.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
    create.set_defaults(func=cmd_keys_create)
    klist = keys.add_parser("list", help="the keys, with holder, role and authority (never a secret)")
    klist.add_argument("--active", action="store_true", help="leave out revoked keys")
    krevoke = keys.add_parser("revoke", help="revoke a key: refused from the next request on, in every worker")
    krotate = keys.add_parser("rotate", help="a new secret for a key (printed once); the old one is revoked")
    krotate.add_argument(
        "--grace-seconds",
        dest="grace_seconds",
        type=int,
        default=0,
        help="how long the old secret keeps working (default 0: not at all)",
    )
    for p in (krevoke, krotate):
        p.add_argument("name")
        p.add_argument("--reason", required=True)
    for p in (klist, krevoke, krotate):
        p.add_argument("--database-url", dest="database_url")
        p.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
        p.set_defaults(func=cmd_keys_lifecycle)
    users_cmd = sub.add_parser("users", help="manage console users").add_subparsers(dest="users_action", required=True)
    ucreate = users_cmd.add_parser("create", help="create a console user (password asked, or --password-stdin)")
    ucreate.add_argument("name")
    ucreate.add_argument("--role", required=True)
    ucreate.add_argument("--locale", default="zh_CN", help="zh_CN (default) or en")
    ucreate.add_argument("--password-stdin", dest="password_stdin", action="store_true")
    ucreate.add_argument("--authority", help="the user's level in the policy's authority matrix, e.g. team_lead")
    ucreate.add_argument("--database-url", dest="database_url")
    ucreate.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
    ucreate.set_defaults(func=cmd_users_create)
    refs = sub.add_parser("referrals", help="referred credit checks").add_subparsers(
        dest="referrals_action", required=True
    )
    exp = refs.add_parser("expire", help="expire the referrals open past their last day, freeing their holds")
    exp.add_argument("--as-of", dest="as_of", help="the day (default: today)")
    exp.add_argument("--database-url", dest="database_url")
    exp.add_argument("--policy", default=engine_cli.DEFAULT_POLICY)
    exp.set_defaults(func=cmd_referrals_expire)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DomainError as exc:  # a refusal, not a crash: one line, the exit code of its code
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return exit_code(exc.code)


if __name__ == "__main__":
    sys.exit(main())
