"""The overview's book figures (receivables, overdue, DSO, the oldest bucket's share, the aging chart)
without a pass over the whole book when the page is shown.

The sweep evaluates every customer anyway. Each group of customers adds its share of the aging
(`customer_share` of each customer's facts, summed in `Sums`) to `sweep_figures` in the group's own
transaction, so a resumed run counts every customer once; when the run ends, `write_snapshot` sums the
shares into a `book_snapshots` row with the DSO's credit sales. The figures are those `book.aging` gives
for the sweep's day, as the sweep saw each customer. The console shows the latest snapshot for the day
under the active policy version with its time; a small book without one is computed live.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import delete, func, select

from rules.money import minor_str

from ..store.tables import BookSnapshot, Customer, Invoice, SweepFigures
from .aging_chart import render_aging_svg
from .book import Bands, _Sum

DSO_DAYS = 90


def customer_share(bands: Bands, facts) -> tuple:
    """(amount tier, outstanding, overdue, open invoices, {bucket: open balance}, unapplied) of one customer,
    as book.aging counts it (each open invoice in the bucket of its own days overdue)."""
    buckets: dict[str, int] = {}
    n = 0
    for st in facts.invoices:
        if st.open_minor > 0:
            n += 1
            label = bands.bucket(st.days_overdue)
            buckets[label] = buckets.get(label, 0) + st.open_minor
    return (
        bands.tier(facts),
        facts.fields["outstanding"],
        facts.fields["overdue_amount"],
        n,
        buckets,
        facts.unapplied_minor,
    )


class Sums:
    """Shares summed by amount tier; JSON-able (to_json / from_json) and mergeable."""

    def __init__(self, policy_version: str):
        self.policy_version = policy_version
        self.tiers: dict[str, list] = {}  # tier: [customers, outstanding, overdue, open invoices, {bucket: v}]
        self.unapplied = self.evaluated = 0

    def add(self, share: tuple) -> None:
        tier, outstanding, overdue, n, buckets, unapplied = share
        self.evaluated += 1
        self.unapplied += unapplied
        if not n:  # book.aging lists customers with open invoices only
            return
        t = self.tiers.setdefault(tier, [0, 0, 0, 0, {}])
        t[0] += 1
        t[1] += outstanding
        t[2] += overdue
        t[3] += n
        for label, v in buckets.items():
            t[4][label] = t[4].get(label, 0) + v

    def merge(self, other: Sums) -> None:
        self.evaluated += other.evaluated
        self.unapplied += other.unapplied
        for tier, (c, o, d, n, buckets) in other.tiers.items():
            t = self.tiers.setdefault(tier, [0, 0, 0, 0, {}])
            t[0], t[1], t[2], t[3] = t[0] + c, t[1] + o, t[2] + d, t[3] + n
            for label, v in buckets.items():
                t[4][label] = t[4].get(label, 0) + v

    def to_json(self) -> dict:
        return {
            "policy_version": self.policy_version,
            "unapplied": self.unapplied,
            "evaluated": self.evaluated,
            "tiers": self.tiers,
        }

    @classmethod
    def from_json(cls, raw: dict) -> Sums:
        out = cls(raw["policy_version"])
        out.unapplied, out.evaluated = raw["unapplied"], raw["evaluated"]
        out.tiers = {k: list(v) for k, v in raw["tiers"].items()}
        return out

    def aging(self, policy, as_of: dt.date) -> dict:
        """The parts of book.aging's report the figures and the chart read (segments by amount tier only)."""
        exp, bands = policy.exponent, Bands(policy)
        tiers = {k: _Sum(bands.labels) for k in bands.tiers.labels}
        total = _Sum(bands.labels)
        for tier, (c, o, d, n, buckets) in self.tiers.items():
            for into in (tiers.setdefault(tier, _Sum(bands.labels)), total):
                into.customers += c
                into.outstanding += o
                into.overdue += d
                into.open_invoices += n
                for label, v in buckets.items():
                    into.buckets[label] = into.buckets.get(label, 0) + v
        total_view = total.view(exp)
        total_view["unapplied"] = minor_str(self.unapplied, exp)
        return {
            "as_of": as_of.isoformat(),
            "policy_version": policy.version,
            "currency": policy.currency,
            "buckets": bands.describe(),
            "total": total_view,
            "segments": {"amount_tier": [{"key": k, **v.view(exp)} for k, v in tiers.items()]},
        }


def credit_sales(s, as_of: dt.date, days: int = DSO_DAYS) -> int:
    """Amounts of the invoices issued in the `days` days to as_of (book.dso's window), minor units."""
    start = as_of - dt.timedelta(days=days - 1)
    return int(
        s.execute(
            select(func.coalesce(func.sum(Invoice.amount_minor), 0)).where(
                Invoice.issued_on >= start, Invoice.issued_on <= as_of
            )
        ).scalar_one()
    )


def from_aging(aging: dict, sales: int, exp: int, as_of: dt.date, dso_days: int = DSO_DAYS) -> dict:
    """The overview's figures from an aging report and the window's credit sales (minor units): DSO as
    book.dso computes it (receivables × days / credit sales), shares of the receivables, the chart."""
    total = aging["total"]
    outstanding, overdue = Decimal(total["outstanding"]), Decimal(total["overdue"])
    oldest = aging["buckets"][-1]["label"] if aging["buckets"] else None
    old = Decimal(total["buckets"].get(oldest, "0")) if oldest else Decimal(0)
    dso = None
    if sales:
        dso = str((outstanding * 10**exp * dso_days / Decimal(sales)).quantize(Decimal("0.01"), ROUND_HALF_UP))

    def pct(part):
        return str((part * 100 / outstanding).quantize(Decimal("0.1"), ROUND_HALF_UP)) if outstanding else None

    return {
        "as_of": as_of.isoformat(),
        "policy_version": aging["policy_version"],
        "currency": aging["currency"],
        "receivables": total["outstanding"],
        "overdue": total["overdue"],
        "overdue_pct": pct(overdue),
        "oldest_bucket": oldest,
        "oldest_pct": pct(old),
        "dso_days": dso,
        "dso_window_days": dso_days,
        "credit_sales": minor_str(sales, exp),
        "customers_with_open_invoices": total["customers"],
        "chart": render_aging_svg(aging, "amount_tier"),
    }


# ---------------------------------------------------------------------------------------- the sweep's part
def add_group(s, run_id: str, sums: Sums) -> None:
    """A group's share, in the group's transaction (with its sweep items)."""
    if sums.evaluated:
        s.add(SweepFigures(run_id=run_id, sums=sums.to_json()))


def write_snapshot(s, policy, run_id: str, as_of: dt.date, errors: int, now: dt.datetime) -> BookSnapshot | None:
    """At the end of a run: its groups' shares summed into a snapshot (and the shares deleted). None when
    the run's customers were evaluated under more than one policy version, or another than the active one
    (a policy published mid-run): the overview then waits for the next sweep, or computes a small book live."""
    parts = s.execute(select(SweepFigures.sums).where(SweepFigures.run_id == run_id)).scalars().all()
    s.execute(delete(SweepFigures).where(SweepFigures.run_id == run_id))
    versions = {p["policy_version"] for p in parts}
    if versions != {policy.version}:
        return None
    total = Sums(policy.version)
    for p in parts:
        total.merge(Sums.from_json(p))
    return snapshot_of(s, policy, total, f"sweep {run_id}", as_of, errors, now)


def snapshot_of(s, policy, total: Sums, source: str, as_of: dt.date, errors: int, now: dt.datetime) -> BookSnapshot:
    """A snapshot of the whole book's summed shares (a finished sweep's, or an import's that decided every
    customer of the book)."""
    figures = from_aging(total.aging(policy, as_of), credit_sales(s, as_of), policy.exponent, as_of)
    figures["errors"] = errors
    snap = BookSnapshot(
        as_of=as_of,
        policy_version=policy.version,
        source=source,
        computed_at=now,
        customers=total.evaluated,
        figures=figures,
    )
    s.add(snap)
    return snap


# ---------------------------------------------------------------------------------------- reading
def latest_snapshot(service, as_of: dt.date | None = None, policy_version: str | None = None) -> dict | None:
    """The newest snapshot (for `as_of` and `policy_version` when given): {figures, computed_at, source,
    as_of, policy_version, customers} or None."""
    q = select(BookSnapshot)
    if as_of is not None:
        q = q.where(BookSnapshot.as_of == as_of)
    if policy_version is not None:
        q = q.where(BookSnapshot.policy_version == policy_version)
    with service.read_tx() as s:
        snap = s.execute(q.order_by(BookSnapshot.as_of.desc(), BookSnapshot.id.desc()).limit(1)).scalar_one_or_none()
        if snap is None:
            return None
        return {
            "figures": snap.figures,
            "computed_at": snap.computed_at,
            "source": snap.source,
            "as_of": snap.as_of,
            "policy_version": snap.policy_version,
            "customers": snap.customers,
        }


def book_size(service) -> int:
    with service.read_tx() as s:
        return s.execute(select(func.count()).select_from(Customer)).scalar_one()
