"""The aging report as an SVG bar chart (no JavaScript, no external fonts): one bar per segment,
stacked by aging bucket, amounts on the axis in the policy's currency."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from string import Template
from xml.sax.saxutils import escape, quoteattr

from rules.money import minor_display

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
    # by="group": the aging report's customer groups (集团客户), named; key null is the customers in no group
    segments = report["groups"] if by == "group" else report["segments"][by]
    for seg in segments:
        if seg["customers"]:
            name = (seg.get("name") or seg["key"] or "no group") if by == "group" else seg["key"]
            rows.append((name, seg["customers"], {k: minor(v) for k, v in seg["buckets"].items()}, False))

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
        caption = {"amount_tier": "by amount tier", "industry": "by industry", "region": "by region",
                   "group": "by customer group"}[by]
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
