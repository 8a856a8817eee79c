"""Read-only views the console (api/console/) shows: the customer list, a customer's timeline and
current decision, the worklist, the overview's counters, the sweep and job runs.

The customer list is api/service/customer_list.py's (the same as GET /v1/customers): stored, indexed
columns only (migrations 0008, 0020), a keyset page and a capped count at any size of book.
"""
from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import func, select, text

from engine.decision import FORMAT, stored_format
from engine.evaluator import evaluate_loaded
from engine.reasons import render
from rules.money import minor_str, to_minor

from ..errors import DomainError, not_found
from ..service import customer_list, referrals
from ..store.ledger import load_cases
from ..store.policy_store import with_retry
from . import book, figures
from ..store.tables import (
    Action,
    Customer,
    CustomerSegment,
    DecisionRecord,
    Dispute,
    DunningState,
    Invoice,
    JobRun,
    Payment,
    Promise,
    Reservation,
    SweepItem,
    SweepRun,
)

PAGE_SIZE = 50


def customers(service, args: dict, per_page: int = PAGE_SIZE) -> dict:
    """One page of the customer list (api/service/customer_list.py: search, filters, sort, keyset cursor)
    and how many customers match (counted up to customer_list.COUNT_CAP)."""
    with service.read_tx() as s:
        f = customer_list.validate(service.registry.active(s), args)
    got = customer_list.search(service, f, limit=per_page, count=True)
    exp = got["exponent"]
    rows = [{"id": c.id, "name": c.name, "collector": c.collector, "last_bucket": c.last_bucket,
             "last_score": c.last_score, "tier": c.last_tier, "reputation": c.last_reputation,
             "stage": c.last_stage, "segments": list(c.last_segments or []), "on_hold": held,
             "outstanding": None if c.last_as_of is None else minor_str(c.last_outstanding_minor or 0, exp),
             "approved_limit": None if c.approved_limit_minor is None else minor_str(c.approved_limit_minor, exp)}
            for c, held in got["rows"]]
    return {"rows": rows, "total": got["total"], "total_capped": got["total_capped"],
            "next_cursor": got["next_cursor"], "filters": f, "per_page": per_page}


def distinct_values(s, col, limit: int = 200) -> list:
    """SELECT DISTINCT col … ORDER BY col LIMIT limit (NULL left out) as a walk of col's index, one probe per
    value (a recursive CTE: the next value after the last). DISTINCT reads every row — 100,000 customers'
    collectors or segments on every list page (PostgreSQL has no skip scan before 18); a handful of
    collectors and segments are a handful of index probes. col: a column with an index that leads with it."""
    table, name = col.table.name, col.name
    return list(s.execute(text(
        f"WITH RECURSIVE vals(v, n) AS ("
        f"SELECT (SELECT {name} FROM {table} WHERE {name} IS NOT NULL ORDER BY {name} LIMIT 1), 1 "
        f"UNION ALL SELECT (SELECT {name} FROM {table} WHERE {name} > vals.v ORDER BY {name} LIMIT 1), n + 1 "
        f"FROM vals WHERE vals.v IS NOT NULL AND n < :limit) "
        f"SELECT v FROM vals WHERE v IS NOT NULL"), {"limit": limit}).scalars())


def segments(service) -> list[str]:
    """The segments customers' last decisions put them in (the list's segment filter)."""
    with service.read_tx() as s:
        return distinct_values(s, CustomerSegment.segment)       # the primary key (segment, customer_id)


def collectors(service) -> list[str]:
    with service.read_tx() as s:
        return distinct_values(s, Customer.collector)            # ix_customers_collector (collector, id)


def current_decision(service, customer_id: str, as_of: dt.date, locale: str = "en") -> dict:
    """The decision the active policy makes about the customer at as_of (nothing recorded), its reasons in
    `locale`."""
    with service.read_tx() as s:
        c = s.get(Customer, customer_id)
        if c is None:
            raise not_found("customer", customer_id)
        policy = service.registry.active(s)
        case = load_cases(s, [c], policy.exponent, as_of)[c.id].typed
        return with_retry(lambda: evaluate_loaded(service.registry.active(s), case, as_of)).render(locale)


def timeline(service, customer_id: str, limit: int = 300) -> list[dict]:
    """The customer's invoices, payments, promises, disputes, reservations, decisions and actions,
    newest first: {on, kind, ref, text, amount, id?}."""
    out: list[dict] = []
    with service.read_tx() as s:
        if s.get(Customer, customer_id) is None:
            raise not_found("customer", customer_id)
        exp = service.registry.active(s).exponent
        m = (lambda v: minor_str(v, exp))       # noqa: E731
        for i in s.execute(select(Invoice).where(Invoice.customer_id == customer_id)).scalars():
            out.append({"on": i.issued_on, "kind": "invoice", "ref": i.id, "amount": m(i.amount_minor),
                        "text": f"due {i.due_on.isoformat()}"})
        for p in s.execute(select(Payment).where(Payment.customer_id == customer_id)).scalars():
            out.append({"on": p.paid_on, "kind": "payment", "ref": p.id, "amount": m(p.amount_minor),
                        "text": p.invoice_id or ""})
        for p in s.execute(select(Promise).where(Promise.customer_id == customer_id)).scalars():
            out.append({"on": p.made_on, "kind": "promise", "ref": p.id, "amount": m(p.amount_minor),
                        "text": f"→ {p.promised_on.isoformat()}"})
        for d in s.execute(select(Dispute).where(Dispute.customer_id == customer_id)).scalars():
            out.append({"on": d.opened_on, "kind": "dispute", "ref": d.invoice_id, "amount": None,
                        "text": d.reason + (f" (resolved {d.resolved_on.isoformat()})" if d.resolved_on else "")})
        for r in s.execute(select(Reservation).where(Reservation.customer_id == customer_id)).scalars():
            out.append({"on": r.created_at.date(), "kind": "reservation", "ref": r.order_id,
                        "amount": m(r.amount_minor), "text": r.status})
        for d in s.execute(select(DecisionRecord.id, DecisionRecord.kind, DecisionRecord.as_of,
                                  DecisionRecord.outcome, DecisionRecord.actor)
                           .where(DecisionRecord.subject == customer_id)
                           .order_by(DecisionRecord.seq.desc()).limit(limit)):
            out.append({"on": d.as_of, "kind": d.kind, "ref": d.id[:12], "id": d.id, "amount": None,
                        "text": f"{d.outcome or ''} · {d.actor}"})
        for a in s.execute(select(Action).where(Action.customer_id == customer_id)
                           .order_by(Action.id.desc()).limit(limit)).scalars():
            out.append({"on": a.due_on, "kind": "action", "ref": a.invoice_id, "amount": m(a.amount_minor),
                        "text": f"{a.type} · {a.channel} · {a.status}" + (f" · {a.outcome}" if a.outcome else "")})
    out.sort(key=lambda e: (e["on"], e["kind"]), reverse=True)
    return out[:limit]


def worklist(service, *, owner=None, limit=200) -> list[dict]:
    """Open actions, most urgent first: highest stage, then earliest due date, then largest amount."""
    with service.read_tx() as s:
        q = (select(Action, Customer.name).join(Customer, Customer.id == Action.customer_id)
             .where(Action.status == "open"))
        if owner:
            q = q.where(Action.owner == owner)
        rows = s.execute(q.order_by(Action.stage.desc(), Action.due_on, Action.amount_minor.desc(), Action.id)
                         .limit(limit)).all()
        exp = service.registry.active(s).exponent
    return [{"id": a.id, "customer_id": a.customer_id, "name": name, "invoice_id": a.invoice_id, "type": a.type,
             "channel": a.channel, "owner": a.owner, "stage": a.stage, "due_on": a.due_on,
             "amount": minor_str(a.amount_minor, exp)} for a, name in rows]


def action(service, action_id: int) -> dict:
    """One action's customer and invoice (what the worklist's forms record against)."""
    with service.read_tx() as s:
        a = s.get(Action, action_id)
        if a is None:
            raise not_found("action", str(action_id))
        return {"id": a.id, "customer_id": a.customer_id, "invoice_id": a.invoice_id, "status": a.status}


def stages(service) -> dict[int, int]:
    """Customers per dunning stage (no state yet = stage 0)."""
    with service.read_tx() as s:
        total = s.execute(select(func.count()).select_from(Customer)).scalar_one()
        by = dict(s.execute(select(DunningState.stage, func.count()).group_by(DunningState.stage)).all())
    by[0] = by.get(0, 0) + total - sum(by.values())
    return dict(sorted(by.items()))


def alerts_of_day(service, day: dt.date, limit: int = 50, locale: str = "en") -> list[dict]:
    """Alerts in the decisions recorded on `day` (newest first, at most `limit`); a decision stored with its
    reasons as data (format 2) has its alerts' messages rendered in `locale`."""
    start = dt.datetime.combine(day, dt.time())
    out = []
    with service.read_tx() as s:
        for rec in s.execute(select(DecisionRecord.id, DecisionRecord.subject, DecisionRecord.result,
                                    DecisionRecord.policy_version)
                             .where(DecisionRecord.created_at >= start,
                                    DecisionRecord.created_at < start + dt.timedelta(days=1))
                             .order_by(DecisionRecord.created_at.desc()).limit(2000)):
            result = json.loads(rec.result)
            if result.get("alerts") and stored_format(result) == FORMAT:
                try:
                    result = render(result, with_retry(lambda: service.registry.get(s, rec.policy_version)), locale)
                except DomainError:           # a tampered version: the alerts without their message
                    pass
            for alert in result.get("alerts") or []:
                out.append({"customer_id": rec.subject, "decision_id": rec.id, **alert})
                if len(out) >= limit:
                    return out
    return out


def runs(service, limit: int = 20) -> dict:
    """The latest sweep runs (with their error counts) and job runs."""
    with service.read_tx() as s:
        sweeps = s.execute(select(SweepRun).order_by(SweepRun.started_at.desc(), SweepRun.id.desc())
                           .limit(limit)).scalars().all()
        ids = [r.id for r in sweeps]
        counts = {}
        for run_id, outcome, n in s.execute(select(SweepItem.run_id, SweepItem.outcome, func.count())
                                            .where(SweepItem.run_id.in_(ids))
                                            .group_by(SweepItem.run_id, SweepItem.outcome)):
            counts.setdefault(run_id, {})[outcome] = n
        jobs = s.execute(select(JobRun).order_by(JobRun.started_at.desc(), JobRun.id.desc())
                         .limit(limit)).scalars().all()
    return {"sweeps": [{"id": r.id, "as_of": r.as_of, "status": r.status, "actor": r.actor,
                        "started_at": r.started_at, "finished_at": r.finished_at, "customers": r.customers,
                        "processed": counts.get(r.id, {}).get("done", 0),
                        "errors": counts.get(r.id, {}).get("error", 0)} for r in sweeps],
            "jobs": [{"id": j.id, "job_id": j.job_id, "as_of": j.as_of, "started_at": j.started_at,
                      "finished_at": j.finished_at, "outcome": j.outcome, "detail": j.detail} for j in jobs]}


def book_figures(service, as_of: dt.date, dso_days: int = figures.DSO_DAYS) -> dict:
    """The overview's book figures from ONE pass over the book (book.aging): receivables, overdue and
    its share, the oldest bucket's share, DSO over `dso_days` (receivables × days / credit sales in the
    window, as book.dso computes it) and the aging chart's SVG. The sweep writes the same figures as a
    snapshot (api/reports/figures.py); this is the live computation for a book without one."""
    aging = book.aging(service, as_of)
    with service.read_tx() as s:
        exp = service.registry.active(s).exponent
        sales = figures.credit_sales(s, as_of, dso_days)
    return figures.from_aging(aging, sales, exp, as_of, dso_days)


def referral_queue(service, held: str | None = None, limit: int = 200) -> dict:
    """The open referrals, oldest first (referrals.list_referrals), each with the customer's name, the
    lowest authority level its release needs (None: the policy has no matrix, any controller may) and
    whether a holder of level `held` may release it (the service checks again; this decides what the
    page offers)."""
    data = referrals.list_referrals(service, {"status": "open", "limit": limit})
    ids = sorted({r["customer_id"] for r in data["referrals"]})
    with service.read_tx() as s:
        names = dict(s.execute(select(Customer.id, Customer.name).where(Customer.id.in_(ids))).all()) if ids else {}
        policy = service.registry.active(s)
    authority = policy.authority
    for r in data["referrals"]:
        r["name"] = names.get(r["customer_id"], "")
        needed = authority.needed(to_minor(r["over_limit"], policy.exponent))
        r["level_needed"] = needed.name if needed else None
        rank = authority.rank(held)
        r["may_release"] = needed is None or (rank is not None and rank >= authority.rank(needed.name))
    data["levels"] = [level.name for level in authority.levels]
    return data

