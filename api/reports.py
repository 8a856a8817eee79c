"""Portfolio reports (账款报告) and statements of account (对账单). Read-only.

Open balances, days overdue and pauses come from the engine's own fact builder
(engine.facts.build_facts) over the same case the evaluations see, so a report never
disagrees with a decision about what is open. Customers are read in batches of BATCH
(yield_per) with their ledger rows loaded per batch: memory holds one batch, not the book.
Money is integer minor units inside, decimal strings outside.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import heapq
from decimal import ROUND_HALF_UP, Decimal
from string import Template
from xml.sax.saxutils import escape, quoteattr

from sqlalchemy import func, select, text

from engine.facts import build_facts
from engine.money import minor_display, minor_str
from rules.common import find_band

from .db import Action, CreditNote, Customer, Invoice, Payment
from .errors import ApiError, not_found
from .ledger import load_cases

BATCH = 500
SEGMENT_DIMENSIONS = ("industry", "region", "amount_tier")
DSO_FORMULA = "DSO = receivables at as_of / credit sales in the last N days × N"


# ---------------------------------------------------------------------------------------- reading the book
@contextlib.contextmanager
def snapshot(service):
    """One transaction; on PostgreSQL a read-only REPEATABLE READ snapshot, so every batch of a report
    sees the same book. (SQLite: the service's BEGIN IMMEDIATE already gives one consistent view.)"""
    with service.tx() as s:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        yield s


def _loaded_cases(s, customers, policy, as_of: dt.date) -> dict[str, dict]:
    """For a batch of customers, with one query per ledger table: the typed case (api.ledger.load_cases)
    that build_facts takes. A report refuses a ledger in another currency than the active policy's."""
    cases = {}
    for cid, case in load_cases(s, customers, policy.exponent, as_of).items():
        for inv in case.typed["invoices"]:
            if inv["currency"] != policy.currency:
                raise ApiError(409, "E_LEDGER_POLICY_MISMATCH", f"invoice '{inv['id']}' of customer '{cid}' is in "
                               f"{inv['currency']}, not the active policy's currency {policy.currency}")
        cases[cid] = case.typed
    return cases


def iter_facts(s, policy, as_of: dt.date, batch: int | None = None):
    """(customer, facts) for every customer, by id, one batch of customers and their ledger at a time."""
    result = s.execute(select(Customer).order_by(Customer.id).execution_options(yield_per=batch or BATCH))
    for part in result.scalars().partitions():
        cases = _loaded_cases(s, part, policy, as_of)
        for c in part:
            yield c, build_facts(cases[c.id], policy, as_of)
        for c in part:             # the batch's customers leave the session: memory holds one batch
            s.expunge(c)


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


# ---------------------------------------------------------------------------------------- aging
def aging(service, as_of: dt.date, on_customer=None) -> dict:
    """Aging analysis (账龄分析). Calls on_customer(row) for each customer with open invoices, in id
    order, and returns the header, the segments and the book total. An invoice's open balance goes
    to the bucket of its own days overdue; the customer's bucket is the policy's (most overdue)."""
    with snapshot(service) as s:
        policy = service.registry.active(s)
        exp, bands = policy.exponent, Bands(policy)
        cats = policy.content["categories"]
        segments = {"industry": {k: _Sum(bands.labels) for k in cats["industry"]},
                    "region": {k: _Sum(bands.labels) for k in cats["region"]},
                    "amount_tier": {k: _Sum(bands.labels) for k in bands.tiers.labels}}
        total, unapplied = _Sum(bands.labels), 0
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
            "total": total_view,
            "notes": "Each open invoice's balance is in the bucket of its own days overdue (as_of − due date; "
                     "not yet due = current); a customer's aging_bucket is the policy's classification (its "
                     "most overdue open invoice). Customers are listed when they have open invoices; "
                     "unapplied is cash and credit not allocated to any invoice (total: the whole book).",
        }


def aging_csv_columns(labels) -> list[str]:
    return (["customer_id", "name", "industry", "region", "amount_tier", "aging_bucket", "max_days_overdue",
             "open_invoices", "outstanding", "overdue"] + [f"bucket_{label}" for label in labels] + ["unapplied"])


def aging_csv_row(row: dict) -> list:
    return ([row[k] for k in ("customer_id", "name", "industry", "region", "amount_tier", "aging_bucket",
                              "max_days_overdue", "open_invoices", "outstanding", "overdue")]
            + list(row["buckets"].values()) + [row["unapplied"]])


# ---------------------------------------------------------------------------------------- aging chart
def aging_chart(service, as_of: dt.date, by: str = "amount_tier") -> str:
    """Horizontal bars, one for the book and one per non-empty segment of `by`, each stacked by aging
    bucket (green → red), amounts labelled; the bucket totals and the book total in the legend."""
    return render_aging_svg(aging(service, as_of), by)


_SVG = Template("""<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="$width" height="$height" viewBox="0 0 $width $height" \
font-family="DejaVu Sans, Helvetica, Arial, sans-serif" role="img" aria-labelledby="title desc">
<title id="title">$title</title>
<desc id="desc">$desc</desc>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="24" y="34" font-size="20" font-weight="bold" fill="#111">$title</text>
<text x="24" y="56" font-size="13" fill="#444">$subtitle</text>
$body
<text x="24" y="${foot_y}" font-size="11" fill="#666">$footer</text>
</svg>
""")
_RECT = Template('<rect x="$x" y="$y" width="$w" height="$h" fill="$fill"$extra/>')
_BAR = Template('<rect x="$x" y="$y" width="$w" height="$h" fill="$fill" stroke="#ffffff" stroke-width="1">'
                '<title>$tip</title></rect>')
_TEXT = Template('<text x="$x" y="$y" font-size="$size" fill="$fill"$extra>$text</text>')


def _bucket_colours(n: int) -> list[str]:
    """Green (current) through amber to red (oldest)."""
    fixed = {1: ["#3a9d5d"], 2: ["#3a9d5d", "#d64541"], 3: ["#3a9d5d", "#f0b429", "#d64541"],
             4: ["#3a9d5d", "#f0b429", "#ef7d22", "#d64541"],
             5: ["#3a9d5d", "#a3c644", "#f0b429", "#ef7d22", "#d64541"],
             6: ["#3a9d5d", "#a3c644", "#f0b429", "#ef7d22", "#d64541", "#8e1b1b"]}
    if n in fixed:
        return fixed[n]
    return [f"hsl({round(130 - 130 * i / max(1, n - 1))}, 60%, {48 - 12 * i // max(1, n - 1)}%)" for i in range(n)]


def _text_colour(fill: str) -> str:
    return "#1b1b1b" if fill in ("#f0b429", "#a3c644", "#ef7d22") else "#ffffff"


def _nice_step(maximum: int, target_ticks: int = 5) -> int:
    raw = max(1, maximum // target_ticks)
    magnitude = 10 ** (len(str(raw)) - 1)
    for m in (1, 2, 2.5, 5, 10):
        step = int(m * magnitude)
        if step >= raw:
            return step
    return 10 * magnitude


def _short_amount(minor: int, exp: int) -> str:
    """Compact axis and in-bar form, 3 significant digits: 241,200.50 → 241k, 20,880 → 20.9k, 7,000 → 7k."""
    major = Decimal(minor).scaleb(-exp)
    for div, suffix in ((Decimal(10) ** 9, "bn"), (Decimal(10) ** 6, "m"), (Decimal(10) ** 3, "k"), (1, "")):
        if abs(major) >= div or div == 1:
            q = major / div
            places = 0 if abs(q) >= 100 else 1 if abs(q) >= 10 else 2
            q = q.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
            text_ = f"{q:f}".rstrip("0").rstrip(".") if places else f"{q:f}"
            return (text_ or "0") + suffix
    return "0"


def _range_text(band: dict) -> str:
    if band["min_days"] is None:
        return f"≤ {band['max_days']} days"
    if band["max_days"] is None:
        return f"≥ {band['min_days']} days"
    return f"{band['min_days']}–{band['max_days']} days"


def render_aging_svg(report: dict, by: str) -> str:
    """The chart of an aging() report (a small string template; no script, no external resource)."""
    exp = -Decimal(report["total"]["outstanding"]).as_tuple().exponent

    def minor(amount: str) -> int:
        return int(Decimal(amount).scaleb(exp))

    labels = [b["label"] for b in report["buckets"]]
    ranges = {b["label"]: _range_text(b) for b in report["buckets"]}
    colours = dict(zip(labels, _bucket_colours(len(labels))))
    total = report["total"]
    book = minor(total["outstanding"])
    rows = [("All customers", total["customers"], {k: minor(v) for k, v in total["buckets"].items()}, True)]
    for seg in report["segments"][by]:
        if seg["customers"]:
            rows.append((seg["key"], seg["customers"], {k: minor(v) for k, v in seg["buckets"].items()}, False))

    width, left, right = 900, 190, 150
    plot_w = width - left - right
    parts: list[str] = []

    # legend: one column per bucket with its range, total and share of the book
    legend_y = 84
    col_w = (width - 48) / max(1, len(labels))
    for i, label in enumerate(labels):
        x = 24 + i * col_w
        amount = minor(total["buckets"][label])
        share = f"{(Decimal(amount) * 100 / book).quantize(Decimal('0.1'), ROUND_HALF_UP)} %" if book else "–"
        parts.append(_RECT.substitute(x=f"{x:.1f}", y=legend_y, w=14, h=14, fill=colours[label],
                                      extra=' rx="2"'))
        parts.append(_TEXT.substitute(x=f"{x + 20:.1f}", y=legend_y + 12, size=13, fill="#111",
                                      extra=' font-weight="bold"', text=escape(label)))
        parts.append(_TEXT.substitute(x=f"{x + 20:.1f}", y=legend_y + 28, size=11, fill="#555", extra="",
                                      text=escape(ranges[label])))
        parts.append(_TEXT.substitute(x=f"{x + 20:.1f}", y=legend_y + 46, size=13, fill="#111",
                                      extra=f' class="bucket-total" data-bucket={quoteattr(label)}',
                                      text=escape(f"{minor_display(amount, exp)}  ({share})")))

    top = legend_y + 70
    bar_h, gap, section = 30, 18, 30          # the segments start below a caption naming the dimension
    ys = [top] + [top + section + n * (bar_h + gap) for n in range(1, len(rows))]
    scale_max = max(sum(b.values()) for _, _, b, _ in rows)
    step = _nice_step(scale_max) if scale_max else 0
    axis_max = -(-scale_max // step) * step if step else 1
    plot_bottom = ys[-1] + bar_h + 12

    def xpos(v: int) -> float:
        return left + plot_w * v / axis_max

    # grid and axis labels (an empty book has only the zero line)
    tick = 0
    while True:
        x = xpos(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{plot_bottom}" '
                     f'stroke="{"#999" if tick == 0 else "#e3e3e3"}" stroke-width="1"/>')
        parts.append(_TEXT.substitute(x=f"{x:.1f}", y=plot_bottom + 16, size=11, fill="#555",
                                      extra=' text-anchor="middle"', text=escape(_short_amount(tick, exp))))
        tick += step
        if not step or tick > axis_max:
            break
    parts.append(_TEXT.substitute(x=left + plot_w / 2, y=plot_bottom + 34, size=11, fill="#555",
                                  extra=' text-anchor="middle"', text=escape(f"open balance ({report['currency']})")))
    if not scale_max:
        parts.append(_TEXT.substitute(x=left + 14, y=top + bar_h / 2 + 5, size=13, fill="#666",
                                      extra=' font-style="italic"', text="no open invoices"))

    if len(rows) > 1:
        line_y = ys[0] + bar_h + 12
        parts.append(f'<line x1="24" y1="{line_y}" x2="{width - 24}" y2="{line_y}" stroke="#cccccc" '
                     f'stroke-dasharray="4 3"/>')
        caption = {"amount_tier": "by amount tier", "industry": "by industry", "region": "by region"}[by]
        parts.append(_TEXT.substitute(x=24, y=line_y + 16, size=12, fill="#555",
                                      extra=' font-style="italic" font-weight="bold"', text=escape(caption)))
    for (name, customers, buckets, is_total), y in zip(rows, ys):
        weight = ' font-weight="bold"' if is_total else ""
        parts.append(_TEXT.substitute(x=left - 10, y=y + 13, size=13, fill="#111",
                                      extra=f' text-anchor="end"{weight}', text=escape(name)))
        parts.append(_TEXT.substitute(x=left - 10, y=y + 27, size=10, fill="#666", extra=' text-anchor="end"',
                                      text=escape(f"{customers} customer{'s' if customers != 1 else ''}")))
        x = left
        for label in labels:
            amount = buckets.get(label, 0)
            if amount <= 0:
                continue
            w = plot_w * amount / axis_max
            parts.append(_BAR.substitute(x=f"{x:.1f}", y=y, w=f"{w:.1f}", h=bar_h, fill=colours[label],
                                         tip=escape(f"{name} · {label}: {minor_display(amount, exp)}")))
            text_ = _short_amount(amount, exp)
            if w >= 7 * len(text_) + 8:        # the amount fits inside its segment
                parts.append(_TEXT.substitute(x=f"{x + w / 2:.1f}", y=y + bar_h / 2 + 4, size=11,
                                              fill=_text_colour(colours[label]), extra=' text-anchor="middle"',
                                              text=escape(text_)))
            x += w
        if scale_max:
            parts.append(_TEXT.substitute(x=f"{x + 6:.1f}", y=y + bar_h / 2 + 5, size=13, fill="#111",
                                          extra=f' class="bar-total"{weight}',
                                          text=escape(minor_display(sum(buckets.values()), exp))))

    height = plot_bottom + 70
    title = f"Receivables aging as of {report['as_of']}"
    subtitle = (f"Total outstanding {report['currency']} {minor_display(book, exp)} · {total['customers']} "
                f"customer{'s' if total['customers'] != 1 else ''} with open invoices · "
                f"overdue {minor_display(minor(total['overdue']), exp)}")
    return _SVG.substitute(
        width=width, height=height, title=escape(title), subtitle=escape(subtitle),
        desc=escape(f"{subtitle}. " + "; ".join(f"{k}: {v}" for k, v in total["buckets"].items())),
        body="\n".join(parts), foot_y=height - 18,
        footer=escape(f"Each open invoice counts in the bucket of its own days overdue; buckets from policy "
                      f"{report['policy_version'][:12]}."))


# ---------------------------------------------------------------------------------------- overdue
class _Worst:
    """Heap entry ordered in reverse, so heap[0] is the kept row that sorts last."""
    __slots__ = ("key", "row")

    def __init__(self, key, row):
        self.key, self.row = key, row

    def __lt__(self, other):
        return self.key > other.key


def overdue(service, as_of: dt.date, limit: int) -> dict:
    """Overdue open invoices, most overdue first (then customer, invoice). Keeps at most `limit` rows
    in memory (a bounded heap); the totals count every overdue invoice."""
    with snapshot(service) as s:
        policy = service.registry.active(s)
        exp, bands = policy.exponent, Bands(policy)
        heap: list[_Worst] = []
        count = amount = paused = 0
        for c, facts in iter_facts(s, policy, as_of):
            for st in facts.invoices:
                if st.open_minor > 0 and st.days_overdue > 0:
                    count += 1
                    amount += st.open_minor
                    paused += st.paused is not None
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
        return {"as_of": as_of.isoformat(), "policy_version": policy.version, "currency": policy.currency,
                "invoices": rows, "limit": limit, "truncated": count > len(rows),
                "total": {"invoices": count, "open_balance": minor_str(amount, exp), "paused": paused}}


# ---------------------------------------------------------------------------------------- DSO
def dso(service, as_of: dt.date, days: int) -> dict:
    start = as_of - dt.timedelta(days=days - 1)
    with snapshot(service) as s:
        policy = service.registry.active(s)
        exp = policy.exponent
        receivables = unapplied = 0
        for _, facts in iter_facts(s, policy, as_of):
            receivables += facts.fields["outstanding"]
            unapplied += facts.unapplied_minor
        sales, invoices = s.execute(select(func.coalesce(func.sum(Invoice.amount_minor), 0), func.count())
                                    .where(Invoice.issued_on >= start, Invoice.issued_on <= as_of)).one()
        sales = int(sales)
    value = None
    if sales:
        value = str((Decimal(receivables) * days / Decimal(sales)).quantize(Decimal("0.01"), ROUND_HALF_UP))
    return {"as_of": as_of.isoformat(), "days": days, "currency": policy.currency,
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


# ---------------------------------------------------------------------------------------- collections
def collections(service, since: dt.date, until: dt.date) -> dict:
    """Collection actions (催收记录) due in [since, until], counted by type, channel and outcome."""
    with snapshot(service) as s:
        policy = service.registry.active(s)
        exp = policy.exponent
        outcome = func.coalesce(Action.outcome, "")
        q = (select(Action.type, Action.channel, Action.status, outcome, func.count(),
                    func.coalesce(func.sum(Action.amount_minor), 0))
             .where(Action.due_on >= since, Action.due_on <= until)
             .group_by(Action.type, Action.channel, Action.status, outcome)
             .order_by(Action.type, Action.channel, Action.status, outcome))
        groups = [(t, ch, st, oc or None, n, int(a)) for t, ch, st, oc, n, a in s.execute(q)]

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
        policy = service.registry.active(s)
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
        facts = build_facts(_loaded_cases(s, [c], policy, end)[c.id], policy, end)

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

