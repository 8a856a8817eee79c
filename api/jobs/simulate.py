"""What-if simulation: the whole book under the active policy and under a candidate, and what
would change. Used by `POST /v1/policies/simulate` and `creditctl policy simulate`.

Nothing is written to the ledger, the customers or the actions; the simulation itself is one
decision of kind `simulation` in the trail (subject `policy:<candidate version>`).

Customers are read in batches of BATCH_SIZE (keyset pagination by id, one short transaction per
batch) and evaluated outside the transaction; the per-customer changes go to a spool that moves
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
import sys
import tempfile
import uuid
from decimal import Decimal

from sqlalchemy import select

from engine.compiler import compile_policy
from engine.decision import canonical_json
from engine.errors import EngineFailure, InputInvalid, PolicyInvalid
from engine.evaluator import evaluate_loaded
from engine.matcher import Disposed
from rules.money import minor_str, to_minor

from ..errors import DomainError, engine_failed, invalid
from ..service.validation import canonical, check_dates
from ..store import trail
from ..store.ledger import load_cases
from ..store.tables import Customer
from .batchgc import fewer_gc_passes

BATCH_SIZE = 50
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
        self._fh.write(canonical_json(entry) + "\n")
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
    and evaluate_loaded still runs the policy's own checks of it."""
    try:
        d = evaluate_loaded(policy, case, as_of).data
        checks = {}
        for r in case["reservations"]:
            order = {"amount": r["amount"], "order_id": r["order_id"]}
            checks[r["order_id"]] = evaluate_loaded(policy, case, as_of, order=order).data["credit"]["check"]["outcome"]
    except InputInvalid as exc:
        return {"error": _error_text(exc)}
    c = d["classification"]
    return {"amount_tier": c["amount_tier"], "aging_bucket": c["aging_bucket"], "reputation": c["reputation"],
            "limit": d["credit"]["limit"], "terms_days": d["credit"]["terms_days"],
            "dunning_stage": d["dunning"]["stage"], "interest": d["interest"]["total"],
            "exposure": d["credit"]["exposure"], "checks": checks}


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
def _batches(service, exponent: int, as_of: dt.date, size: int):
    """[(customer id, typed case)] per batch, by customer id; each batch read in its own short read-only
    transaction, one query per ledger table (api.store.ledger.load_cases)."""
    after = None
    while True:
        with service.read_tx() as s:
            q = select(Customer).order_by(Customer.id).limit(size)
            if after is not None:
                q = q.where(Customer.id > after)
            customers = s.execute(q).scalars().all()
            cases = load_cases(s, customers, exponent, as_of)
            batch = [(c.id, cases[c.id].typed) for c in customers]
        if not batch:
            return
        yield batch
        after = batch[-1][0]


class _Active:
    """The active version's compiled policy, pinned for the whole simulation, compiled again if
    the registry retires it meanwhile."""

    def __init__(self, service, version: str, policy):
        self.service, self.version, self.policy = service, version, policy

    def outcomes(self, case, as_of):
        for attempt in range(3):
            try:
                return outcomes(self.policy, case, as_of)
            except Disposed:
                if attempt == 2:
                    raise
                with self.service.tx() as s:
                    self.policy = self.service.registry.get(s, self.version)


def simulate(service, text: str, source: str, as_of: dt.date | None, *, actor: str, request_id: str,
             sink: ChangeSpool, batch_size: int = BATCH_SIZE) -> tuple[str, dict]:
    """Evaluate every customer under the active policy and under the candidate `text`; add each
    changed customer's {customer_id, changes} to `sink`; record the simulation in the trail.
    Returns (decision id, summary). Raises PolicyInvalid for an invalid candidate (nothing is
    recorded then), DomainError for a bad date, a candidate in another currency or an engine failure."""
    as_of = as_of or service.today()
    check_dates(as_of, "as_of")
    candidate = compile_policy(text, source)
    try:
        with service.tx() as s:
            active_policy = service.registry.active(s, as_of)      # the version in force on as_of
        active = _Active(service, active_policy.version, active_policy)
        if candidate.currency != active_policy.currency:
            raise invalid({"text": [f"the candidate's currency {candidate.currency} is not the active policy's "
                                    f"currency {active_policy.currency}, the ledger's"]})
        tally = Tally(active_policy.exponent)
        try:
            with fewer_gc_passes():
                for batch in _batches(service, active_policy.exponent, as_of, batch_size):
                    for customer_id, case in batch:
                        before = active.outcomes(case, as_of)
                        after = outcomes(candidate, case, as_of)
                        changes = diff(before, after)
                        tally.add(before, after, changes)
                        if changes:
                            sink.add({"customer_id": customer_id, "changes": changes})
        except EngineFailure as exc:
            raise engine_failed(exc, "the simulation was not recorded") from None
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
    prints them) or the engine failed; 2 bad input (date, database, currency; nothing on stdout)."""
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
    if url.startswith("sqlite:///") and not os.path.exists(url[len("sqlite:///"):]):
        return _fail("E_DATABASE", f"no database at {url}")
    engine, service = open_service(url)
    spool = ChangeSpool()
    try:
        try:
            decision_id, summary = simulate(service, text, args.file, as_of, actor=_cli_actor(),
                                            request_id=f"cli-{uuid.uuid4().hex}", sink=spool)
        except PolicyInvalid as exc:
            _print_policy_errors(exc)
            return 1
        except DomainError as exc:
            print(json.dumps(exc.body(), ensure_ascii=False), file=sys.stderr)
            return 1 if exc.code == "E_ENGINE" else 2
        except SQLAlchemyError as exc:
            return _fail("E_DATABASE", f"database {url}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
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
