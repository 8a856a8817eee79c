"""The daily collections sweep: evaluate every customer, advance the dunning workflow, create
the actions that fall due, and hand automated ones to the notifier.

Crash safety: each customer is one transaction (decision + dunning state + actions + the
run's item marker). A run killed half way is resumed by running the sweep again for the same
day: customers already marked are skipped, the rest are processed, and the unique key on
actions (customer, invoice, type, stage, due date) means nothing is created twice.

Scale: a run is split into partitions (ranges of customer ids). Workers claim partitions
(`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serialises writers), so several processes
share one run and no customer is processed twice.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from .db import Action, Customer, DunningState, SweepItem, SweepPartition, SweepRun
from .errors import ApiError

log = logging.getLogger("creditctl.sweep")
PARTITION_SIZE = 500
LEASE_SECONDS = 120


class LogNotifier:
    """Default notifier: the action row is the outbox; this logs what would be sent."""

    def send(self, action: Action) -> None:
        log.info("outbox: %s via %s to customer %s for invoice %s (%s)", action.type, action.channel,
                 action.customer_id, action.invoice_id, action.due_on.isoformat())


def start(service, as_of: dt.date, actor: str, partition_size: int = PARTITION_SIZE) -> str:
    """Join the unfinished run for `as_of`, or create one with its partitions."""
    for _ in range(5):
        with service.tx() as s:
            running = s.execute(select(SweepRun).where(SweepRun.as_of == as_of, SweepRun.status == "running")
                                .order_by(SweepRun.started_at)).scalars().first()
            if running is not None:
                return running.id
        try:
            with service.tx() as s:
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
    raise ApiError(409, "E_CONFLICT", f"could not start or join the sweep for {as_of}")


def _claim(service, run_id: str, worker: str, reclaim: bool) -> SweepPartition | None:
    with service.tx() as s:
        now = service.clock()
        stale = now - dt.timedelta(seconds=LEASE_SECONDS)
        claimable = (SweepPartition.status == "pending") | (
            (SweepPartition.status == "claimed") & ((SweepPartition.heartbeat < stale) if not reclaim else True))
        part = s.execute(select(SweepPartition).where(SweepPartition.run_id == run_id, claimable)
                         .order_by(SweepPartition.number).limit(1)
                         .with_for_update(skip_locked=True)).scalar_one_or_none()
        if part is None:
            return None
        part.status, part.worker, part.heartbeat = "claimed", worker, now
        s.flush()
        s.expunge(part)
        return part


def process_customer(service, run: SweepRun, customer_id: str, notifier) -> tuple[str, int]:
    """One customer, one transaction. Returns (outcome, actions created)."""
    with service.tx() as s:
        c = s.execute(select(Customer).where(Customer.id == customer_id).with_for_update()).scalar_one_or_none()
        if c is None or s.get(SweepItem, (run.id, customer_id)) is not None:
            return "skipped", 0
        rec, decision = service._decide(s, c, run.as_of, kind="sweep", actor=run.actor, request_id=run.id)
        data = decision.data
        detail = data["dunning"]["stage_detail"]
        stage = data["dunning"]["stage"]
        entered = dt.date.fromisoformat(detail["entered_on"]) if detail and detail["entered_on"] else None
        state = s.get(DunningState, c.id)
        if state is None:
            # no state before today: today's (stateless) result is also the baseline a same-day
            # re-evaluation starts from, so it lands on the same stage (not on 0's next step)
            s.add(DunningState(customer_id=c.id, stage=stage, entered_on=entered, as_of=run.as_of,
                               prev_stage=stage, prev_entered_on=entered))
        elif state.as_of <= run.as_of:
            if state.as_of < run.as_of:
                state.prev_stage, state.prev_entered_on = state.stage, state.entered_on
            state.stage, state.entered_on, state.as_of = stage, entered, run.as_of
        # the sweep's decision is the day's word on the workflow: an open action due today that an earlier
        # decision of the day (an event, an evaluation) created and this one does not ask for (a stage the
        # customer did not stay in, an invoice since disputed) is cancelled; every automated action still
        # due today, this decision's or an earlier one's, is sent (nothing else ever sends them).
        # What this decision created is among them (due today, open: its invoices are open).
        wanted = {(a["invoice_id"], a["type"], a["stage"]) for a in data["dunning"]["actions"]}
        due_today = s.execute(select(Action).where(Action.customer_id == c.id, Action.status == "open",
                                                   Action.due_on == run.as_of).order_by(Action.id)).scalars().all()
        created = [a for a in due_today if a.decision_id == rec.id]
        automated = []
        for a in due_today:
            if (a.invoice_id, a.type, a.stage) not in wanted:
                a.status, a.outcome = "cancelled", "superseded"
            elif a.owner == "automated":
                automated.append(a)
        for a in automated:
            a.status = "sent"
        s.add(SweepItem(run_id=run.id, customer_id=c.id, outcome="done", stage=stage, actions=len(created)))
    for a in automated:               # after commit: never announce an action that was rolled back
        notifier.send(a)
    return "done", len(created)


def work(service, run_id: str, *, notifier=None, progress=None, reclaim: bool = False,
         worker: str | None = None, stop_after: int | None = None) -> dict:
    """Claim partitions of the run until none is left; returns this worker's counts.
    `stop_after` (tests) stops after that many customers, like a crash would."""
    notifier = notifier or LogNotifier()
    worker = worker or uuid.uuid4().hex[:12]
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
        for cid in ids:
            if stop_after is not None and processed >= stop_after:
                return counts
            try:
                outcome, n = process_customer(service, run, cid, notifier)
            except ApiError as exc:
                outcome, n = "error", 0
                with service.tx() as s:
                    if s.get(SweepItem, (run.id, cid)) is None:
                        s.add(SweepItem(run_id=run.id, customer_id=cid, outcome="error", actions=0,
                                        error=f"{exc.code}: {exc.message}"))
                log.warning("sweep %s: customer %s failed: %s", run_id, cid, exc.message)
            counts[outcome] += 1
            counts["actions"] += n
            processed += 1
            if progress:
                progress(1)
            if processed % 50 == 0:
                with service.tx() as s:
                    s.execute(update(SweepPartition).where(SweepPartition.run_id == run_id,
                                                           SweepPartition.number == part.number)
                              .values(heartbeat=service.clock()))
        with service.tx() as s:
            s.execute(update(SweepPartition).where(SweepPartition.run_id == run_id,
                                                   SweepPartition.number == part.number).values(status="done"))
    _finish_if_complete(service, run_id)
    return counts


def _finish_if_complete(service, run_id: str) -> None:
    with service.tx() as s:
        run = s.execute(select(SweepRun).where(SweepRun.id == run_id).with_for_update()).scalar_one()
        left = s.execute(select(func.count()).select_from(SweepPartition).where(
            SweepPartition.run_id == run_id, SweepPartition.status != "done")).scalar_one()
        if left == 0 and run.status != "done":
            run.status, run.finished_at = "done", service.clock()


def summary(service, run_id: str) -> dict:
    with service.tx() as s:
        run = s.get(SweepRun, run_id)
        if run is None:
            raise ApiError(404, "E_NOT_FOUND", f"sweep run '{run_id}' not found")
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
    return summary(service, run_id)
