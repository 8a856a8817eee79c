"""The fact dictionary: every field a policy condition or message may use.

A field's `kind` decides how YAML values are read (money → minor units, percent →
basis points) and what comparisons make sense. `stage` says when the value exists:
`profile` fields come from the ledger and classification; `decision` fields exist only
once credit limits and the dunning stage are resolved, so only credit-check and alert
rules may use them. Enum values of the categorical classes come from the policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from .money import minor_display, percent_display

MONEY, INT, PERCENT, BOOL, ENUM = "money", "int", "percent", "bool", "enum"
PROFILE, DECISION = "profile", "decision"


@dataclass(frozen=True)
class FactField:
    name: str
    kind: str
    doc: str
    stage: str = PROFILE
    enum_source: str | None = None  # categories.<name> or classification.<name> (band labels)
    nonnegative: bool = True


def _f(*args, **kw):
    f = FactField(*args, **kw)
    return f.name, f


FIELDS: dict[str, FactField] = dict(
    [
        # categorical classes (values declared under `categories:` in the policy)
        _f("customer_type", ENUM, "个人/企业: individual or enterprise", enum_source="categories.customer_type"),
        _f("industry", ENUM, "行业", enum_source="categories.industry"),
        _f("region", ENUM, "地理区域: local or remote", enum_source="categories.region"),
        _f("company_size", ENUM, "企业规模", enum_source="categories.company_size"),
        _f("arrears_reason", ENUM, "欠款原因 recorded on the credit file", enum_source="categories.arrears_reason"),
        _f("deal_type", ENUM, "type of business (e.g. engineering project)", enum_source="categories.deal_type"),
        # band classes (labels declared under `classification:`)
        _f("amount_tier", ENUM, "大额/中额/小额 by total outstanding", enum_source="classification.amount_tier"),
        _f(
            "overdue_amount_tier",
            ENUM,
            "the amount tier's bands applied to the overdue amount (escalation)",
            enum_source="classification.amount_tier",
        ),
        _f("aging_bucket", ENUM, "bucket of the most overdue open invoice", enum_source="classification.aging_bucket"),
        _f("reputation", ENUM, "信誉 by credit score", enum_source="classification.reputation"),
        # customer file
        _f("customer_age_days", INT, "days since the customer relationship started (as_of − since)"),
        _f("years_as_customer", INT, "whole years since `since`"),
        _f("credit_score", INT, "credit score 0–100 (manual assessment if set, else the scorecard)"),
        _f("manual_score", BOOL, "true when a controller set the score on the credit file"),
        _f("has_external_rating", BOOL, "an external credit report rating is on file"),
        _f("external_rating", INT, "external rating 0–100 (0 when absent)"),
        _f("has_collector", BOOL, "a named collector is assigned on the credit file"),
        # ledger
        _f("outstanding", MONEY, "sum of open invoice balances"),
        _f("overdue_amount", MONEY, "sum of open balances past their due date"),
        _f("reserved", MONEY, "credit held for open orders (reservations)"),
        _f("exposure", MONEY, "outstanding + reserved"),
        _f("open_invoice_count", INT, "open invoices"),
        _f("overdue_invoice_count", INT, "open invoices past due"),
        _f("max_days_overdue", INT, "days overdue of the most overdue open invoice (0 when none)"),
        _f("collectable_days_overdue", INT, "days overdue of the most overdue invoice not paused (dunning anchor)"),
        _f("collectable_overdue_amount", MONEY, "sum of open balances past due whose collection is not paused"),
        _f("disputed_invoice_count", INT, "open invoices under an open dispute"),
        _f("paused_invoice_count", INT, "overdue invoices whose collection is paused"),
        _f("open_promise_count", INT, "promises to pay still open (date + tolerance not passed)"),
        _f("broken_promises", INT, "promises broken and instalments missed, all time"),
        _f("new_broken_promises", INT, "promises broken or instalments missed since the previous evaluation"),
        _f("kept_instalment_plans", INT, "instalment plans being kept"),
        _f("has_payment_history", BOOL, "at least one invoice has been paid in full"),
        _f("on_time_ratio", PERCENT, "share of settled invoices paid by their due date"),
        _f("avg_days_late", INT, "average days late of settled invoices (0 when on time)"),
        _f(
            "invoices_entering_medium",
            INT,
            "invoices that crossed into the medium bucket since the previous evaluation",
        ),
        _f("invoices_entering_long", INT, "invoices that crossed into the long bucket since the previous evaluation"),
        _f("aging_worsened", BOOL, "aging bucket is worse than at the previous evaluation"),
        _f("score_drop", INT, "previous credit score − current (negative when it rose)", nonnegative=False),
        _f("max_invoice_terms_days", INT, "longest terms (due_on − issued_on, days) of an open invoice (0 when none)"),
        _f("has_order", BOOL, "an order amount was given (credit check)"),
        _f("order_amount", MONEY, "amount of the order being checked (0 without an order)"),
        # decision stage: exist once limits and the dunning stage are resolved
        _f("credit_limit", MONEY, "credit limit resolved by the credit rules", stage=DECISION),
        _f("terms_days", INT, "payment terms resolved by the credit rules", stage=DECISION),
        _f("deposit_pct", PERCENT, "deposit required on new orders", stage=DECISION),
        _f("dunning_stage", INT, "collection stage 0–3", stage=DECISION),
        _f("exposure_after_order", MONEY, "exposure + order amount", stage=DECISION),
        _f("available_credit", MONEY, "limit − exposure (never below 0)", stage=DECISION),
        _f("utilisation", PERCENT, "exposure / limit, rounded up to 0.01 %", stage=DECISION),
        _f("utilisation_after_order", PERCENT, "(exposure + order) / limit, rounded up to 0.01 %", stage=DECISION),
        _f(
            "invoices_beyond_terms",
            INT,
            "open invoices whose terms (due_on − issued_on) exceed terms_days",
            stage=DECISION,
        ),
        _f(
            "invoice_terms_exceeded",
            BOOL,
            "an open invoice is due later than terms_days after its issue",
            stage=DECISION,
        ),
    ]
)

# Fields that say something is overdue: a credit check rule reading one is set aside while the overdue
# amount is below the policy's credit.min_overdue_balance (tolerance).
OVERDUE_FIELDS = frozenset(
    {
        "overdue_amount",
        "overdue_invoice_count",
        "max_days_overdue",
        "collectable_days_overdue",
        "collectable_overdue_amount",
        "aging_bucket",
        "dunning_stage",
    }
)

# Score factors the scorecard may use (all profile INT/PERCENT fields computed from history).
SCORE_FACTORS = ("on_time_ratio", "avg_days_late", "years_as_customer", "broken_promises", "external_rating")
# When a factor has no data the scorecard uses its `missing` points instead of bands.
FACTOR_PRESENT = {
    "on_time_ratio": "has_payment_history",
    "avg_days_late": "has_payment_history",
    "external_rating": "has_external_rating",
}


def show(kind: str, value, exponent: int = 2) -> str:
    if kind == MONEY:
        return minor_display(value, exponent)
    if kind == PERCENT:
        return f"{percent_display(value)}%"
    if kind == BOOL:
        return "true" if value else "false"
    return str(value)


def did_you_mean(name: str, candidates) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
