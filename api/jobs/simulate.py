"""What-if simulation: the whole book under the active policy and under a candidate, and what
would change. Used by `POST /v1/policies/simulate` and `creditctl policy simulate`.

Nothing is written to the ledger, the customers or the actions; the simulation itself is one
decision of kind `simulation` in the trail (subject `policy:<candidate version>`).

Customers are read in batches of BATCH_SIZE (keyset pagination by id, one short transaction per
batch) and evaluated outside the transaction, outcomes only (engine/outcomes.py: no reasons, no
decision JSON; the facts built once for both policies when they build them alike), optionally in
several processes over customer-id ranges (`workers`), merged in id order; the per-customer changes go to a spool that moves
to a temporary file past SPOOL_MEMORY bytes, so memory stays bounded for any size of book. The
summary holds counts keyed by transitions between policy values (tiers, buckets, limits, …),
whose number depends on the policies, not on the book.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import traceback
import uuid
from decimal import Decimal

from sqlalchemy import func, select

from engine import compiler
from engine.compiler import compile_policy
from engine.decision import canonical_json
from engine.errors import EngineFailure, InputInvalid, PolicyInvalid
from engine.evaluator import evaluate_facts, evaluate_loaded, parse_order
from engine.facts import build_facts, check_case
from engine.matcher import Disposed
from engine.outcomes import base_outcomes, facts_key
from rules.money import minor_str, to_minor

from ..errors import DomainError, engine_failed, invalid
from ..service.validation import canonical, check_dates
from ..store import trail
from ..store.ledger import load_cases
from ..store.tables import Customer
from .batchgc import fewer_gc_passes

BATCH_SIZE = 50
MAX_WORKERS = 32           # worker processes (`--workers`, SIMULATE_WORKERS)
SPOOL_MEMORY = 4 << 20
KIND = "simulation"
# compared per customer, in this order; each held reservation's credit check comes after them
FIELDS = ("amount_tier", "aging_bucket", "reputation", "limit", "terms_days", "dunning_stage")
CSV_COLUMNS = ("customer_id", "field", "order_id", "before", "after")


class ChangeSpool:
    """The per-customer changes, one canonical JSON line each, in memory up to SPOOL_MEMORY bytes
    and in a temporary file beyond."""

    def __init__(self):
        self._fh = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, mode="w+", encoding="utf-8")
        self.count = 0

    def add(self, entry: dict) -> None:
        self.add_line(canonical_json(entry))

    def add_line(self, line: str) -> None:
        """An entry already in canonical JSON (one line, as a worker process wrote it)."""
        self._fh.write(line + "\n")
        self.count += 1

    @property
    def on_disk(self) -> bool:
        return bool(getattr(self._fh, "_rolled", False))

    def lines(self):
        """The entries as canonical JSON text (no trailing newline), in the order they were added."""
        self._fh.seek(0)
        for line in self._fh:
            yield line.rstrip("\n")

    def __iter__(self):
        for line in self.lines():
            yield json.loads(line)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------- evaluating
def _error_text(exc: InputInvalid) -> str:
    return f"{exc.code}: {exc}"


def outcomes(policy, case: dict, as_of: dt.date) -> dict:
    """What the simulation compares for one customer under one policy: its classes, limit, terms,
    dunning stage, total interest, and the credit-check outcome of each held reservation (each
    evaluated as the order, {"amount", "order_id"}). {"error": ...} when the policy refuses the case.
    `case` is typed (api.store.ledger.load_cases): the ledger's rows were validated when they were written,
    and evaluate_loaded still runs the policy's own checks of it.

    This is the definition, from full decisions; the simulation computes the same with `_side`
    (outcomes only, facts shared), and tests/test_outcomes.py checks that the two agree."""
    try:
        d = evaluate_loaded(policy, case, as_of).data
        checks = {}
        for r in case["reservations"]:
            order = {"amount": r["amount"], "order_id": r["order_id"]}
            checks[r["order_id"]] = evaluate_loaded(policy, case, as_of, order=order).body["credit"]["check"]["outcome"]
    except InputInvalid as exc:
        return {"error": _error_text(exc)}
    c = d["classification"]
    return {"amount_tier": c["amount_tier"], "aging_bucket": c["aging_bucket"], "reputation": c["reputation"],
            "limit": d["credit"]["limit"], "terms_days": d["credit"]["terms_days"],
            "dunning_stage": d["dunning"]["stage"], "interest": d["interest"]["total"],
            "exposure": d["credit"]["exposure"], "checks": checks}


def _side(policy, case: dict, as_of: dt.date, shared=None) -> tuple[dict, tuple | None]:
    """outcomes(policy, case, as_of) without the full decisions: the policy's checks of the case, the
    facts (built here, or `shared`: those another policy with the same engine.outcomes.facts_key
    built from this case), engine.outcomes.base_outcomes, and a full evaluation per held reservation
    for its credit-check outcome. Returns (outcomes, the facts to share: None when refused)."""
    try:
        check_case(case, policy)        # per policy (its categories); amounts the same under an equal key
        if shared is None:
            orders = []
            for r in case["reservations"]:
                minor, order_id = parse_order({"amount": r["amount"], "order_id": r["order_id"]}, policy)
                orders.append((order_id, minor))
            shared = (build_facts(case, policy, as_of),
                      tuple((order_id, build_facts(case, policy, as_of, minor, order_id)) for order_id, minor in orders))
        facts, orders = shared
        out = base_outcomes(policy, facts)
        out["checks"] = {order_id: evaluate_facts(policy, f).body["credit"]["check"]["outcome"] for order_id, f in orders}
    except InputInvalid as exc:
        return {"error": _error_text(exc)}, None
    return out, shared


def diff(before: dict, after: dict) -> list[dict]:
    """The changed fields of one customer: [{field, before, after[, order_id]}], in a fixed order."""
    if "error" in before or "error" in after:
        if before.get("error") == after.get("error"):
            return []
        return [{"field": "error", "before": before.get("error"), "after": after.get("error")}]
    out = [{"field": f, "before": before[f], "after": after[f]} for f in FIELDS if before[f] != after[f]]
    for order_id, outcome in before["checks"].items():
        if after["checks"].get(order_id) != outcome:
            out.append({"field": "check", "order_id": order_id, "before": outcome,
                        "after": after["checks"].get(order_id)})
    if before["interest"] != after["interest"]:
        out.append({"field": "interest", "before": before["interest"], "after": after["interest"]})
    return out


def _show(value) -> str:
    return "none" if value is None else str(value)


class Tally:
    """Counts and totals over the book (bounded: keyed by policy values, not by customers)."""

    def __init__(self, exponent: int):
        self.exponent = exponent
        self.customers = self.changed = self.reservations = 0
        self.counts: dict[str, dict[str, int]] = {}
        self.exposure = 0
        self.limits = [0, 0]
        self.interest = [0, 0]
        self.errors = [0, 0]

    def add(self, before: dict, after: dict, changes: list[dict]) -> None:
        self.customers += 1
        self.changed += bool(changes)
        sides = (before, after)
        for i, side in enumerate(sides):
            if "error" in side:
                self.errors[i] += 1
                continue
            self.limits[i] += to_minor(side["limit"], self.exponent)
            self.interest[i] += to_minor(side["interest"], self.exponent)
        ok = next((side for side in sides if "error" not in side), None)
        if ok is not None:       # exposure comes from the ledger: the same under both policies
            self.exposure += to_minor(ok["exposure"], self.exponent)
            self.reservations += len(ok["checks"])
        for c in changes:
            if c["field"] == "interest":
                key = ("increased" if to_minor(c["after"], self.exponent) > to_minor(c["before"], self.exponent)
                       else "decreased")
            elif c["field"] == "error":
                key = f"{'error' if c['before'] else 'ok'}→{'error' if c['after'] else 'ok'}"
            else:
                key = f"{_show(c['before'])}→{_show(c['after'])}"
            field = self.counts.setdefault(c["field"], {})
            field[key] = field.get(key, 0) + 1

    def merge(self, other: dict) -> None:
        """Add another part of the book's tally (`vars()` of a Tally, as a worker process returns it)."""
        self.customers += other["customers"]
        self.changed += other["changed"]
        self.reservations += other["reservations"]
        self.exposure += other["exposure"]
        for mine, theirs in ((self.limits, other["limits"]), (self.interest, other["interest"]),
                             (self.errors, other["errors"])):
            mine[0] += theirs[0]
            mine[1] += theirs[1]
        for field, keys in other["counts"].items():
            counts = self.counts.setdefault(field, {})
            for key, n in keys.items():
                counts[key] = counts.get(key, 0) + n

    def totals(self) -> dict:
        money = lambda v: minor_str(v, self.exponent)  # noqa: E731
        return {"exposure": money(self.exposure),
                "limits": {"before": money(self.limits[0]), "after": money(self.limits[1])},
                "utilisation_pct": {"before": _pct(self.exposure, self.limits[0]),
                                    "after": _pct(self.exposure, self.limits[1])},
                "interest": {"before": money(self.interest[0]), "after": money(self.interest[1])}}


def _pct(part: int, whole: int) -> str | None:
    """part / whole in %, rounded up to 0.01 like a decision's utilisation; None without limits."""
    if whole <= 0:
        return None
    bp = -((-part * 10000) // whole)
    return str(Decimal(bp).scaleb(-2).quantize(Decimal("0.01")))


# ---------------------------------------------------------------------------------------- the book
def _batches(service, exponent: int, as_of: dt.date, size: int, low: str | None = None, high: str | None = None):
    """[(customer id, typed case)] per batch, by customer id, low ≤ id < high (None: unbounded); each
    batch read in its own short read-only transaction (api.store.ledger.load_cases)."""
    after = None
    while True:
        with service.read_tx() as s:
            q = select(Customer).order_by(Customer.id).limit(size)
            if after is not None:
                q = q.where(Customer.id > after)
            elif low is not None:
                q = q.where(Customer.id >= low)
            if high is not None:
                q = q.where(Customer.id < high)
            customers = s.execute(q).scalars().all()
            cases = load_cases(s, customers, exponent, as_of, plain=False)     # no facts recorded per customer
            batch = [(c.id, cases[c.id].typed) for c in customers]
        if not batch:
            return
        yield batch
        after = batch[-1][0]


def _partitions(service, workers: int) -> list[tuple[str | None, str | None]]:
    """The book cut into `workers` customer-id ranges of about equal size, [(low, high)], in id order
    (fewer when the book has fewer customers)."""
    if workers <= 1:
        return [(None, None)]
    with service.read_tx() as s:
        total = s.scalar(select(func.count()).select_from(Customer))
        cuts = []
        for offset in sorted({total * k // workers for k in range(1, workers)} - {0}):
            cid = s.scalar(select(Customer.id).order_by(Customer.id).offset(offset).limit(1))
            if cid is not None:
                cuts.append(cid)
    bounds = [None, *cuts, None]
    return list(zip(bounds[:-1], bounds[1:]))


class _Active:
    """The active version's compiled policy, pinned for the whole simulation, compiled again if
    the registry retires it meanwhile."""

    def __init__(self, service, version: str, policy):
        self.service, self.version, self.policy = service, version, policy

    def side(self, case, as_of):
        for attempt in range(3):
            try:
                return _side(self.policy, case, as_of)
            except Disposed:
                if attempt == 2:
                    raise
                with self.service.tx() as s:
                    self.policy = self.service.registry.get(s, self.version)


def _run(service, active: _Active, candidate, as_of: dt.date, batch_size: int, low, high, tally: Tally, add) -> None:
    """Every customer of [low, high) under both policies: the tally, and each changed customer to `add`.
    The facts are built once for both policies when they build them alike (engine.outcomes.facts_key)."""
    share = facts_key(active.policy) == facts_key(candidate)
    with fewer_gc_passes():
        for batch in _batches(service, active.policy.exponent, as_of, batch_size, low, high):
            for customer_id, case in batch:
                before, shared = active.side(case, as_of)
                after, _ = _side(candidate, case, as_of, shared if share else None)
                changes = diff(before, after)
                tally.add(before, after, changes)
                if changes:
                    add({"customer_id": customer_id, "changes": changes})


# ---------------------------------------------------------------------------------------- worker processes
# Each worker is a new Python process (not a fork, and not multiprocessing's spawn, which re-runs the parent's
# main script): it opens its own database connection and compiles both policies itself. durable_rules'
# compiled rulesets are C state of the process that made them, and the parent holds threads (the SQLite write
# queue, PostgreSQL idle pings) that make forking it unsafe. The spec goes to the worker's stdin and its
# result comes back on its stdout, both pickled; its stderr is the parent's. The compiler's engine limits go
# with the spec, so a candidate compiles in a worker exactly as it did in the parent.
_LIMITS = ("MAX_TESTS_PER_FIELD", "MAX_LEADING_RANGE_TESTS", "MAX_RULES_PER_CONDITION")
_WORKER_CODE = f"from {__name__} import _worker_process; _worker_process()"


def _database_url(service) -> str | None:
    """The URL a worker process opens the service's database with; None when it can't (in memory)."""
    bind = service.sessionmaker.kw.get("bind")
    url = getattr(bind, "url", None)
    if url is None or (url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")):
        return None
    text = url.render_as_string(hide_password=False)
    return text.replace("postgresql+psycopg://", "postgresql://", 1)


def _worker_process() -> None:
    """A worker's main: one partition (the spec on stdin); its Tally on stdout, the changes (canonical JSON
    lines) in spec["changes"]; an engine failure as {"engine_failure": text}, a database error as
    {"database_failure": text}, anything else as {"failure": traceback}."""
    from sqlalchemy.exc import SQLAlchemyError
    spec = pickle.load(sys.stdin.buffer)
    try:
        result = _worker(spec)
    except SQLAlchemyError as exc:
        result = {"database_failure": f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}"}
    except BaseException:          # noqa: BLE001 — reported to the parent, which raises
        result = {"failure": traceback.format_exc()}
    sys.stdout.buffer.write(pickle.dumps(result))
    sys.stdout.flush()


def _worker(spec: dict) -> dict:
    for name, value in spec["limits"].items():
        setattr(compiler, name, value)
    engine, service = open_service(spec["url"])
    candidate = None
    try:
        candidate = compile_policy(spec["text"], spec["source"])
        with service.read_tx() as s:
            active = _Active(service, spec["active_version"], service.registry.get(s, spec["active_version"]))
        tally = Tally(active.policy.exponent)
        with open(spec["changes"], "w", encoding="utf-8") as fh:
            def add(entry):
                fh.write(canonical_json(entry) + "\n")
            try:
                _run(service, active, candidate, spec["as_of"], spec["batch_size"], spec["low"], spec["high"], tally,
                     add)
            except EngineFailure as exc:
                return {"engine_failure": str(exc)}
        return {"tally": vars(tally)}
    finally:
        if candidate is not None:
            candidate.dispose()
        engine.dispose()           # the active policy's rulesets go with the process


class _Workers:
    """The worker processes of partitions 1…n-1 (the caller's process runs partition 0)."""

    def __init__(self, specs: list[dict]):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))   # the parent's code
        self.running = []
        try:
            for spec in specs:
                proc = subprocess.Popen([sys.executable, "-c", _WORKER_CODE], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env)
                self.running.append((spec, proc))
                proc.stdin.write(pickle.dumps(spec))
                proc.stdin.close()
        except BaseException:
            self.stop()
            raise

    def results(self):
        """(spec, result) of each partition in order, as each worker finishes."""
        for k, (spec, proc) in enumerate(self.running, 1):
            out = proc.stdout.read()        # a Tally: far below a pipe's buffer, so no worker blocks on it
            proc.wait()
            try:
                result = pickle.loads(out)
            except Exception:               # noqa: BLE001 — it died before answering
                result = {"failure": f"simulation worker {k} exited with code {proc.returncode}"}
            yield spec, result

    def stop(self) -> None:
        for _, proc in self.running:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()


class WorkerFailed(RuntimeError):
    """A simulation worker process failed for another reason than the rules engine (its traceback)."""


class WorkerDatabaseFailed(WorkerFailed):
    """A simulation worker's database connection or statement failed (its error's first line)."""


def simulate(service, text: str, source: str, as_of: dt.date | None, *, actor: str, request_id: str,
             sink: ChangeSpool, batch_size: int = BATCH_SIZE, workers: int = 1) -> tuple[str, dict]:
    """Evaluate every customer under the active policy and under the candidate `text`; add each
    changed customer's {customer_id, changes} to `sink`; record the simulation in the trail.
    Returns (decision id, summary). Raises PolicyInvalid for an invalid candidate (nothing is
    recorded then), DomainError for a bad date, a candidate in another currency or an engine failure.

    `workers` > 1 cuts the book into that many customer-id ranges and evaluates them at once: this
    process the first, a spawned process each of the others (its own connection, its own compiled
    policies). Their tallies and changes are merged in id order, so the summary, the changes and the
    trail record are those of one process. An in-memory database is simulated in this process alone."""
    as_of = as_of or service.today()
    check_dates(as_of, "as_of")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise invalid({"workers": [f"workers must be a whole number from 1 to {MAX_WORKERS}"]})
    candidate = compile_policy(text, source)
    pool = None
    try:
        with service.tx() as s:
            active_policy = service.registry.active(s, as_of)      # the version in force on as_of
        active = _Active(service, active_policy.version, active_policy)
        if candidate.currency != active_policy.currency:
            raise invalid({"text": [f"the candidate's currency {candidate.currency} is not the active policy's "
                                    f"currency {active_policy.currency}, the ledger's"]})
        tally = Tally(active_policy.exponent)
        url = _database_url(service) if workers > 1 else None
        parts = _partitions(service, workers) if url else [(None, None)]
        with tempfile.TemporaryDirectory(prefix="creditctl-simulate-") as tmp:
            specs = [{"url": url, "text": text, "source": source, "active_version": active.version, "as_of": as_of,
                      "batch_size": batch_size, "low": low, "high": high,
                      "limits": {name: getattr(compiler, name) for name in _LIMITS},
                      "changes": os.path.join(tmp, f"part{k}.jsonl")} for k, (low, high) in enumerate(parts)]
            pool = _Workers(specs[1:]) if len(specs) > 1 else None
            try:
                _run(service, active, candidate, as_of, batch_size, parts[0][0], parts[0][1], tally, sink.add)
            except EngineFailure as exc:
                raise engine_failed(exc, "the simulation was not recorded") from None
            for spec, result in (pool.results() if pool else ()):
                if "engine_failure" in result:
                    raise engine_failed(EngineFailure(result["engine_failure"]), "the simulation was not recorded")
                if "database_failure" in result:
                    raise WorkerDatabaseFailed(result["database_failure"])
                if "failure" in result:
                    raise WorkerFailed(result["failure"])
                tally.merge(result["tally"])
                with open(spec["changes"], encoding="utf-8") as fh:
                    for line in fh:
                        sink.add_line(line.rstrip("\n"))
        summary = {"as_of": as_of.isoformat(), "active_version": active.version,
                   "candidate_version": candidate.version, "currency": candidate.currency,
                   "customers": tally.customers, "customers_changed": tally.changed,
                   "reservations": tally.reservations, "changes": tally.counts,
                   "errors": {"before": tally.errors[0], "after": tally.errors[1]}, "totals": tally.totals()}
        facts = canonical({"as_of": as_of, "active_version": active.version, "candidate_version": candidate.version,
                           "customers": tally.customers})
        with service.tx() as s:
            rec = trail.append(s, subject=f"policy:{candidate.version}", kind=KIND, actor=actor,
                               request_id=request_id, as_of=as_of, facts=facts, policy_version=candidate.version,
                               result=canonical_json(summary), outcome=None, created_at=service.clock())
            decision_id = rec.id
        return decision_id, summary
    finally:
        if pool is not None:
            pool.stop()
        candidate.dispose()


# ---------------------------------------------------------------------------------------- output
def json_chunks(decision_id: str, summary: dict, spool: ChangeSpool):
    """The report as JSON text, streamed: {"decision_id", "summary", "customers": [...]}."""
    yield ('{"decision_id": ' + json.dumps(decision_id) + ', "summary": '
           + json.dumps(summary, ensure_ascii=False, sort_keys=True) + ', "customers": [')
    for i, line in enumerate(spool.lines()):
        yield ("," if i else "") + "\n  " + line
    yield "\n]}\n"


def csv_chunks(spool: ChangeSpool):
    """One row per customer × changed field: customer_id, field, order_id, before, after."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for entry in spool:
        for c in entry["changes"]:
            w.writerow([entry["customer_id"], c["field"], c.get("order_id", ""), _cell(c["before"]),
                        _cell(c["after"])])
        if buf.tell() > 1 << 16:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def _cell(value) -> str:
    return "" if value is None else str(value)


# ---------------------------------------------------------------------------------------- the CLI
def open_service(url: str):
    """A Service on an existing database (no migrations, no policy file loaded: nothing but the
    simulation's trail record is written)."""
    from ..service.context import Context
    from ..store.database import make_engine, make_sessionmaker
    from ..store.policy_store import PolicyRegistry
    engine = make_engine(url)
    return engine, Context(make_sessionmaker(engine), PolicyRegistry())


def _cli_actor() -> str:
    try:
        import getpass
        return f"cli:{getpass.getuser()}"[:128]
    except Exception:           # noqa: BLE001 — no user name in this environment
        return "cli"


def _fail(code: str, message: str, field: str | None = None) -> int:
    print(json.dumps({"code": code, "message": message, "errors": {field: [message]} if field else {}},
                     ensure_ascii=False), file=sys.stderr)
    return 2


def run_cli(args, url: str) -> int:
    """`creditctl policy simulate`. Exit 0 done; 1 the candidate is invalid (errors as `policy check`
    prints them) or the engine failed; 2 bad input (date, workers, database, currency; nothing on stdout),
    or a worker process failed."""
    from sqlalchemy.exc import SQLAlchemyError

    from engine.cli import _print_policy_errors
    try:
        with open(args.file, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        print(f"{args.file}: E_FILE: {exc.strerror}", file=sys.stderr)
        return 1
    except UnicodeDecodeError as exc:
        print(f"{args.file}: E_FILE: not UTF-8 text ({exc.reason})", file=sys.stderr)
        return 1
    try:
        as_of = dt.date.fromisoformat(args.as_of) if args.as_of else None
    except ValueError:
        return _fail("E_INPUT_INVALID", f"'{args.as_of}' is not an ISO date (YYYY-MM-DD)", "as_of")
    if args.output and not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
        return _fail("E_INPUT_INVALID", f"no folder for the output file {args.output}", "output")
    if not 1 <= args.workers <= MAX_WORKERS:
        return _fail("E_INPUT_INVALID", f"--workers must be from 1 to {MAX_WORKERS}", "workers")
    if url.startswith("sqlite:///") and not os.path.exists(url[len("sqlite:///"):]):
        return _fail("E_DATABASE", f"no database at {url}")
    engine, service = open_service(url)
    spool = ChangeSpool()
    try:
        try:
            decision_id, summary = simulate(service, text, args.file, as_of, actor=_cli_actor(),
                                            request_id=f"cli-{uuid.uuid4().hex}", sink=spool, workers=args.workers)
        except PolicyInvalid as exc:
            _print_policy_errors(exc)
            return 1
        except DomainError as exc:
            print(json.dumps(exc.body(), ensure_ascii=False), file=sys.stderr)
            return 1 if exc.code == "E_ENGINE" else 2
        except SQLAlchemyError as exc:
            return _fail("E_DATABASE", f"database {url}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
        except WorkerDatabaseFailed as exc:
            return _fail("E_DATABASE", f"database {url}: {exc}")
        except WorkerFailed as exc:
            print(exc, file=sys.stderr)
            return _fail("E_INTERNAL", "a simulation worker process failed; the simulation was not recorded")
        chunks = json_chunks(decision_id, summary, spool) if args.format == "json" else csv_chunks(spool)
        if args.output:
            try:
                with open(args.output, "w", encoding="utf-8", newline="") as out:
                    out.writelines(chunks)
            except OSError as exc:
                return _fail("E_OUTPUT", f"{args.output}: {exc.strerror} (simulation {decision_id} is recorded)",
                             "output")
        else:
            sys.stdout.writelines(chunks)
            sys.stdout.flush()
        print(f"simulation {decision_id}: {summary['customers']} customers, {summary['customers_changed']} "
              f"changed (active {summary['active_version'][:12]} → candidate {summary['candidate_version'][:12]}, "
              f"as of {summary['as_of']})", file=sys.stderr)
        return 0
    finally:
        spool.close()
        engine.dispose()
