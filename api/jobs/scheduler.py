"""The scheduler: one process (`creditctl scheduler`) runs the portfolio jobs with APScheduler 3.

Exactly one scheduler runs however many API workers there are: the API never starts one, and
a second `creditctl scheduler` waits until the first one's lease (a heartbeat row in the
database) lapses. Jobs live in APScheduler's SQLAlchemy job store in the same database, have
explicit ids, coalesce missed runs into one and run late within a grace period.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
import traceback
import uuid

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..store.tables import JobRun, SchedulerLock

log = logging.getLogger("creditctl.scheduler")
LEASE_SECONDS = 60
CHECKPOINT_MINUTES = int(os.environ.get("CREDITCTL_CHECKPOINT_MINUTES", "60"))
OUTBOX_MINUTES = int(os.environ.get("CREDITCTL_OUTBOX_MINUTES", "1"))
MISFIRE_GRACE_SECONDS = 6 * 3600  # a job missed while the process was down still runs if < 6 h late
_service = None  # set by run(): job functions are looked up by reference
_scheduler = None


def record(service, job_id: str, as_of: dt.date, fn) -> dict:
    """Run fn() and record the run in job_runs (started, finished, outcome, detail)."""
    with service.tx() as s:
        run = JobRun(job_id=job_id, as_of=as_of, started_at=service.clock(), outcome="running", detail="")
        s.add(run)
        s.flush()
        run_id = run.id
    try:
        detail = fn()
        outcome = "ok"
    except Exception:
        detail, outcome = {"error": traceback.format_exc(limit=5)}, "failed"
        log.exception("job %s failed", job_id)
    import json

    with service.tx() as s:
        run = s.get(JobRun, run_id)
        run.finished_at, run.outcome = service.clock(), outcome
        run.detail = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
    return {"job_id": job_id, "as_of": as_of.isoformat(), "outcome": outcome, "detail": detail}


# -------------------------------------------------------------------- jobs
def collections_sweep(as_of: dt.date | None = None) -> dict:
    """Daily: reminders before the due date, stage escalation, pauses, interest — one evaluation
    per customer (api/jobs/sweep.py)."""
    from . import sweep

    day = as_of or _service.today()
    return record(
        _service, "collections-sweep", day, lambda: sweep.run_sweep(_service, day, "scheduler:collections-sweep")
    )


def credit_review(as_of: dt.date | None = None) -> dict:
    """Daily: customers whose review (cadence by risk class, from the policy) is due."""
    from .review import run_reviews

    day = as_of or _service.today()
    return record(_service, "credit-review", day, lambda: run_reviews(_service, day, "scheduler:credit-review"))


def interest_accrual(as_of: dt.date | None = None) -> dict:
    """Daily, after the sweep: each overdue invoice's late interest since its last accrual, written to
    the interest_accruals ledger (api/jobs/accrual.py, docs/interest.md)."""
    from .accrual import accrue

    day = as_of or _service.today()
    return record(_service, "interest-accrual", day, lambda: accrue(_service, day, "scheduler:interest-accrual"))


def monthly_statements(as_of: dt.date | None = None, folder: str | None = None) -> dict:
    """Monthly: a statement of account (对账单) for the previous calendar month for every customer,
    written as CSV under var/statements/<YYYY-MM>/ for reconciliation; with delivery configured, also
    queued in the outbox for every customer with an open balance (api/jobs/statements.py), once a month."""
    day = as_of or _service.today()

    def run():
        detail = write_statements(_service, day, folder)
        settings = getattr(_service, "delivery", None)
        if settings is not None and settings.leave_queued:
            from .statements import queue_statements

            detail["outbox"] = queue_statements(_service, day, "scheduler:monthly-statements")
        return detail

    return record(_service, "monthly-statements", day, run)


def write_statements(service, day: dt.date, folder: str | None = None) -> dict:
    import csv
    import os

    from sqlalchemy import select as _select

    from ..reports import book as reports
    from ..store.tables import Customer

    end = day.replace(day=1) - dt.timedelta(days=1)
    start = end.replace(day=1)
    target = os.path.join(folder or os.path.join("var", "statements"), start.strftime("%Y-%m"))
    os.makedirs(target, exist_ok=True)
    with service.tx() as s:
        ids = s.execute(_select(Customer.id).order_by(Customer.id)).scalars().all()
    for cid in ids:
        st = reports.statement(service, cid, start, end)
        with open(os.path.join(target, f"{cid}.csv"), "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(reports.STATEMENT_CSV_COLUMNS)
            writer.writerows(reports.statement_csv_rows(st))
    return {"period": [start.isoformat(), end.isoformat()], "folder": target, "statements": len(ids)}


def audit_checkpoint(as_of: dt.date | None = None) -> dict:
    """Hourly (CREDITCTL_CHECKPOINT_MINUTES): a signed checkpoint of every trail chain, appended to the
    log outside the database (api/service/audit.py, docs/audit.md)."""
    from ..service import audit

    day = as_of or _service.today()
    return record(_service, "audit-checkpoint", day, lambda: audit.checkpoint(_service))


def outbox_delivery(as_of: dt.date | None = None) -> dict:
    """Every OUTBOX_MINUTES: send the automated actions the sweep queued (api/jobs/outbox.py); retries fall
    due by their next_attempt_at, so a minute's resolution is enough for backoffs of a minute or more."""
    from .outbox import run_once

    day = as_of or _service.today()
    return record(_service, "outbox-delivery", day, lambda: run_once(_service, _service.delivery))


def heartbeat(holder: str) -> None:
    if not hold_lock(_service, holder):
        log.error("scheduler lease lost to another process; stopping")
        _scheduler.shutdown(wait=False)


def policy_activation(as_of: dt.date | None = None) -> dict:
    """Just after midnight (UTC): scheduled policy versions whose effective date has come are recorded in
    force, once (api/service/policies.py; evaluations already pick them by their as_of)."""
    from ..service import policies

    day = as_of or _service.today()
    return record(
        _service, "policy-activation", day, lambda: {"activated": [a["id"] for a in policies.bring_in_force(_service)]}
    )


JOBS = (
    ("policy-activation", policy_activation, CronTrigger(hour=0, minute=1)),
    ("collections-sweep", collections_sweep, CronTrigger(hour=2, minute=0)),
    ("interest-accrual", interest_accrual, CronTrigger(hour=2, minute=30)),
    ("credit-review", credit_review, CronTrigger(hour=3, minute=0)),
    ("monthly-statements", monthly_statements, CronTrigger(day=1, hour=4, minute=0)),
    ("audit-checkpoint", audit_checkpoint, IntervalTrigger(minutes=CHECKPOINT_MINUTES)),
    ("outbox-delivery", outbox_delivery, IntervalTrigger(minutes=OUTBOX_MINUTES)),
)


# -------------------------------------------------------------------- single instance
def hold_lock(service, holder: str) -> bool:
    """Take or renew the lease; False when another live scheduler holds it."""
    for _ in range(2):
        try:
            with service.tx() as s:
                now = service.clock()
                lock = s.execute(
                    select(SchedulerLock).where(SchedulerLock.id == 1).with_for_update()
                ).scalar_one_or_none()
                if lock is None:
                    s.add(SchedulerLock(id=1, holder=holder, heartbeat=now))
                    return True
                if lock.holder != holder and lock.heartbeat > now - dt.timedelta(seconds=LEASE_SECONDS):
                    return False
                lock.holder, lock.heartbeat = holder, now
                return True
        except IntegrityError:
            continue
    return False


def release_lock(service, holder: str) -> None:
    with service.tx() as s:
        lock = s.get(SchedulerLock, 1)
        if lock is not None and lock.holder == holder:
            s.delete(lock)


def build(service, engine) -> BlockingScheduler:
    scheduler = BlockingScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine)},
        job_defaults={"coalesce": True, "misfire_grace_time": MISFIRE_GRACE_SECONDS, "max_instances": 1},
        timezone="UTC",
    )
    for job_id, fn, trigger in JOBS:
        scheduler.add_job(fn, trigger, id=job_id, name=job_id, replace_existing=True)
    return scheduler


def run(service, engine, *, wait_for_lock: bool = True) -> int:
    global _service, _scheduler
    _service = service
    holder = uuid.uuid4().hex[:16]
    while not hold_lock(service, holder):
        if not wait_for_lock:
            log.error("another scheduler is running")
            return 3
        log.warning("another scheduler holds the lease; waiting")
        time.sleep(LEASE_SECONDS / 3)
    scheduler = _scheduler = build(service, engine)
    scheduler.add_job(
        heartbeat,
        IntervalTrigger(seconds=LEASE_SECONDS // 3),
        args=[holder],
        id="scheduler-lease",
        replace_existing=True,
        jobstore="default",
    )
    log.info("scheduler %s running jobs: %s", holder, ", ".join(j for j, _, _ in JOBS))
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        release_lock(service, holder)
    return 0
