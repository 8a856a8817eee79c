"""The daily collections sweep: evaluate every customer, advance the dunning workflow, create
the actions that fall due, and hand automated ones to the notifier.

Crash safety: each group of customers is one transaction (their decisions, dunning states,
actions and the run's item markers). A run killed half way is resumed by running the sweep again
for the same day: customers already marked are skipped, the rest are processed, and the unique key
on actions (customer, invoice, type, stage, due date) means nothing is created twice.

Speed: a group's ledger is read with one query per table and its writes go out as a few batched
statements, so the database cost per customer is a fraction of one round trip.

Scale: a run is split into partitions (ranges of customer ids). Workers claim partitions
(`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serialises writers), so several processes
share one run and no customer is processed twice.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import socket
import uuid
from typing import NamedTuple

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.decision import canonical_json
from engine.errors import EngineFailure, InputInvalid
from engine.evaluator import evaluate_loaded_with_facts
from engine.matcher import Disposed
from rules.money import from_minor

from ..errors import DomainError, conflict, not_found
from ..reports import figures
from ..reports.book import Bands
from ..service import legal_cases
from ..service.audit import checkpoint_if_configured
from ..service.decide import action_rows, remember_last_evaluations, summary_of
from ..store import trail
from ..store.database import insert_ignoring_duplicates
from ..store.ledger import load_cases
from ..store.tables import (
    Action,
    Customer,
    DunningState,
    SweepItem,
    SweepPartition,
    SweepRun,
)
from .batchgc import fewer_gc_passes

log = logging.getLogger("creditctl.sweep")
PARTITION_SIZE = 500
# customers per transaction: large enough that the per-statement cost is spread thin, small enough that
# a transaction (and, on SQLite, the write lock) stays short and a crash loses little work
GROUP_SIZE = 250
LEASE_SECONDS = 120


class LogNotifier:
    """Default notifier: the action row is the outbox; this logs what would be sent.

    A notifier is any callable taking one action as a dict (action_dict()); it returns once it has the
    action (raises otherwise). Delivery is at least once: a crash after the hand-over and before the row
    is marked sent hands it over again on resume, with the same `idempotency_key`."""

    def __call__(self, action: dict) -> None:
        log.info("outbox: %s via %s to customer %s for invoice %s (%s) [%s]", action["type"], action["channel"],
                 action["customer_id"], action["invoice_id"], action["due_on"], action["idempotency_key"])


def action_dict(a: Action, exponent: int) -> dict:
    """What a notifier gets: the action, its amount as a decimal string, and a key stable for the action
    (its unique key uq_actions_once), the same on every delivery attempt."""
    ident = f"{a.customer_id}\x1f{a.invoice_id}\x1f{a.type}\x1f{a.stage}\x1f{a.due_on.isoformat()}"
    return {"id": a.id, "idempotency_key": "act-" + hashlib.sha256(ident.encode("utf-8")).hexdigest()[:32],
            "customer_id": a.customer_id, "invoice_id": a.invoice_id, "type": a.type, "channel": a.channel,
            "owner": a.owner, "stage": a.stage, "due_on": a.due_on.isoformat(),
            "amount": str(from_minor(a.amount_minor, exponent)), "decision_id": a.decision_id}


class _LeaveQueued:
    """The notifier when an outbox worker delivers (api/jobs/outbox.py): automated actions stay `queued`
    for it, and the sweep hands nothing over itself."""

    def __call__(self, action: dict) -> None:
        raise AssertionError("the outbox worker delivers queued actions")


OUTBOX = _LeaveQueued()


def default_notifier(service):
    """The outbox worker's when the service has delivery configured (Context.delivery), else the log line."""
    return OUTBOX if getattr(getattr(service, "delivery", None), "leave_queued", False) else LogNotifier()


_QUEUED = select(Action).where(Action.status == "queued").order_by(Action.id)


def deliver_pending(service, notifier, ids: list[int] | None = None) -> dict:
    """Hand every queued automated action (of `ids`, or all) to the notifier; each is marked sent, with
    delivered_at, only after the notifier returned. One that fails stays queued for the next sweep."""
    counts = {"delivered": 0, "failed": 0}
    if notifier is OUTBOX or (ids is not None and not ids):
        return counts
    with service.read_tx() as s:
        exponent = service.registry.active(s).exponent
        q = _QUEUED if ids is None else _QUEUED.where(Action.id.in_(ids))
        actions = s.execute(q).scalars().all()
    delivered = []
    try:
        for a in actions:
            try:
                notifier(action_dict(a, exponent))
            except Exception as exc:            # noqa: BLE001 — any notifier failure leaves the action queued
                counts["failed"] += 1
                log.warning("outbox: action %s not delivered (stays queued): %s", a.id, exc)
                continue
            delivered.append(a.id)
    finally:
        # one write for the batch (a crash before it hands these over again: at least once, same keys)
        if delivered:
            with service.tx() as s:
                s.execute(update(Action).where(Action.id.in_(delivered), Action.status == "queued")
                          .values(status="sent", delivered_at=service.clock()))
    counts["delivered"] = len(delivered)
    return counts


def start(service, as_of: dt.date, actor: str, partition_size: int = PARTITION_SIZE) -> str:
    """Join the unfinished run for `as_of`, or create one with its partitions."""
    running_run = (select(SweepRun.id).where(SweepRun.as_of == as_of, SweepRun.status == "running")
                   .order_by(SweepRun.started_at).limit(1))
    for _ in range(5):
        try:
            with service.tx() as s:
                # checked again inside the transaction that creates the run: a worker started at the same
                # moment may have created it since (SQLite serialises these transactions; on PostgreSQL
                # two creators collide on the run id and the loser joins on its next try)
                running = s.execute(running_run).scalar_one_or_none()
                if running is not None:
                    return running
                n = s.execute(select(func.count()).select_from(SweepRun).where(SweepRun.as_of == as_of)).scalar_one()
                run = SweepRun(id=f"{as_of.isoformat()}.{n + 1}", as_of=as_of, status="running", actor=actor,
                               started_at=service.clock())
                s.add(run)
                s.flush()
                number, count, chunk = 0, 0, []

                def close_chunk():
                    nonlocal number
                    s.add(SweepPartition(run_id=run.id, number=number, first_customer=chunk[0],
                                         last_customer=chunk[-1], status="pending"))
                    number += 1
                ids = s.execute(select(Customer.id).order_by(Customer.id).execution_options(yield_per=5000)).scalars()
                for cid in ids:
                    chunk.append(cid)
                    count += 1
                    if len(chunk) == partition_size:
                        close_chunk()
                        chunk = []
                if chunk:
                    close_chunk()
                run.customers, run.partitions = count, number
                if number == 0:
                    run.status, run.finished_at = "done", service.clock()
                return run.id
        except IntegrityError:
            continue            # another worker created the run at the same moment: join it
    raise conflict(f"could not start or join the sweep for {as_of}")


HOST = socket.gethostname()[:40]


def worker_id() -> str:
    """host:pid:random — lets a worker on the same host tell that the claimant of a partition is gone."""
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def worker_gone(worker: str | None) -> bool:
    """True only when `worker` provably died: it ran on this host and its process no longer exists."""
    host, _, rest = (worker or "").partition(":")
    pid = rest.partition(":")[0]
    if host != HOST or not pid.isdigit():
        return False            # another host (or an old worker id): only its lease can tell
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:     # alive, another user's
        return False
    return False


def left_over(service, run_id: str) -> list[dict]:
    """The partitions of the run not done: number, status, worker, and when its lease lapses."""
    with service.read_tx() as s:
        parts = s.execute(select(SweepPartition).where(SweepPartition.run_id == run_id,
                                                       SweepPartition.status != "done")
                          .order_by(SweepPartition.number)).scalars().all()
    return [{"partition": p.number, "status": p.status, "worker": p.worker,
             "lease_until": (p.heartbeat + dt.timedelta(seconds=LEASE_SECONDS)).isoformat() + "Z"
             if p.heartbeat else None} for p in parts]


def _claim(service, run_id: str, worker: str, reclaim: bool) -> SweepPartition | None:
    with service.tx() as s:
        now = service.clock()
        stale = now - dt.timedelta(seconds=LEASE_SECONDS)
        claimed = s.execute(select(SweepPartition.number, SweepPartition.worker).where(
            SweepPartition.run_id == run_id, SweepPartition.status == "claimed")).all()
        dead = [number for number, holder in claimed if worker_gone(holder)]
        claimable = (SweepPartition.status == "pending") | (
            (SweepPartition.status == "claimed") & ((SweepPartition.heartbeat < stale) if not reclaim else True))
        if dead:                 # a partition whose worker died on this host is taken over at once
            claimable = claimable | ((SweepPartition.status == "claimed") & SweepPartition.number.in_(dead))
        part = s.execute(select(SweepPartition).where(SweepPartition.run_id == run_id, claimable)
                         .order_by(SweepPartition.number).limit(1)
                         .with_for_update(skip_locked=True)).scalar_one_or_none()
        if part is None:
            return None
        part.status, part.worker, part.heartbeat = "claimed", worker, now
        s.flush()
        s.expunge(part)
        return part


class _Evaluated(NamedTuple):
    customer_id: str
    row: dict                 # its trail record, chained to the head it was evaluated after (trail.chain)
    data: dict                # the decision's body (reasons as data: engine/reasons.py)
    state: tuple | None       # the dunning state it stepped from: (stage, entered_on, as_of, prev_stage, prev_entered_on)
    exponent: int             # the policy currency's minor-unit exponent
    share: tuple              # its part of the book figures (reports/figures.customer_share)
    policy_version: str
    decision: object = None   # the Decision, to render the reasons a note quotes


def _evaluate(service, s, run: SweepRun, customers: list[Customer], heads: dict) -> tuple[list[_Evaluated], list[dict]]:
    """Evaluate customers from the ledger as `s` sees it, each decision chained to its trail head in
    `heads` ({customer: (seq, hash)}): (evaluated, error items). Writes nothing."""
    as_of = run.as_of
    states = {st.customer_id: st for st in s.execute(
        select(DunningState).where(DunningState.customer_id.in_([c.id for c in customers]))).scalars()}
    policy = service.registry.active(s, as_of)          # the version in force on the run's day
    cases = load_cases(s, customers, policy.exponent, as_of, states=states)
    now = service.clock()
    # the facts snapshot: the bytes service.decide's canonical() writes, the plain case holding
    # only JSON types (the date is written as canonical() writes it)
    iso_day = as_of.isoformat()
    evaluated, errors = [], []
    made: dict[str, Bands] = {}

    def bands() -> Bands:           # of the policy that decided (a retired version is compiled again)
        if policy.version not in made:
            made[policy.version] = Bands(policy)
        return made[policy.version]

    def decide(case):
        nonlocal policy
        for attempt in range(3):
            try:
                return evaluate_loaded_with_facts(policy, case, as_of)
            except Disposed:       # the version was retired meanwhile (a reload): compiled again
                if attempt == 2:
                    raise
                policy = service.registry.active(s, as_of)
    for c in customers:
        try:
            decision, facts = decide(cases[c.id].typed)
        except (InputInvalid, EngineFailure) as exc:
            error = ("; ".join(f"{e.code}: {e.field}: {e.message}" for e in exc.errors)
                     if isinstance(exc, InputInvalid) else f"E_ENGINE: {exc}")
            errors.append({"run_id": run.id, "customer_id": c.id, "outcome": "error", "stage": None, "actions": 0,
                           "error": error})
            log.warning("sweep %s: customer %s failed: %s", run.id, c.id, error)
            continue
        st = states.get(c.id)
        record = {"subject": c.id, "kind": "sweep", "actor": run.actor, "request_id": run.id, "as_of": as_of,
                  "facts": canonical_json({"case": cases[c.id].plain, "as_of": iso_day, "order": None}),
                  "policy_version": decision.policy_version, "result": decision.stored,
                  "outcome": decision.outcome, "created_at": now}
        evaluated.append(_Evaluated(
            c.id, trail.chain([record], {c.id: heads[c.id]})[0], decision.body,
            None if st is None else (st.stage, st.entered_on, st.as_of, st.prev_stage, st.prev_entered_on),
            policy.exponent, figures.customer_share(bands(), facts), policy.version, decision))
    return evaluated, errors


def process_group(service, run: SweepRun, customer_ids: list[str], notifier) -> dict:
    """A group of customers: read and evaluate them without holding a write lock (so several workers
    evaluate at once, SQLite included), then write every decision, dunning state, action and run
    item in one short transaction of batched statements.

    Between the two, an event, credit check or evaluation may have decided about one of them: each
    such write appends to the customer's trail chain, so a chain that grew since the read marks the
    customer's evaluation stale, and it is evaluated again inside the write transaction. The others'
    trail records are chained (and hashed) during the read, so the write only inserts them. Writes that
    record no decision (a credit-file edit, a released reservation) order as if made just after the sweep.
    A customer whose evaluation fails gets an error item and nothing else. Returns counts."""
    as_of = run.as_of
    counts = {"done": 0, "skipped": 0, "error": 0, "actions": 0}
    with service.read_tx() as s:
        seen = trail.read_heads(s, customer_ids)        # first: anything decided after this is caught
        done = set(s.execute(select(SweepItem.customer_id).where(SweepItem.run_id == run.id,
                                                                 SweepItem.customer_id.in_(customer_ids))).scalars())
        customers = s.execute(select(Customer).where(Customer.id.in_(customer_ids), Customer.id.not_in(done))
                              .order_by(Customer.id)).scalars().all()
        evaluated, errors = _evaluate(service, s, run, customers, seen) if customers else ([], [])
    automated: list[Action] = []
    with service.tx() as s:
        ids = [c.id for c in customers]
        locked = set(s.execute(select(Customer.id).where(Customer.id.in_(ids)).order_by(Customer.id)
                               .with_for_update()).scalars())
        done = set(s.execute(select(SweepItem.customer_id).where(SweepItem.run_id == run.id,
                                                                 SweepItem.customer_id.in_(ids))).scalars())
        heads = trail.lock_heads(s, locked - done, service.clock()) if locked - done else {}
        stale = {cid for cid, head in heads.items() if head != seen[cid]}
        keep = [e for e in evaluated if e.customer_id in heads and e.customer_id not in stale]
        errors = [e for e in errors if e["customer_id"] in heads and e["customer_id"] not in stale]
        if stale:
            again = s.execute(select(Customer).where(Customer.id.in_(stale)).order_by(Customer.id)).scalars().all()
            fresh, fresh_errors = _evaluate(service, s, run, again, heads)
            keep, errors = sorted(keep + fresh), errors + fresh_errors
        counts["skipped"] = len(customer_ids) - len(keep) - len(errors)
        trail.insert_chained(s, [e.row for e in keep])
        # the customers as read (or read again, when stale): their chain has not moved since, so neither have
        # the rows' last evaluation and segments
        as_read = {c.id: (c.last_as_of, c.last_segments) for c in [*customers, *(again if stale else ())]}
        _write_states(s, keep, as_of, as_read)
        new_actions = [row for e in keep for row in action_rows(e.customer_id, e.data, e.row["id"], e.exponent)]
        if new_actions:        # Core executemany: one compiled statement (the ORM's bulk path costs more)
            s.connection().execute(insert_ignoring_duplicates(s, Action.__table__), new_actions)
            # a litigation referral opens the customer's legal case (once while open)
            legal_cases.open_on_referrals(
                s, [legal_cases.Referred(e.customer_id, e.data, e.row["id"], e.exponent, e.policy_version) for e in keep],
                actor=run.actor, request_id=run.id, now=service.clock())
        open_actions: dict[str, list[Action]] = {}
        for a in s.execute(select(Action).where(Action.customer_id.in_([e.customer_id for e in keep]),
                                                Action.status == "open", Action.due_on <= as_of)
                           .order_by(Action.id)).scalars():
            open_actions.setdefault(a.customer_id, []).append(a)
        items = list(errors)
        for e in keep:
            created = _settle_day(open_actions.get(e.customer_id, ()), e.data["dunning"], e.row["id"], as_of,
                                  automated, e.decision.reasons(family="dunning") if e.data["dunning"]["stage"] == 0
                                  else ())
            items.append({"run_id": run.id, "customer_id": e.customer_id, "outcome": "done",
                          "stage": e.data["dunning"]["stage"], "actions": created, "error": None})
            counts["actions"] += created
        counts["done"], counts["error"] = len(keep), len(errors)
        if items:
            s.connection().execute(insert(SweepItem.__table__), items)
        shares: dict[str, figures.Sums] = {}
        for e in keep:
            shares.setdefault(e.policy_version, figures.Sums(e.policy_version)).add(e.share)
        for sums in shares.values():
            figures.add_group(s, run.id, sums)
    # after commit: never announce an action that was rolled back; marked sent once the notifier has it
    deliver_pending(service, notifier, [a.id for a in automated])
    return counts


_STATE = (update(DunningState.__table__).where(DunningState.__table__.c.customer_id == bindparam("b_id"))
          .values(stage=bindparam("b_stage"), entered_on=bindparam("b_entered"), as_of=bindparam("b_as_of"),
                  prev_stage=bindparam("b_prev_stage"), prev_entered_on=bindparam("b_prev_entered")))


def _write_states(s, evaluated: list[_Evaluated], as_of: dt.date, as_read: dict) -> None:
    """Each customer's latest evaluation (customers.last_*) and dunning state, in batched statements."""
    conn = s.connection()
    remember_last_evaluations(s, [(e.customer_id, summary_of(e.data, e.exponent)) for e in evaluated], as_of,
                              as_read)
    inserts, updates = [], []
    for e in evaluated:
        stepped = _step_state(e.state, e.data, as_of)
        if stepped is None:
            continue
        stage, entered, prev_stage, prev_entered = stepped
        if e.state is None:
            inserts.append({"customer_id": e.customer_id, "stage": stage, "entered_on": entered, "as_of": as_of,
                            "prev_stage": prev_stage, "prev_entered_on": prev_entered})
        else:
            updates.append({"b_id": e.customer_id, "b_stage": stage, "b_entered": entered, "b_as_of": as_of,
                            "b_prev_stage": prev_stage, "b_prev_entered": prev_entered})
    if inserts:
        conn.execute(insert(DunningState.__table__), inserts)
    if updates:
        conn.execute(_STATE, updates)


def _step_state(state: tuple | None, data: dict, as_of: dt.date) -> tuple | None:
    """The dunning state after this decision: (stage, entered_on, prev_stage, prev_entered_on), or None
    to leave it (a state already stepped on a later day)."""
    detail = data["dunning"]["stage_detail"]
    stage = data["dunning"]["stage"]
    entered = dt.date.fromisoformat(detail["entered_on"]) if detail and detail["entered_on"] else None
    if state is None:
        # no state before today: today's (stateless) result is also the baseline a same-day
        # re-evaluation starts from, so it lands on the same stage (not on 0's next step)
        return stage, entered, stage, entered
    old_stage, old_entered, old_as_of, prev_stage, prev_entered = state
    if old_as_of > as_of:
        return None
    if old_as_of < as_of:
        prev_stage, prev_entered = old_stage, old_entered
    return stage, entered, prev_stage, prev_entered


def _settle_day(open_actions, dunning: dict, decision_id: str, as_of: dt.date, automated: list,
                reasons: list = ()) -> int:
    """The sweep's decision is the day's word on the customer's open actions (due on or before as_of):
    - payment in full (or a credit note) closes the actions of an invoice no longer open;
    - an action due today that an earlier decision of the day (an event, an evaluation) created and this
      one does not ask for (a stage the customer did not stay in, an invoice since disputed) is cancelled;
    - every automated action still due today, this decision's or an earlier one's, is sent (nothing else
      ever sends them), after the commit.
    - a customer out of collection (stage 0: what is left is below the tolerance, or no longer collectable)
      while its invoice is still open has its open stage tasks (an `until_done` visit or call) cancelled as
      `superseded`, the reason in the note: never left open for ever, and created afresh if collection
      starts again. A paused invoice's tasks are left alone (a legal case, a dispute hold the stage).
    Returns how many of today's actions this decision created."""
    still_open = {i["invoice_id"] for i in dunning["open_invoices"]}
    wanted = {(a["invoice_id"], a["type"], a["stage"]) for a in dunning["actions"]}
    paused = {p["invoice_id"] for p in dunning["paused"]}
    out_of_collection = None
    if dunning["stage"] == 0:
        why = [r["message"] for r in reasons if r["rule"] == "dunning.tolerance"]
        out_of_collection = (f"out of collection on {as_of.isoformat()}: "
                             + ("; ".join(why) if why else "no collectable overdue balance"))
    created = 0
    for a in open_actions:
        if a.invoice_id not in still_open:
            a.status, a.outcome = "closed", "invoice_settled"
        elif out_of_collection and a.stage > 0 and a.invoice_id not in paused and a.due_on < as_of:
            a.status, a.outcome, a.note = "cancelled", "superseded", out_of_collection[:4000]
        elif a.due_on == as_of:
            if (a.invoice_id, a.type, a.stage) not in wanted:
                a.status, a.outcome = "cancelled", "superseded"
                continue
            created += a.decision_id == decision_id
            if a.owner == "automated":
                a.status = "queued"           # in the outbox: "sent" once the notifier has it
                automated.append(a)
    return created


def work(service, run_id: str, **kw) -> dict:
    """Claim partitions of the run until none is left; returns this worker's counts (see _work)."""
    with fewer_gc_passes():
        return _work(service, run_id, **kw)


def _work(service, run_id: str, *, notifier=None, progress=None, reclaim: bool = False,
          worker: str | None = None, stop_after: int | None = None, group_size: int = GROUP_SIZE) -> dict:
    """`stop_after` (tests) stops after that many customers, like a crash would."""
    notifier = notifier or default_notifier(service)
    worker = worker or worker_id()
    deliver_pending(service, notifier)        # the outbox first: actions a killed sweep queued and never handed over
    counts = {"done": 0, "skipped": 0, "error": 0, "actions": 0}
    with service.tx() as s:
        run = s.get(SweepRun, run_id)
        s.expunge(run)
    processed = 0
    while True:
        part = _claim(service, run_id, worker, reclaim)
        if part is None:
            break
        with service.tx() as s:
            ids = s.execute(select(Customer.id).where(Customer.id >= part.first_customer,
                                                      Customer.id <= part.last_customer)
                            .order_by(Customer.id)).scalars().all()
        for i in range(0, len(ids), group_size):
            group = ids[i:i + group_size]
            if stop_after is not None:
                group = group[:stop_after - processed]
            try:
                got = process_group(service, run, group, notifier)
            except DomainError as exc:          # e.g. no active policy: every customer of the group is an error
                got = _record_errors(service, run, group, f"{exc.code}: {exc.message}")
            for k, v in got.items():
                counts[k] += v
            processed += len(group)
            if progress:
                progress(len(group))
            if stop_after is not None and processed >= stop_after:
                return counts
            with service.tx() as s:          # the lease: a worker that stops renewing it loses the partition
                s.execute(update(SweepPartition).where(SweepPartition.run_id == run_id,
                                                       SweepPartition.number == part.number)
                          .values(heartbeat=service.clock()))
        with service.tx() as s:
            s.execute(update(SweepPartition).where(SweepPartition.run_id == run_id,
                                                   SweepPartition.number == part.number).values(status="done"))
    _finish_if_complete(service, run_id)
    deliver_pending(service, notifier)
    return counts


def _record_errors(service, run: SweepRun, customer_ids: list[str], error: str) -> dict:
    with service.tx() as s:
        done = set(s.execute(select(SweepItem.customer_id).where(SweepItem.run_id == run.id,
                                                                 SweepItem.customer_id.in_(customer_ids))).scalars())
        todo = [cid for cid in customer_ids if cid not in done]
        if todo:
            s.execute(insert(SweepItem), [{"run_id": run.id, "customer_id": cid, "outcome": "error", "stage": None,
                                           "actions": 0, "error": error} for cid in todo])
    log.warning("sweep %s: %d customers failed: %s", run.id, len(todo), error)
    return {"done": 0, "skipped": len(done), "error": len(todo), "actions": 0}


def _finish_if_complete(service, run_id: str) -> None:
    with service.tx() as s:
        run = s.execute(select(SweepRun).where(SweepRun.id == run_id).with_for_update()).scalar_one()
        left = s.execute(select(func.count()).select_from(SweepPartition).where(
            SweepPartition.run_id == run_id, SweepPartition.status != "done")).scalar_one()
        if left == 0 and run.status != "done":
            run.status, run.finished_at = "done", service.clock()
            errors = s.execute(select(func.count()).select_from(SweepItem).where(
                SweepItem.run_id == run_id, SweepItem.outcome == "error")).scalar_one()
            figures.write_snapshot(s, service.registry.active(s), run_id, run.as_of, errors, run.finished_at)


def summary(service, run_id: str) -> dict:
    with service.tx() as s:
        run = s.get(SweepRun, run_id)
        if run is None:
            raise not_found("sweep run", run_id)
        by_outcome = dict(s.execute(select(SweepItem.outcome, func.count()).where(SweepItem.run_id == run_id)
                                    .group_by(SweepItem.outcome)).all())
        by_stage = {str(k): v for k, v in s.execute(
            select(SweepItem.stage, func.count()).where(SweepItem.run_id == run_id, SweepItem.outcome == "done")
            .group_by(SweepItem.stage)).all()}
        actions = s.execute(select(func.coalesce(func.sum(SweepItem.actions), 0))
                            .where(SweepItem.run_id == run_id)).scalar_one()
        errors = [{"customer_id": i.customer_id, "error": i.error} for i in s.execute(
            select(SweepItem).where(SweepItem.run_id == run_id, SweepItem.outcome == "error")
            .order_by(SweepItem.customer_id).limit(100)).scalars()]
        return {"id": run.id, "as_of": run.as_of.isoformat(), "status": run.status, "actor": run.actor,
                "started_at": run.started_at.isoformat() + "Z",
                "finished_at": run.finished_at.isoformat() + "Z" if run.finished_at else None,
                "customers": run.customers, "partitions": run.partitions,
                "processed": by_outcome.get("done", 0), "errors": by_outcome.get("error", 0),
                "customers_by_stage": by_stage, "actions_created": int(actions), "error_list": errors}


def run_sweep(service, as_of: dt.date, actor: str, **kw) -> dict:
    run_id = start(service, as_of, actor)
    work(service, run_id, **kw)
    checkpoint_if_configured(service)        # the sweep's records signed while they are fresh
    return summary(service, run_id)
