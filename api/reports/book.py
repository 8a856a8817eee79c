"""Portfolio reports (账款报告) and statements of account (对账单). Read-only.

Open balances, days overdue and pauses come from the engine's own fact builder
(engine.facts.build_facts) over the same case the evaluations see, so a report never
disagrees with a decision about what is open. Customers are read in batches of BATCH
(yield_per) with their ledger rows loaded per batch: memory holds one batch, not the book.
Money is integer minor units inside, decimal strings outside.
"""
from __future__ import annotations

import datetime as dt
import heapq
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select

from engine.facts import build_facts
from rules.money import minor_str
from rules.common import find_band

from ..errors import not_found
from ..store.book import iter_facts, snapshot, typed_cases
from ..store.tables import Action, CreditNote, Customer, CustomerGroup, GroupMember, Invoice, Payment
from .aging_chart import render_aging_svg

SEGMENT_DIMENSIONS = ("industry", "region", "amount_tier")
DSO_FORMULA = "DSO = receivables at as_of / credit sales in the last N days × N"


# ---------------------------------------------------------------------------------------- bands
class Bands:
    """The active policy's aging buckets and amount tiers."""

    def __init__(self, policy):
        self.aging = policy.band_classes["aging_bucket"]
        self.tiers = policy.band_classes["amount_tier"]
        self.labels = list(self.aging.labels)

    def bucket(self, days: int) -> str:
        """An invoice's bucket by its own days overdue (not yet due counts as 0)."""
        return find_band(self.aging.bands, max(0, days)).value

    def customer_bucket(self, facts) -> str:
        return find_band(self.aging.bands, facts.fields[self.aging.field]).value

    def tier(self, facts) -> str:
        return find_band(self.tiers.bands, facts.fields[self.tiers.field]).value

    def describe(self) -> list[dict]:
        return [{"label": b.value, "min_days": b.low, "max_days": b.high} for b in self.aging.bands]


class _Sum:
    __slots__ = ("customers", "outstanding", "overdue", "open_invoices", "buckets")

    def __init__(self, labels):
        self.customers = self.outstanding = self.overdue = self.open_invoices = 0
        self.buckets = dict.fromkeys(labels, 0)

    def add(self, row_minor: dict):
        self.customers += 1
        self.outstanding += row_minor["outstanding"]
        self.overdue += row_minor["overdue"]
        self.open_invoices += row_minor["open_invoices"]
        for label, v in row_minor["buckets"].items():
            self.buckets[label] += v

    def view(self, exp: int) -> dict:
        return {"customers": self.customers, "outstanding": minor_str(self.outstanding, exp),
                "overdue": minor_str(self.overdue, exp), "open_invoices": self.open_invoices,
                "buckets": {k: minor_str(v, exp) for k, v in self.buckets.items()}}


# ---------------------------------------------------------------------------------------- by group
GROUPINGS = ("customer", "group")       # a report's `by`: rows per customer (as ever) or per customer group


class Groups:
    """集团客户 in a report: each customer's group (one read of the memberships, not one per customer), and
    rows per group in the aging report's order: every group by id, then key null (the customers in no group)
    when there are any. Each row names the group and its limit (null for key null)."""

    def __init__(self, s):
        self.member_of = dict(s.execute(select(GroupMember.customer_id, GroupMember.group_id)).all())
        # plain values: rows() may run after the snapshot's session has ended
        self.groups = {gid: (name, limit) for gid, name, limit in s.execute(
            select(CustomerGroup.id, CustomerGroup.name, CustomerGroup.limit_minor).order_by(CustomerGroup.id))}

    def of(self, customer_id: str) -> str | None:
        return self.member_of.get(customer_id)

    def rows(self, sums: dict, view, exp: int) -> list[dict]:
        """sums: {group id or None: a sum}; view(sum or None) → the row's figures."""
        keys = [*self.groups, *([None] if None in sums else [])]
        return [{"key": k, "name": self.groups[k][0] if k in self.groups else None,
                 "limit": minor_str(self.groups[k][1], exp) if k in self.groups else None,
                 **view(sums.get(k))} for k in keys]


# ---------------------------------------------------------------------------------------- aging
def aging(service, as_of: dt.date, on_customer=None) -> dict:
    """Aging analysis (账龄分析). Calls on_customer(row) for each customer with open invoices, in id
    order, and returns the header, the segments and the book total. An invoice's open balance goes
    to the bucket of its own days overdue; the customer's bucket is the policy's (most overdue)."""
    with snapshot(service) as s:
        policy = service.registry.active(s, as_of)
        exp, bands = policy.exponent, Bands(policy)
        cats = policy.content["categories"]
        segments = {"industry": {k: _Sum(bands.labels) for k in cats["industry"]},
                    "region": {k: _Sum(bands.labels) for k in cats["region"]},
                    "amount_tier": {k: _Sum(bands.labels) for k in bands.tiers.labels}}
        total, unapplied = _Sum(bands.labels), 0
        # 集团客户: members' balances summed per group; customers outside any group are the row with key null
        groups = Groups(s)
        by_group = {gid: _Sum(bands.labels) for gid in groups.groups}
        for c, facts in iter_facts(s, policy, as_of):
            unapplied += facts.unapplied_minor
            open_ = [st for st in facts.invoices if st.open_minor > 0]
            if not open_:
                continue
            buckets = dict.fromkeys(bands.labels, 0)
            for st in open_:
                buckets[bands.bucket(st.days_overdue)] += st.open_minor
            row = {"outstanding": facts.fields["outstanding"], "overdue": facts.fields["overdue_amount"],
                   "open_invoices": len(open_), "buckets": buckets}
            tier = bands.tier(facts)
            for dim, key in (("industry", c.industry), ("region", c.region), ("amount_tier", tier)):
                segments[dim].setdefault(key, _Sum(bands.labels)).add(row)
            by_group.setdefault(groups.of(c.id), _Sum(bands.labels)).add(row)
            total.add(row)
            if on_customer is not None:
                on_customer({
                    "customer_id": c.id, "name": c.name, "industry": c.industry, "region": c.region,
                    "amount_tier": tier, "aging_bucket": bands.customer_bucket(facts),
                    "max_days_overdue": facts.fields["max_days_overdue"], "open_invoices": len(open_),
                    "outstanding": minor_str(row["outstanding"], exp), "overdue": minor_str(row["overdue"], exp),
                    "buckets": {k: minor_str(v, exp) for k, v in buckets.items()},
                    "unapplied": minor_str(facts.unapplied_minor, exp)})
        total_view = total.view(exp)
        total_view["unapplied"] = minor_str(unapplied, exp)
        return {
            "as_of": as_of.isoformat(), "policy_version": policy.version, "currency": policy.currency,
            "buckets": bands.describe(),
            "segments": {dim: [{"key": k, **v.view(exp)} for k, v in segments[dim].items()]
                         for dim in SEGMENT_DIMENSIONS},
            "groups": groups.rows(by_group, lambda v: v.view(exp), exp),
            "total": total_view,
            "notes": "Each open invoice's balance is in the bucket of its own days overdue (as_of − due date; "
                     "not yet due = current); a customer's aging_bucket is the policy's classification (its "
                     "most overdue open invoice). Customers are listed when they have open invoices; "
                     "unapplied is cash and credit not allocated to any invoice (total: the whole book). groups: "
                     "the members' balances per customer group (key null: customers in no group).",
        }


def aging_csv_columns(labels) -> list[str]:
    return (["customer_id", "name", "industry", "region", "amount_tier", "aging_bucket", "max_days_overdue",
             "open_invoices", "outstanding", "overdue"] + [f"bucket_{label}" for label in labels] + ["unapplied"])


def aging_csv_row(row: dict) -> list:
    return ([row[k] for k in ("customer_id", "name", "industry", "region", "amount_tier", "aging_bucket",
                              "max_days_overdue", "open_invoices", "outstanding", "overdue")]
            + list(row["buckets"].values()) + [row["unapplied"]])


def aging_group_csv_columns(labels) -> list[str]:
    return (["group_id", "name", "limit", "customers", "open_invoices", "outstanding", "overdue"]
            + [f"bucket_{label}" for label in labels])


def aging_group_csv_row(row: dict) -> list:
    return ([row["key"] if row["key"] is not None else "", row["name"] or "", row["limit"] or ""]
            + [row[k] for k in ("customers", "open_invoices", "outstanding", "overdue")] + list(row["buckets"].values()))


# ---------------------------------------------------------------------------------------- aging chart
def aging_chart(service, as_of: dt.date, by: str = "amount_tier") -> str:
    """Horizontal bars, one for the book and one per non-empty segment of `by`, each stacked by aging
    bucket (green → red), amounts labelled; the bucket totals and the book total in the legend."""
    return render_aging_svg(aging(service, as_of), by)


# ---------------------------------------------------------------------------------------- overdue
class _Worst:
    """Heap entry ordered in reverse, so heap[0] is the kept row that sorts last."""
    __slots__ = ("key", "row")

    def __init__(self, key, row):
        self.key, self.row = key, row

    def __lt__(self, other):
        return self.key > other.key


def overdue(service, as_of: dt.date, limit: int, by: str = "customer") -> dict:
    """Overdue open invoices, most overdue first (then customer, invoice). Keeps at most `limit` rows
    in memory (a bounded heap); the totals count every overdue invoice. by="group": `groups` too, every
    overdue invoice's figures summed per customer group (not only the rows listed)."""
    with snapshot(service) as s:
        policy = service.registry.active(s, as_of)
        exp, bands = policy.exponent, Bands(policy)
        heap: list[_Worst] = []
        count = amount = paused = 0
        groups = Groups(s) if by == "group" else None
        per_group: dict = {}              # group → [customers, invoices, open balance, paused, max days]
        for c, facts in iter_facts(s, policy, as_of):
            mine = None
            for st in facts.invoices:
                if st.open_minor > 0 and st.days_overdue > 0:
                    count += 1
                    amount += st.open_minor
                    paused += st.paused is not None
                    if groups is not None:
                        if mine is None:
                            mine = per_group.setdefault(groups.of(c.id), [0, 0, 0, 0, 0])
                            mine[0] += 1
                        mine[1] += 1
                        mine[2] += st.open_minor
                        mine[3] += st.paused is not None
                        mine[4] = max(mine[4], st.days_overdue)
                    key = (-st.days_overdue, c.id, st.id)
                    if len(heap) < limit:
                        heapq.heappush(heap, _Worst(key, (c.id, c.name, st)))
                    elif key < heap[0].key:
                        heapq.heapreplace(heap, _Worst(key, (c.id, c.name, st)))
        kept = [w.row for w in sorted(heap, key=lambda w: w.key)]
        rows = [{"customer_id": cid, "customer_name": name, "invoice_id": st.id, "issued_on": st.issued_on.isoformat(),
                 "due_on": st.due_on.isoformat(), "days_overdue": st.days_overdue,
                 "aging_bucket": bands.bucket(st.days_overdue), "amount": minor_str(st.amount_minor, exp),
                 "open_balance": minor_str(st.open_minor, exp), "disputed": st.disputed, "paused": st.paused}
                for cid, name, st in kept]
        out = {"as_of": as_of.isoformat(), "policy_version": policy.version, "currency": policy.currency,
               "invoices": rows, "limit": limit, "truncated": count > len(rows),
               "total": {"invoices": count, "open_balance": minor_str(amount, exp), "paused": paused}}
        if groups is not None:
            def view(v):
                v = v or [0, 0, 0, 0, 0]
                return {"customers": v[0], "invoices": v[1], "open_balance": minor_str(v[2], exp), "paused": v[3],
                        "max_days_overdue": v[4]}
            out["groups"] = groups.rows(per_group, view, exp)
        return out


# ---------------------------------------------------------------------------------------- DSO
def _dso_days(receivables: int, sales: int, days: int) -> str | None:
    if not sales:
        return None
    return str((Decimal(receivables) * days / Decimal(sales)).quantize(Decimal("0.01"), ROUND_HALF_UP))


def dso(service, as_of: dt.date, days: int, by: str = "customer") -> dict:
    """DSO of the book; by="group": `groups` too, each group's DSO from its members' receivables and credit
    sales (the same formula; customers in no group under key null)."""
    start = as_of - dt.timedelta(days=days - 1)
    with snapshot(service) as s:
        policy = service.registry.active(s)
        exp = policy.exponent
        receivables = unapplied = 0
        groups = Groups(s) if by == "group" else None
        per_group: dict = {}              # group → [customers, receivables, unapplied, credit sales, invoices]
        for c, facts in iter_facts(s, policy, as_of):
            receivables += facts.fields["outstanding"]
            unapplied += facts.unapplied_minor
            if groups is not None:
                g = per_group.setdefault(groups.of(c.id), [0, 0, 0, 0, 0])
                g[0] += 1
                g[1] += facts.fields["outstanding"]
                g[2] += facts.unapplied_minor
        window = (Invoice.issued_on >= start, Invoice.issued_on <= as_of)
        sales, invoices = s.execute(select(func.coalesce(func.sum(Invoice.amount_minor), 0), func.count())
                                    .where(*window)).one()
        sales = int(sales)
        if groups is not None:
            for cid, amount, n in s.execute(select(Invoice.customer_id, func.sum(Invoice.amount_minor), func.count())
                                            .where(*window).group_by(Invoice.customer_id)):
                g = per_group.setdefault(groups.of(cid), [0, 0, 0, 0, 0])
                g[3] += int(amount)
                g[4] += n
    value = _dso_days(receivables, sales, days)
    out = {"as_of": as_of.isoformat(), "days": days, "currency": policy.currency,
           "window": {"from": start.isoformat(), "to": as_of.isoformat()},
           "receivables": minor_str(receivables, exp), "credit_sales": minor_str(sales, exp),
           "credit_sales_invoices": invoices, "unapplied": minor_str(unapplied, exp),
           "dso_days": value, "formula": DSO_FORMULA,
           "definitions": {
               "receivables": "open balance of the invoices issued on or before as_of, after the payments and "
                              "credit notes dated on or before as_of (unapplied cash not netted)",
               "credit_sales": f"amounts of the invoices issued in the last {days} days, "
                               f"{start.isoformat()} to {as_of.isoformat()} inclusive",
               "dso_days": "rounded half-up to 0.01 day; null when there were no credit sales in the window"}}
    if groups is not None:
        def view(v):
            v = v or [0, 0, 0, 0, 0]
            return {"customers": v[0], "receivables": minor_str(v[1], exp), "unapplied": minor_str(v[2], exp),
                    "credit_sales": minor_str(v[3], exp), "credit_sales_invoices": v[4],
                    "dso_days": _dso_days(v[1], v[3], days)}
        out["groups"] = groups.rows(per_group, view, exp)
    return out


# ---------------------------------------------------------------------------------------- collections
def collections(service, since: dt.date, until: dt.date, by: str = "customer") -> dict:
    """Collection actions (催收记录) due in [since, until], counted by type, channel and outcome; by="group":
    `groups` too, the actions of each customer group's members (by status)."""
    with snapshot(service) as s:
        policy = service.registry.active(s)
        exp = policy.exponent
        outcome = func.coalesce(Action.outcome, "")
        due = (Action.due_on >= since, Action.due_on <= until)
        q = (select(Action.type, Action.channel, Action.status, outcome, func.count(),
                    func.coalesce(func.sum(Action.amount_minor), 0))
             .where(*due)
             .group_by(Action.type, Action.channel, Action.status, outcome)
             .order_by(Action.type, Action.channel, Action.status, outcome))
        groups = [(t, ch, st, oc or None, n, int(a)) for t, ch, st, oc, n, a in s.execute(q)]
        by_group = None
        if by == "group":
            index, sums = Groups(s), {}      # group → [customers, actions, amount, {status: actions}]
            q = (select(Action.customer_id, Action.status, func.count(), func.coalesce(func.sum(Action.amount_minor), 0))
                 .where(*due).group_by(Action.customer_id, Action.status).order_by(Action.customer_id))
            last = None
            for cid, st, n, a in s.execute(q):
                e = sums.setdefault(index.of(cid), [0, 0, 0, {}])
                if cid != last:
                    e[0], last = e[0] + 1, cid
                e[1] += n
                e[2] += int(a)
                e[3][st] = e[3].get(st, 0) + n

            def view(v):
                v = v or [0, 0, 0, {}]
                return {"customers": v[0], "actions": v[1], "amount": minor_str(v[2], exp), "by_status": v[3]}
            by_group = index.rows(sums, view, exp)

    def rollup(key_of):
        out: dict = {}
        for t, ch, st, oc, n, a in groups:
            e = out.setdefault(key_of(t, ch, st, oc), {"actions": 0, "amount": 0, "by_status": {}})
            e["actions"] += n
            e["amount"] += a
            e["by_status"][st] = e["by_status"].get(st, 0) + n
        return [{"key": k, **v, "amount": minor_str(v["amount"], exp)}
                for k, v in sorted(out.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))]

    total = rollup(lambda *_: "all")
    return {"since": since.isoformat(), "until": until.isoformat(), "date_field": "due_on",
            "currency": policy.currency,
            "total": total[0] if total else {"key": "all", "actions": 0, "amount": minor_str(0, exp), "by_status": {}},
            "by_type": rollup(lambda t, ch, st, oc: t),
            "by_channel": rollup(lambda t, ch, st, oc: ch),
            "by_outcome": rollup(lambda t, ch, st, oc: oc),
            "rows": [{"type": t, "channel": ch, "status": st, "outcome": oc, "actions": n,
                      "amount": minor_str(a, exp)} for t, ch, st, oc, n, a in groups],
            **({"groups": by_group} if by_group is not None else {}),
            "notes": "Actions whose due date is in the period, by status; outcome is null until one is recorded."}


# ---------------------------------------------------------------------------------------- statement
_KIND_ORDER = {"invoice": 0, "credit_note": 1, "payment": 2}


def statement(service, customer_id: str, start: dt.date, end: dt.date) -> dict:
    """Statement of account (对账单): opening balance at the start of `start`, the period's invoices,
    credit notes and payments in date order with a running balance, the closing balance at the end of
    `end`, and the invoices open at `end` (allocation as the engine does it)."""
    with snapshot(service) as s:
        c = s.get(Customer, customer_id)
        if c is None:
            raise not_found("customer", customer_id)
        policy = service.registry.active(s, end)
        exp, bands = policy.exponent, Bands(policy)

        def before(model, column):
            return int(s.execute(select(func.coalesce(func.sum(model.amount_minor), 0))
                                 .where(model.customer_id == c.id, column < start)).scalar_one())

        opening = (before(Invoice, Invoice.issued_on) - before(CreditNote, CreditNote.issued_on)
                   - before(Payment, Payment.paid_on))
        items = []
        for i in s.execute(select(Invoice).where(Invoice.customer_id == c.id, Invoice.issued_on >= start,
                                                 Invoice.issued_on <= end)).scalars():
            items.append((i.issued_on, "invoice", i.id, None, i.due_on, i.amount_minor))
        for n in s.execute(select(CreditNote).where(CreditNote.customer_id == c.id, CreditNote.issued_on >= start,
                                                    CreditNote.issued_on <= end)).scalars():
            items.append((n.issued_on, "credit_note", n.id, n.invoice_id, None, n.amount_minor))
        for p in s.execute(select(Payment).where(Payment.customer_id == c.id, Payment.paid_on >= start,
                                                 Payment.paid_on <= end)).scalars():
            items.append((p.paid_on, "payment", p.id, p.invoice_id, None, p.amount_minor))
        items.sort(key=lambda t: (t[0], _KIND_ORDER[t[1]], t[2]))
        facts = build_facts(typed_cases(s, [c], policy, end)[c.id], policy, end)

    balance = opening
    sums = dict.fromkeys(_KIND_ORDER, 0)
    lines = []
    for day, kind, ref, invoice_id, due_on, amount in items:
        debit = amount if kind == "invoice" else 0
        credit = 0 if kind == "invoice" else amount
        balance += debit - credit
        sums[kind] += amount
        lines.append({"date": day.isoformat(), "type": kind, "reference": ref, "invoice_id": invoice_id,
                      "due_on": due_on.isoformat() if due_on else None, "debit": minor_str(debit, exp),
                      "credit": minor_str(credit, exp), "balance": minor_str(balance, exp)})
    closing = opening + sums["invoice"] - sums["credit_note"] - sums["payment"]      # = the running balance
    open_invoices = [st for st in facts.invoices if st.open_minor > 0]
    open_total = sum(st.open_minor for st in open_invoices)
    m = (lambda v: minor_str(v, exp))       # noqa: E731
    return {
        "customer": {"id": c.id, "name": c.name, "industry": c.industry, "region": c.region},
        "from": start.isoformat(), "to": end.isoformat(), "currency": policy.currency,
        "opening_balance": m(opening), "lines": lines,
        "totals": {"invoices": m(sums["invoice"]), "credit_notes": m(sums["credit_note"]),
                   "payments": m(sums["payment"])},
        "closing_balance": m(closing),
        "formula": "closing_balance = opening_balance + invoices − credit_notes − payments",
        "open_invoices": [{"invoice_id": st.id, "issued_on": st.issued_on.isoformat(),
                           "due_on": st.due_on.isoformat(), "amount": m(st.amount_minor),
                           "open_balance": m(st.open_minor), "days_overdue": st.days_overdue,
                           "aging_bucket": bands.bucket(st.days_overdue), "disputed": st.disputed,
                           "paused": st.paused} for st in open_invoices],
        "reconciliation": {"open_invoices_total": m(open_total), "unapplied": m(facts.unapplied_minor),
                           "difference": m(closing - (open_total - facts.unapplied_minor)),
                           "rule": "closing_balance = open invoices at `to` − unapplied payments and credits"},
    }


STATEMENT_CSV_COLUMNS = ["date", "type", "reference", "invoice_id", "due_on", "debit", "credit", "balance"]


def statement_csv_rows(st: dict) -> list[list]:
    zero = minor_str(0, len(st["opening_balance"].split(".")[1]) if "." in st["opening_balance"] else 0)
    rows = [[st["from"], "opening_balance", "", "", "", zero, zero, st["opening_balance"]]]
    rows += [[ln[k] if ln[k] is not None else "" for k in STATEMENT_CSV_COLUMNS] for ln in st["lines"]]
    rows.append([st["to"], "closing_balance", "", "", "", st["totals"]["invoices"],
                 str(Decimal(st["totals"]["credit_notes"]) + Decimal(st["totals"]["payments"])),
                 st["closing_balance"]])
    return rows

