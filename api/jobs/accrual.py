"""The late-interest ledger (逾期罚息 accrual): the `interest-accrual` job writes what each overdue invoice
has accrued, day by day, into `interest_accruals`. See docs/interest.md.

A decision's `interest` is a point-in-time figure: today's open balance × daily rate × all chargeable days
(days overdue − grace days). The ledger instead accrues, on each run, the chargeable days since the
invoice's last accrual, on the open balance as it is on the run's day:

- first accrual of an invoice (no row yet): all its chargeable days so far, on today's balance (the
  backfill assumption: the balance is taken to have been today's balance since the grace days ended),
  plus the policy's fixed fee;
- later accruals: the days since the last row, on today's balance. A partial payment lowers the accrual
  of the days after it; it never reverses what was accrued before it;
- each row is rounded half-up on its own (rules.interest.interest_minor), so the sum of an invoice's rows
  can differ by rounding from a decision's one-shot figure even when the balance never changed;
- with cap_pct, an invoice's accrued interest (fees excluded, as in the decision) never exceeds cap_pct
  of the row's base; once it is reached, rows accrue 0 (and a lower base does not claw anything back);
- disputed invoices are skipped while disputed when the policy says exclude_disputed. As in a decision,
  once the dispute is resolved the days since the last accrual (the disputed ones too) are accrued;
- idempotent: a day already accrued, or a day before an invoice's last accrual, adds nothing for it.

Customers are taken in batches of BATCH by id; each batch is one transaction that locks its customers'
rows (events for them wait), reads their ledgers (api.store.book.typed_cases → engine build_facts) and the
invoices' last accruals, and inserts the new rows. The run is recorded in the trail (subject
SUBJECT, kind KIND) once every batch is done; its rows carry the run id, the record's request_id.
"""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import and_, func, select

from engine.decision import canonical_json
from engine.facts import build_facts
from rules.money import minor_str
from rules.interest import interest_minor

from ..errors import not_found
from ..reports import book
from ..store import trail
from ..store.book import BATCH as READ_BATCH
from ..store.book import snapshot, typed_cases
from ..store.database import insert_ignoring_duplicates
from ..store.tables import Customer, InterestAccrual

BATCH = 500
SUBJECT = "job:interest-accrual"
KIND = "interest_accrual"


def _last_accruals(s, customer_ids) -> dict[tuple[str, str], tuple]:
    """(customer, invoice) → (last accrued_on, its chargeable_days, cumulative, fees so far)."""
    ia = InterestAccrual
    last = (select(ia.customer_id, ia.invoice_id, func.max(ia.accrued_on).label("last_on"),
                   func.sum(ia.fee_minor).label("fees"))
            .where(ia.customer_id.in_(customer_ids)).group_by(ia.customer_id, ia.invoice_id).subquery())
    q = (select(ia.customer_id, ia.invoice_id, ia.accrued_on, ia.chargeable_days, ia.cumulative_minor, last.c.fees)
         .join(last, and_(ia.customer_id == last.c.customer_id, ia.invoice_id == last.c.invoice_id,
                          ia.accrued_on == last.c.last_on)))
    return {(cid, iid): (on, chargeable, int(cumulative), int(fees))
            for cid, iid, on, chargeable, cumulative, fees in s.execute(q)}


def accrual_rows(section, facts, last: dict, as_of: dt.date) -> tuple[int, list[dict]]:
    """The rows one customer accrues on as_of: (invoices eligible for interest, rows). Pure: no I/O."""
    eligible, rows = 0, []
    for st in facts.invoices:
        chargeable = st.days_overdue - section.grace_days
        if chargeable <= 0 or st.open_minor <= 0 or (section.exclude_disputed and st.disputed):
            continue
        eligible += 1
        prev = last.get((facts.customer_id, st.id))
        if prev is None:
            days, fee, interest_before, cumulative_before = chargeable, section.fixed_fee, 0, 0
        else:
            last_on, last_chargeable, cumulative_before, fees = prev
            if as_of <= last_on:
                continue
            days, fee, interest_before = chargeable - last_chargeable, 0, cumulative_before - fees
        if days <= 0:
            continue
        interest = interest_minor(section, st.open_minor, days)
        if section.cap_pct is not None:
            interest = max(0, min(interest, st.open_minor * section.cap_pct // 10000 - interest_before))
        amount = interest + fee
        rows.append({"customer_id": facts.customer_id, "invoice_id": st.id, "accrued_on": as_of, "days": days,
                     "chargeable_days": chargeable, "base_minor": st.open_minor, "fee_minor": fee,
                     "amount_minor": amount, "cumulative_minor": cumulative_before + amount})
    return eligible, rows


def accrue(service, as_of: dt.date, actor: str, *, batch: int | None = None) -> dict:
    """Accrue every customer's late interest for as_of; record the run in the trail. Returns its summary."""
    run_id = uuid.uuid4().hex
    with service.read_tx() as s:
        version = service.registry.version_on(s, as_of)     # the version in force on the run's day
    customers = invoices = rows_written = total = 0
    after = None
    while True:
        with service.tx() as s:
            policy = service.registry.get(s, version)      # the run's version, whatever is published meanwhile
            q = select(Customer).order_by(Customer.id).limit(batch or BATCH).with_for_update()
            if after is not None:
                q = q.where(Customer.id > after)
            part = s.execute(q).scalars().all()
            if not part:
                break
            after = part[-1].id
            cases = typed_cases(s, part, policy, as_of)
            last = _last_accruals(s, [c.id for c in part])
            new = []
            for c in part:
                eligible, rows = accrual_rows(policy.interest, build_facts(cases[c.id], policy, as_of), last, as_of)
                invoices += eligible
                new += rows
            customers += len(part)
            if new:
                for r in new:
                    r["policy_version"], r["run_id"] = version, run_id
                s.connection().execute(insert_ignoring_duplicates(s, InterestAccrual.__table__), new)
                rows_written += len(new)
                total += sum(r["amount_minor"] for r in new)
    exp, currency = policy.exponent, policy.currency
    summary = {"run_id": run_id, "rows": rows_written, "total": minor_str(total, exp), "currency": currency}
    facts = {"as_of": as_of.isoformat(), "policy_version": version, "customers": customers, "invoices": invoices}
    with service.tx() as s:
        rec = trail.append(s, subject=SUBJECT, kind=KIND, actor=actor, request_id=run_id, as_of=as_of,
                           facts=canonical_json(facts), policy_version=version, result=canonical_json(summary),
                           outcome=None, created_at=service.clock())
        decision_id = rec.id
    return {**facts, **summary, "decision_id": decision_id}


# ---------------------------------------------------------------------------------------- the report
CSV_COLUMNS = ["customer_id", "invoice_id", "accrued_on", "days", "chargeable_days", "base", "fee", "amount",
               "cumulative", "policy_version", "run_id"]


def csv_row(row: dict) -> list:
    return [row[k] for k in CSV_COLUMNS]


GROUP_CSV_COLUMNS = ["group_id", "name", "customers", "rows", "invoices", "days", "amount"]


def group_csv_row(row: dict) -> list:
    return [row["key"] if row["key"] is not None else "", row["name"] or "",
            *[row[k] for k in GROUP_CSV_COLUMNS[2:]]]


def report(service, start: dt.date, end: dt.date, customer: str | None = None, on_row=None,
           by: str = "customer") -> dict:
    """The ledger's rows accrued in [start, end] (one customer's, or everyone's), by customer, invoice and
    date: on_row(row) for each, in that order. Returns the header and the totals per customer and overall;
    by="group": `groups` too, the totals summed per customer group (key null: customers in no group)."""
    ia = InterestAccrual
    with snapshot(service) as s:
        policy = service.registry.active(s)
        exp = policy.exponent
        if customer is not None and s.get(Customer, customer) is None:
            raise not_found("customer", customer)
        q = (select(ia.customer_id, ia.invoice_id, ia.accrued_on, ia.days, ia.chargeable_days, ia.base_minor,
                    ia.fee_minor, ia.amount_minor, ia.cumulative_minor, ia.policy_version, ia.run_id)
             .where(ia.accrued_on >= start, ia.accrued_on <= end)
             .order_by(ia.customer_id, ia.invoice_id, ia.accrued_on)
             .execution_options(yield_per=READ_BATCH))
        if customer is not None:
            q = q.where(ia.customer_id == customer)
        totals: dict[str, list[int]] = {}          # customer → [rows, invoices, days, amount]
        last_invoice = None
        index = book.Groups(s) if by == "group" else None
        for cid, iid, on, days, chargeable, base, fee, amount, cumulative, version, run_id in s.execute(q):
            t = totals.setdefault(cid, [0, 0, 0, 0])
            if (cid, iid) != last_invoice:
                t[1] += 1
                last_invoice = (cid, iid)
            t[0] += 1
            t[2] += days
            t[3] += amount
            if on_row is not None:
                on_row({"customer_id": cid, "invoice_id": iid, "accrued_on": on.isoformat(), "days": days,
                        "chargeable_days": chargeable, "base": minor_str(base, exp), "fee": minor_str(fee, exp),
                        "amount": minor_str(amount, exp), "cumulative": minor_str(cumulative, exp),
                        "policy_version": version, "run_id": run_id})
    by_group = None
    if index is not None:
        sums: dict = {}                  # group → [customers, rows, invoices, days, amount]
        for cid, t in totals.items():
            e = sums.setdefault(index.of(cid), [0, 0, 0, 0, 0])
            e[0] += 1
            for i in range(4):
                e[i + 1] += t[i]

        def view(v):
            v = v or [0, 0, 0, 0, 0]
            return {"customers": v[0], "rows": v[1], "invoices": v[2], "days": v[3], "amount": minor_str(v[4], exp)}
        by_group = index.rows(sums, view, exp)
    return {
        **({"groups": by_group} if by_group is not None else {}),
        "from": start.isoformat(), "to": end.isoformat(), "customer": customer, "currency": policy.currency,
        "totals": [{"customer_id": cid, "rows": n, "invoices": inv, "days": days, "amount": minor_str(amount, exp)}
                   for cid, (n, inv, days, amount) in totals.items()],
        "total": {"customers": len(totals), "rows": sum(t[0] for t in totals.values()),
                  "amount": minor_str(sum(t[3] for t in totals.values()), exp)},
        "notes": "Rows of the late-interest ledger accrued between from and to inclusive (accrued_on), by customer, "
                 "invoice and date. amount = interest for the row's days on base (the open balance on accrued_on, "
                 "rounded half-up per row, capped by the policy's cap_pct) + fee (the fixed fee, on an invoice's "
                 "first row); cumulative is the invoice's running total since its first row. See docs/interest.md.",
    }
