"""A plain-Python reference for rule matching, and generators of facts, cases and policy variants.

Nothing here calls durable_rules: `holds` evaluates the checked condition AST
(("cmp", field, op, value, is_field_ref) | ("all", children) | ("any", children)) directly,
`holds_yaml` evaluates the *YAML* form of a condition (so a generated policy is checked
independently of the compiler's parse/negate step too), and `matching_rule_ids` answers
"which rules of a phase match this fact" from `policy.rules` alone, in definition order.

Used by tests/test_property.py, tests/test_stress.py and bench/run.py.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import random
import re
import textwrap
from decimal import Decimal

import yaml

from rules.fields import BOOL, ENUM, FIELDS, INT, MONEY, PERCENT

OPS = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}
SCALE = {MONEY: 2, PERCENT: 2, INT: 0}
BIG = 10**15  # 10 trillion yuan in fen: far beyond any real amount, well inside int64


# ---------------------------------------------------------------- reference evaluation
def _kind(v) -> type:
    return bool if isinstance(v, bool) else int if isinstance(v, int) else str if isinstance(v, str) else type(v)


def compare(op: str, left, right) -> bool:
    # Fields are typed, so both sides always have the same kind; anything else is a generator bug
    # (and Python's True == 1 would hide it).
    if _kind(left) is not _kind(right) or _kind(left) not in (bool, int, str):
        raise TypeError(f"comparing {left!r} with {right!r}")
    return OPS[op](left, right)


def holds(node, fact: dict) -> bool:
    """Truth of a checked condition AST for a flat fact."""
    kind = node[0]
    if kind == "all":
        return all(holds(child, fact) for child in node[1])
    if kind == "any":
        return any(holds(child, fact) for child in node[1])
    if kind == "cmp":
        _, name, op, value, is_ref = node
        return compare(op, fact[name], fact[value] if is_ref else value)
    raise ValueError(f"unknown condition node {node!r}")


def matching_rule_ids(policy, phase: str, fact: dict) -> list[str]:
    """Ids of the rules of `phase` whose condition holds, in definition (policy file) order."""
    return [r.id for r in policy.rules if r.phase == phase and holds(r.condition, fact)]


def yaml_value(name: str, raw):
    """A YAML threshold as the fact holds it: money/percent scaled by 100, ints as is."""
    kind = FIELDS[name].kind
    if kind in (BOOL, ENUM):
        return raw
    scaled = Decimal(str(raw)).scaleb(SCALE[kind])
    assert scaled == scaled.to_integral_value(), (name, raw)
    return int(scaled)


def holds_yaml(cond, fact: dict) -> bool:
    """Truth of a condition in its YAML form ({field, op: value}, all/any/not, in/not_in, always)."""
    if cond is None or cond == "always":
        return True
    if "all" in cond:
        return all(holds_yaml(c, fact) for c in cond["all"])
    if "any" in cond:
        return any(holds_yaml(c, fact) for c in cond["any"])
    if "not" in cond:
        return not holds_yaml(cond["not"], fact)
    name = cond["field"]
    ((op, raw),) = ((k, v) for k, v in cond.items() if k != "field")
    left = fact[name]
    if op in ("in", "not_in"):
        found = any(compare("eq", left, yaml_value(name, v)) for v in raw)
        return found if op == "in" else not found
    right = fact[raw["field"]] if isinstance(raw, dict) else yaml_value(name, raw)
    return compare(op, left, right)


# ---------------------------------------------------------------- fact domains
def policy_enums(policy) -> dict[str, tuple]:
    """Enum values of every ENUM field, from the policy's categories and band labels."""
    enums = {name: tuple(values) for name, values in policy.content["categories"].items()}
    for name, band_class in policy.band_classes.items():
        enums[name] = band_class.labels
    for name, spec in FIELDS.items():  # fields read with a band class's labels (overdue_amount_tier)
        if spec.enum_source and spec.enum_source.startswith("classification.") and name not in enums:
            enums[name] = policy.band_classes[spec.enum_source.split(".", 1)[1]].labels
    return enums


def _walk(node):
    if node[0] == "cmp":
        yield node
    else:
        for child in node[1]:
            yield from _walk(child)


class Domain:
    """Values one fact field may take: enum values, booleans, or integers around every threshold."""

    def __init__(self, name: str, kind: str, enum: tuple = (), thresholds=()):
        self.name, self.kind, self.enum = name, kind, tuple(enum)
        edges = {0, 1, -1}
        for t in thresholds:
            edges |= {t - 1, t, t + 1}
        self.edges = tuple(sorted(edges))
        span = max(100, max(abs(e) for e in self.edges))
        self.lo, self.hi = min(self.edges) - span, max(self.edges) + span

    def sample(self, rnd: random.Random):
        if self.kind == BOOL:
            return rnd.random() < 0.5
        if self.kind == ENUM:
            return rnd.choice(self.enum)
        r = rnd.random()
        if r < 0.55:
            return rnd.choice(self.edges)
        if r < 0.9:
            return rnd.randint(self.lo, self.hi)
        return rnd.randint(-BIG, BIG)


def field_domains(policy, phase: str, extra_fields=()) -> tuple[dict[str, Domain], list[tuple[str, str]]]:
    """(domain per field of the phase, field-reference pairs) for random facts of `phase`."""
    enums = policy_enums(policy)
    thresholds: dict[str, set] = {}
    refs: list[tuple[str, str]] = []
    for rule in policy.rules:
        if rule.phase != phase:
            continue
        for _, name, _, value, is_ref in _walk(rule.condition):
            if is_ref:
                if (name, value) not in refs:
                    refs.append((name, value))
            elif not isinstance(value, (bool, str)):
                thresholds.setdefault(name, set()).add(value)
    domains = {}
    for name in sorted(set(policy.phase_fields[phase]) | set(extra_fields)):
        if name == "t":
            continue
        kind = FIELDS[name].kind
        domains[name] = Domain(name, kind, enums.get(name, ()), sorted(thresholds.get(name, ())))
    return domains, refs


def merge_domains(*pairs):
    """Union of several (domains, refs): enum values and thresholds of every policy."""
    domains: dict[str, Domain] = {}
    refs: list = []
    for doms, rs in pairs:
        for name, d in doms.items():
            old = domains.get(name)
            if old is None:
                domains[name] = d
                continue
            merged = Domain(name, d.kind, tuple(dict.fromkeys(old.enum + d.enum)), ())
            merged.edges = tuple(sorted(set(old.edges) | set(d.edges)))
            merged.lo, merged.hi = min(old.lo, d.lo), max(old.hi, d.hi)
            domains[name] = merged
        refs += [r for r in rs if r not in refs]
    return domains, refs


def random_fact(rnd: random.Random, domains: dict[str, Domain], refs=()) -> dict:
    fact = {"t": 1}
    for name, domain in domains.items():
        fact[name] = domain.sample(rnd)
    for left, right in refs:  # make both sides of a field comparison meet often
        if rnd.random() < 0.5:
            other = fact[right]
            if domains[left].kind in (BOOL, ENUM):
                fact[left] = other
            else:
                fact[left] = other + rnd.choice((-1, 0, 1))
    return fact


# ---------------------------------------------------------------- policy text variants
def replace_section(text: str, name: str, body, block: bool = False) -> str:
    """Replace the top-level section `name:` of a policy text with `body`: JSON flow style
    (exact for any value), or with block=True the block style people write."""
    pattern = re.compile(rf"^{re.escape(name)}:.*?(?=^\S|\Z)", re.S | re.M)
    if not pattern.search(text):
        raise KeyError(name)
    if block:
        dumped = yaml.safe_dump(body, allow_unicode=True, sort_keys=False, default_flow_style=False, width=1000)
        section = f"{name}:\n{textwrap.indent(dumped, '  ')}\n"
    else:
        section = f"{name}: {json.dumps(body, ensure_ascii=False)}\n\n"
    return pattern.sub(lambda _: section, text, count=1)


def replace_category(text: str, category: str, values) -> str:
    pattern = re.compile(rf"^  {re.escape(category)}: \[.*$", re.M)
    if not pattern.search(text):
        raise KeyError(category)
    return pattern.sub(lambda _: f"  {category}: {json.dumps(list(values), ensure_ascii=False)}", text, count=1)


# ---------------------------------------------------------------- customer cases
def _money(minor: int) -> str:
    return str(Decimal(minor).scaleb(-2).quantize(Decimal("0.01")))


def random_case(rnd: random.Random, policy, as_of: dt.date, open_invoices: int | None = None, ident: int = 0):
    """A valid customer case (JSON-like, amounts as decimal strings) dated around `as_of`.

    With `open_invoices`, exactly that many invoices stay open (partial payments only) next
    to a few settled ones; otherwise everything is random, including overpayments.
    """
    cats = policy.content["categories"]
    day = lambda offset: (as_of + dt.timedelta(days=offset)).isoformat()  # noqa: E731
    customer = {
        "id": f"C-{ident}",
        "name": rnd.choice(["华东精密制造有限公司", "Acme Ltd", "张三"]),
        "type": rnd.choice(cats["customer_type"]),
        "industry": rnd.choice(cats["industry"]),
        "region": rnd.choice(cats["region"]),
        "size": rnd.choice(cats["company_size"]),
        "since": day(-rnd.randint(0, 4000)),
    }
    if rnd.random() < 0.3:
        customer["credit_score"] = rnd.randint(0, 100)
    if rnd.random() < 0.5:
        customer["external_rating"] = rnd.randint(0, 100)
    if rnd.random() < 0.5:
        customer["collector"] = rnd.choice(["王芳", "li.wei"])
    if rnd.random() < 0.3:
        customer["last_reviewed_on"] = day(-rnd.randint(0, 400))
    if rnd.random() < 0.3:
        customer["arrears_reason"] = rnd.choice(cats["arrears_reason"])
    if rnd.random() < 0.3:
        customer["deal_type"] = rnd.choice(cats["deal_type"])

    n_open = open_invoices if open_invoices is not None else rnd.randint(0, 8)
    n_settled = rnd.randint(0, 4)
    invoices, payments = [], []
    for i in range(n_open + n_settled):
        issued = -rnd.choice([rnd.randint(0, 45), rnd.randint(0, 120), rnd.randint(0, 300)])
        amount = rnd.choice(
            [rnd.randint(100, 99_999), rnd.randint(100_000, 9_999_999), rnd.randint(10_000_000, 50_000_000)]
        )
        inv = {
            "id": f"INV-{i}",
            "amount": _money(amount),
            "currency": "CNY",
            "issued_on": day(issued),
            "due_on": day(issued + rnd.choice([0, 15, 30, 45, 60])),
        }
        invoices.append(inv)
        if i >= n_open:  # settled: paid in full, on time or late
            paid = min(0, issued + rnd.randint(0, 120))
            payments.append({"invoice_id": inv["id"], "amount": inv["amount"], "paid_on": day(paid)})
        elif rnd.random() < 0.3:  # partly paid, stays open
            paid = min(0, issued + rnd.randint(0, 60))
            payments.append(
                {"invoice_id": inv["id"], "amount": _money(rnd.randint(1, amount - 1)), "paid_on": day(paid)}
            )
    rnd.shuffle(invoices)
    case = {"customer": customer, "invoices": invoices, "payments": payments}
    open_ids = [f"INV-{i}" for i in range(n_open)]
    if open_invoices is None and invoices and rnd.random() < 0.3:  # unallocated cash, maybe an overpayment
        payments.append({"amount": _money(rnd.randint(1, 10_000_000)), "paid_on": day(-rnd.randint(0, 30))})
    if open_ids and rnd.random() < 0.4:
        made = -rnd.randint(0, 40)
        case["promises"] = [
            {
                "id": "P-1",
                "invoice_id": rnd.choice(open_ids + [None]),
                "amount": _money(rnd.randint(100, 1_000_000)),
                "made_on": day(made),
                "promised_on": day(made + rnd.randint(0, 30)),
            }
        ]
    if open_ids and rnd.random() < 0.3:
        opened = -rnd.randint(0, 60)
        resolved = day(opened + rnd.randint(0, 80)) if rnd.random() < 0.5 else None
        case["disputes"] = [
            {
                "id": "D-1",
                "invoice_id": rnd.choice(open_ids),
                "opened_on": day(opened),
                "resolved_on": resolved,
                "reason": "quality",
            }
        ]
    if open_ids and rnd.random() < 0.2:
        agreed = -rnd.randint(0, 90)
        case["instalment_plans"] = [
            {
                "id": "IP-1",
                "invoice_ids": rnd.sample(open_ids, min(len(open_ids), rnd.randint(1, 2))),
                "agreed_on": day(agreed),
                "instalments": [
                    {"due_on": day(agreed + 30 * (k + 1)), "amount": _money(rnd.randint(100, 500_000))}
                    for k in range(rnd.randint(1, 4))
                ],
            }
        ]
    if rnd.random() < 0.3:
        case["reservations"] = [{"order_id": "SO-1", "amount": _money(rnd.randint(100, 5_000_000))}]
    if rnd.random() < 0.4:
        case["previous"] = {
            "as_of": day(-rnd.randint(1, 30)),
            "aging_bucket": rnd.choice(policy.band_classes["aging_bucket"].labels + (None,)),
            "credit_score": rnd.choice([None, rnd.randint(0, 100)]),
        }
    return case


def random_order(rnd: random.Random):
    """None (no credit check), or an order amount as a decimal string."""
    if rnd.random() < 0.3:
        return None
    return _money(rnd.choice([rnd.randint(1, 99_999), rnd.randint(100_000, 60_000_000)]))
