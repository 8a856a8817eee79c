"""Response schemas of the API (OpenAPI 3.0 JSON Schema), one per answer shape, used by openapi.py.

They say what a client may rely on: every key listed under `required` is always there, types and enums are
exact, amounts are decimal strings, dates ISO. The suite checks every answer its test servers give against
these (tests/api/response_check.py), and the fuzzing run checks its answers too (response_schema_conformance)."""
from __future__ import annotations

from ..service.legal_cases import STATUSES as LEGAL_STATUSES
from ..store.trail import RECORD_KINDS, RECORD_OUTCOMES

MONEY = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]+$", "example": "30000.00",
         "description": "decimal string with the currency's decimals"}
PCT = {"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$", "example": "67.50", "description": "percent, 2 decimals"}
DATE = {"type": "string", "format": "date"}
TIME = {"type": "string", "format": "date-time", "description": "UTC, ISO 8601 with Z"}
TEXT = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
ID = {"type": "string", "description": "32 hex digits"}


def null(schema: dict) -> dict:
    """OpenAPI 3.0.3: a nullable enum lists null among its values."""
    out = {**schema, "nullable": True}
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


def obj(required: list[str] | tuple = (), optional: dict | None = None, **props) -> dict:
    """An object whose `required` keys are always present; `props` and `optional` are its properties."""
    properties = {**props, **(optional or {})}
    out = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    return out


def all_of(**props) -> dict:
    """An object with every property present."""
    return obj(list(props), **props)


def array(items: dict) -> dict:
    return {"type": "array", "items": items}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


# ---------------------------------------------------------------------------------------- the decision
REASON = all_of(rule=TEXT, family=TEXT, message=TEXT)
CLASSIFICATION = obj(
    ["amount_tier", "aging_bucket", "reputation", "customer_type", "industry", "region", "company_size",
     "arrears_reason", "deal_type", "segments"],
    amount_tier=TEXT, aging_bucket=TEXT, reputation=TEXT, customer_type=TEXT, industry=TEXT, region=TEXT,
    company_size=TEXT, arrears_reason=TEXT, deal_type=TEXT, overdue_amount_tier=TEXT,
    segments=array(obj(["id"], id=TEXT, strategy=array(TEXT))))
SCORE = all_of(value=INT, source={"type": "string", "enum": ["scorecard", "manual"]},
               points={"type": "object", "additionalProperties": INT})
CONDITION = obj(["type"], type={"type": "string", "enum": ["deposit", "prepayment"]}, pct=PCT, amount=MONEY)
CHECK = obj(["order_amount", "exposure_after_order", "utilisation_after_order_pct", "outcome", "conditions", "rules"],
            order_amount=MONEY, exposure_after_order=MONEY, utilisation_after_order_pct=PCT,
            outcome={"type": "string", "enum": ["approve", "approve_with_conditions", "refer", "reject"]},
            conditions=array(CONDITION), rules=array(TEXT))
CREDIT = obj(
    ["limit", "policy_limit", "approved_limit", "terms_days", "policy_terms_days", "deposit_pct", "limit_rules",
     "outstanding", "overdue", "reserved", "exposure", "available", "utilisation_pct"],
    limit=MONEY, policy_limit=MONEY, approved_limit=null(MONEY), terms_days=INT, policy_terms_days=INT,
    deposit_pct=PCT, limit_rules=array(TEXT), outstanding=MONEY, overdue=MONEY, reserved=MONEY, exposure=MONEY,
    available=MONEY, utilisation_pct=PCT, unapplied_cash=MONEY,
    cash_applied=array(obj(source=TEXT, source_id=TEXT, source_date=DATE, invoice_id=TEXT, amount=MONEY,
                           applied_on=DATE)),
    check=CHECK)
PAUSE = {"type": "string", "enum": ["legal_case", "dispute", "promise", "instalment_plan"]}
DUNNING_ACTION = obj(["id", "type", "channel", "stage", "owner", "due_on"],
                     id=TEXT, type=TEXT, channel=TEXT, stage=INT, owner=TEXT, invoice_id=null(TEXT),
                     amount=null(MONEY), due_on=DATE, days_before_due=INT)
DUNNING = obj(
    ["stage", "anchor_invoice_id", "stage_detail", "open_invoices", "paused", "actions"],
    stage=INT, anchor_invoice_id=null(TEXT),
    stage_detail=null(obj(["name", "target_stage"], name=TEXT, entered_at_days_overdue=null(INT), target_stage=INT,
                          paused=BOOL, skip=BOOL, entered_on=null(DATE), days_in_stage=null(INT), cadence_days=INT,
                          next_action_on=null(DATE))),
    open_invoices=array(all_of(invoice_id=TEXT, open=MONEY, due_on=DATE, days_overdue=INT, paused=null(PAUSE))),
    paused=array(all_of(invoice_id=TEXT, reason=PAUSE)),
    actions=array(DUNNING_ACTION),
    action_owners=array(obj(["action", "owner"], action=TEXT, owner=TEXT, rule=TEXT, automated=BOOL)))
INTEREST = all_of(total=MONEY, invoices=array(obj(
    ["invoice_id", "days_overdue", "interest"], invoice_id=TEXT, days_overdue=INT, chargeable_days=INT, base=MONEY,
    daily_rate=TEXT, interest=MONEY, fee=MONEY)))
REPAYMENT = obj(["instalments", "deferral", "waiver"],
                instalments=obj(["allowed"], allowed=BOOL, max_count=null(INT)),
                deferral=obj(["allowed"], allowed=BOOL, max_days=null(INT)),
                waiver=obj(["mode"], mode=TEXT))
ALERT = all_of(id=TEXT, severity={"type": "string", "enum": ["critical", "warning", "info"]}, message=TEXT)
REVIEW = null(obj(["due"], due=BOOL, every_months=INT, last_reviewed_on=null(DATE), next_review_on=null(DATE)))
DECISION = obj(
    ["customer_id", "as_of", "policy_name", "policy_version", "currency", "classification", "score", "credit",
     "dunning", "interest", "repayment", "alerts", "review", "reasons"],
    customer_id=TEXT, as_of=DATE, policy_name=TEXT, policy_version=HASH, currency=TEXT,
    classification=CLASSIFICATION, score=SCORE, credit=CREDIT, dunning=DUNNING, interest=INTEREST,
    repayment=REPAYMENT, alerts=array(ALERT), review=REVIEW, reasons=array(REASON))
DECISION["description"] = "docs/decisions.md: every key, its meaning and its order"

EVALUATION = obj(["decision_id", "decision"], decision_id=ID, decision=ref("Decision"), customer_id=TEXT)
EVENT_RESULT = obj(["event_id", "type", "customer_id", "decision_id", "decision"],
                   event_id=TEXT, type=TEXT, customer_id=TEXT, decision_id=ID, decision=ref("Decision"))
EVENT_RESULT["description"] = "201: the event and the decision it led to; 200: a repeated event_id, the first answer"

CREDIT_CHECK = obj(
    ["order_id", "customer_id", "as_of", "decision_id", "policy_version", "outcome", "limit", "exposure",
     "exposure_after_order", "available", "conditions", "reasons", "reserved"],
    order_id=TEXT, customer_id=TEXT, as_of=DATE, decision_id=ID, policy_version=HASH,
    outcome={"type": "string", "enum": ["approve", "approve_with_conditions", "refer", "reject"]},
    limit=MONEY, exposure=MONEY, exposure_after_order=MONEY, available=MONEY, conditions=array(CONDITION),
    reasons=array(REASON), reserved=BOOL,
    optional={"referral": ref("Referral"), "what_if": BOOL, "expires_on": null(DATE), "hold": {"type": "object"},
              "limit_source": TEXT,
              # a member of a customer group (api/service/groups.py): the group's test, and its hold in force
              "group": obj(["id", "name", "limit", "exposure", "exposure_after_order", "available"], id=TEXT,
                           name=TEXT, limit=MONEY, exposure=MONEY, exposure_after_order=MONEY, available=MONEY,
                           hold=obj(["reason", "placed_on", "until", "placed_by", "decision_id"], reason=TEXT,
                                    placed_on=DATE, until=null(DATE), placed_by=TEXT, decision_id=ID))})
RELEASED = all_of(order_id=TEXT, status={"type": "string", "enum": ["released", "held", "provisional", "invoiced", "expired"],
                                         "description": "what the reservation is now: released, or the state a "
                                                        "reservation no longer held was already in"})

# ---------------------------------------------------------------------------------------- credit files
CREDIT_FILE = obj(
    ["id", "name", "type", "industry", "region", "size", "since", "tags"],
    id=TEXT, name=TEXT, type=TEXT, industry=TEXT, region=TEXT, size=TEXT, since=DATE, tags=array(TEXT),
    credit_score=null(INT), external_rating=null(INT), collector=null(TEXT), arrears_reason=null(TEXT),
    deal_type=null(TEXT), approved_limit=null(MONEY), approved_terms_days=null(INT), last_reviewed_on=null(DATE))
LAST_DECISION = null(all_of(
    as_of=DATE, aging_bucket=TEXT, amount_tier=null(TEXT), reputation=null(TEXT), stage=INT, segments=array(TEXT),
    outstanding=MONEY, credit_score=null(INT)))
CUSTOMER_LIST = all_of(customers=array({"allOf": [ref("CreditFile"), all_of(
    on_hold=BOOL, last_decision={**LAST_DECISION, "description": "the last recorded decision's classification "
                                                                  "(null before the first)"})]}),
    next_cursor=null(TEXT))
CUSTOMER_VIEW = {"allOf": [ref("CreditFile"), obj(
    ["as_of", "policy_version", "classification", "credit", "dunning_stage", "alerts"],
    as_of=DATE, policy_version=HASH, classification=CLASSIFICATION, score=null(INT), dunning_stage=INT,
    alerts=array(ALERT),
    credit=obj(["limit", "exposure", "available", "outstanding", "overdue", "reserved", "terms_days",
                "utilisation_pct"], limit=MONEY, exposure=MONEY, available=MONEY, outstanding=MONEY, overdue=MONEY,
               reserved=MONEY, terms_days=INT, utilisation_pct=PCT))]}

# ---------------------------------------------------------------------------------------- the trail
TRAIL_RECORD = obj(
    ["id", "kind", "subject", "seq", "actor", "request_id", "as_of", "policy_version", "outcome", "created_at",
     "hash", "prev_hash", "decision"],
    id=ID, kind={"type": "string", "enum": list(RECORD_KINDS)}, subject=TEXT, seq=INT, actor=TEXT,
    request_id=null(TEXT), as_of=DATE, policy_version=null(TEXT),
    outcome=null({"type": "string", "enum": list(RECORD_OUTCOMES)}), created_at=TIME, hash=HASH,
    prev_hash=null(TEXT), decision={"type": "object", "description": "the record's result: a decision stored with "
                                    "its reasons as data (format 2) rendered in the reader's locale, as format 1 "
                                    "read; any other result as stored (docs/decisions.md#reasons)"},
    facts={"type": "object", "description": "GET /v1/decisions/{id} only: what was evaluated"})
TRAIL_PAGE = all_of(decisions=array(ref("TrailRecord")), next_cursor=null(TEXT))
DIFF = all_of(path=TEXT, recorded={}, replayed={})
REPLAY = obj(["decision_id", "policy_version", "tampered", "identical"],
             decision_id=ID, policy_version=null(TEXT), tampered=BOOL, identical=BOOL, problem=TEXT,
             replay_error=TEXT, differences=array(TEXT), diff=array(DIFF), replayed={"type": "object"})

# ---------------------------------------------------------------------------------------- policies
POLICY_VERSION = obj(["version", "name", "text", "active", "created_at", "created_by"],
                     version=HASH, name=TEXT, text=TEXT, source=null(TEXT), active=BOOL, created_at=TIME,
                     created_by=TEXT, activated_at=null(TIME), activated_by=null(TEXT))
VALIDATION = all_of(valid={"type": "boolean", "enum": [True]}, version=HASH, rules=INT)
PUBLISHED = obj(["version", "name", "changed", "active"], version=HASH, name=TEXT, changed=BOOL, active=BOOL,
                optional={"pending": BOOL, "status": TEXT, "why": TEXT, "approval": ref("Approval"),
                          "scheduled": BOOL, "effective_from": DATE, "activation_id": null(INT)})
PUBLISHED["description"] = "201: stored and activated; 200: the same text as the active version; 202: a proposal"
BEFORE_AFTER = all_of(before=MONEY, after=MONEY)
SIMULATION = obj(
    ["decision_id", "summary", "customers"], decision_id=ID,
    summary=obj(["as_of", "active_version", "candidate_version", "currency", "customers", "customers_changed",
                 "changes", "errors", "totals"],
                as_of=DATE, active_version=HASH, candidate_version=HASH, currency=TEXT, customers=INT,
                customers_changed=INT, reservations=INT,
                changes={"type": "object", "additionalProperties": INT, "description": "customers changed per field"},
                errors=all_of(before=INT, after=INT),
                totals=obj(exposure=MONEY, interest=BEFORE_AFTER, limits=BEFORE_AFTER,
                           utilisation_pct=all_of(before=PCT, after=PCT))),
    customers=array(obj(["customer_id"], customer_id=TEXT)))

# ---------------------------------------------------------------------------------------- collections
ACTION = obj(
    ["id", "customer_id", "invoice_id", "type", "channel", "stage", "owner", "due_on", "status", "amount",
     "decision_id"],
    id=INT, customer_id=TEXT, invoice_id=null(TEXT), type=TEXT, channel=TEXT, stage=INT, owner=TEXT, due_on=DATE,
    status={"type": "string", "enum": ["open", "queued", "sent", "failed", "done", "closed", "cancelled"]},
    amount=null(MONEY),
    decision_id=null(TEXT), outcome=null(TEXT), note=null(TEXT), completed_at=null(TIME), completed_by=null(TEXT),
    delivery=null({"type": "object"}), record_id=ID)
ACTIONS_PAGE = all_of(actions=array(ref("Action")), next_cursor=null(TEXT))
DELIVERY = obj(
    ["id", "kind", "customer_id", "channel", "status", "attempts", "idempotency_key", "created_at"],
    id=INT, kind={"type": "string", "enum": ["action", "statement"]}, action_id=null(INT),
    statement_period=null(TEXT), customer_id=TEXT, channel=TEXT,
    status={"type": "string", "enum": ["queued", "sending", "sent", "failed", "dead"]}, attempts=INT,
    next_attempt_at=null(TIME), last_error_code=null(TEXT), last_error=null(TEXT), backend=null(TEXT),
    recipient=null(TEXT), document_hash=null(TEXT), provider_message_id=null(TEXT), idempotency_key=TEXT,
    created_at=TIME, updated_at=null(TIME), sent_at=null(TIME), decision_id=null(TEXT), requeued_at=null(TIME),
    requeues=INT)
OUTBOX_PAGE = all_of(deliveries=array(ref("Delivery")), next_cursor=null(TEXT),
                     counts={"type": "object", "additionalProperties": INT})
SWEEP = obj(
    ["id", "as_of", "status", "actor", "started_at", "finished_at", "customers", "partitions", "processed", "errors",
     "customers_by_stage", "actions_created", "error_list"],
    id=TEXT, as_of=DATE, status={"type": "string", "enum": ["running", "done"]}, actor=TEXT, started_at=TIME,
    finished_at=null(TIME), customers=INT, partitions=INT, processed=INT, errors=INT,
    customers_by_stage={"type": "object", "additionalProperties": INT}, actions_created=INT,
    error_list=array(all_of(customer_id=TEXT, error=TEXT)))
REVIEW_RUN = all_of(as_of=DATE, reviewed=INT, applied=INT, pending=INT, not_due=INT)
REVIEWS = all_of(pending=array(all_of(customer_id=TEXT, name=TEXT, approved_limit=null(MONEY),
                                      approved_terms_days=null(INT), proposed_limit=MONEY, proposed_terms_days=INT,
                                      decision_id=ID)))
REVIEW_APPROVED = all_of(customer_id=TEXT, decision_id=ID, proposal_decision_id=ID, approved_limit=MONEY,
                         approved_terms_days=INT)

# ---------------------------------------------------------------------------------------- reports
BUCKETS = {"type": "object", "additionalProperties": MONEY, "description": "open balance per aging bucket"}
AGING_ROW = obj(["buckets", "customers", "open_invoices", "outstanding", "overdue"], key=TEXT, buckets=BUCKETS,
                customers=INT, open_invoices=INT, outstanding=MONEY, overdue=MONEY, unapplied=MONEY)
def by_group(**figures) -> dict:
    """A report's rows per customer group (集团客户; `by=group`, the aging report always): every group by id,
    then key null (name and limit null) for the customers in no group when there are any."""
    return array(obj(["key", "name", "limit", *figures], key=null(TEXT), name=null(TEXT), limit=null(MONEY),
                     **figures))


AGING = obj(
    ["as_of", "currency", "policy_version", "buckets", "customers", "segments", "groups", "total"],
    as_of=DATE, currency=TEXT, policy_version=HASH, notes=TEXT,
    buckets=array(obj(["label"], label=TEXT, min_days=null(INT), max_days=null(INT))),
    customers=array(obj(["customer_id", "buckets", "outstanding", "overdue"], customer_id=TEXT, name=TEXT,
                        industry=TEXT, region=TEXT, amount_tier=TEXT, aging_bucket=TEXT, max_days_overdue=INT,
                        open_invoices=INT, buckets=BUCKETS, outstanding=MONEY, overdue=MONEY, unapplied=MONEY)),
    segments={"type": "object", "additionalProperties": array(AGING_ROW)}, total=AGING_ROW,
    groups=by_group(customers=INT, open_invoices=INT, outstanding=MONEY, overdue=MONEY, buckets=BUCKETS))
OPEN_INVOICE = obj(["invoice_id", "due_on", "days_overdue", "open_balance"], invoice_id=TEXT,
                   customer_id=TEXT, customer_name=TEXT, amount=MONEY, issued_on=DATE, due_on=DATE, days_overdue=INT,
                   open_balance=MONEY, aging_bucket=TEXT, disputed=BOOL, paused=null(PAUSE))
OVERDUE = obj(["as_of", "currency", "policy_version", "limit", "truncated", "invoices", "total"],
              as_of=DATE, currency=TEXT, policy_version=HASH, limit=INT, truncated=BOOL,
              invoices=array(OPEN_INVOICE), total=all_of(invoices=INT, open_balance=MONEY, paused=INT),
              optional={"groups": by_group(customers=INT, invoices=INT, open_balance=MONEY, paused=INT,
                                           max_days_overdue=INT)})
DSO = obj(["as_of", "days", "currency", "receivables", "credit_sales", "dso_days"],
          as_of=DATE, days=INT, currency=TEXT, receivables=MONEY, credit_sales=MONEY, credit_sales_invoices=INT,
          unapplied=MONEY, dso_days=null({"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$"}), formula=TEXT,
          definitions={"type": "object", "additionalProperties": TEXT}, window=all_of(**{"from": DATE, "to": DATE}),
          optional={"groups": by_group(customers=INT, receivables=MONEY, unapplied=MONEY, credit_sales=MONEY,
                                       credit_sales_invoices=INT,
                                       dso_days=null({"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$"}))})
COLLECTION_ROW = obj(["actions", "amount"], key=null(TEXT), actions=INT, amount=MONEY,
                     by_status={"type": "object", "additionalProperties": INT})
COLLECTIONS = obj(["since", "until", "currency", "rows", "by_type", "by_channel", "by_outcome", "total"],
                  since=DATE, until=DATE, currency=TEXT, date_field=TEXT, notes=TEXT,
                  rows=array(obj(["type", "channel", "status", "actions", "amount"], type=TEXT, channel=TEXT,
                                 status=TEXT, outcome=null(TEXT), actions=INT, amount=MONEY)),
                  by_type=array(COLLECTION_ROW), by_channel=array(COLLECTION_ROW), by_outcome=array(COLLECTION_ROW),
                  total=COLLECTION_ROW,
                  optional={"groups": by_group(customers=INT, actions=INT, amount=MONEY,
                                               by_status={"type": "object", "additionalProperties": INT})})
ACCRUALS = obj(["from", "to", "currency", "rows", "total", "totals"], **{"from": DATE, "to": DATE},
               currency=TEXT, customer=null(TEXT), notes=TEXT,
               rows=array(obj(["customer_id", "invoice_id", "amount"], customer_id=TEXT, invoice_id=TEXT,
                              accrued_on=DATE, day=DATE, amount=MONEY)),
               total=obj(["amount"], amount=MONEY, customers=INT, rows=INT),
               totals=array(obj(["customer_id", "amount"], customer_id=TEXT, amount=MONEY, rows=INT)),
               optional={"groups": by_group(customers=INT, rows=INT, invoices=INT, days=INT, amount=MONEY)})
STATEMENT = obj(
    ["customer", "currency", "from", "to", "opening_balance", "lines", "closing_balance", "open_invoices", "totals"],
    customer=obj(["id", "name"], id=TEXT, name=TEXT, industry=TEXT, region=TEXT), currency=TEXT,
    **{"from": DATE, "to": DATE}, opening_balance=MONEY, closing_balance=MONEY, formula=TEXT,
    lines=array(obj(["date", "type", "debit", "credit", "balance"], date=DATE,
                    type={"type": "string", "enum": ["invoice", "credit_note", "payment"]}, reference=TEXT,
                    invoice_id=null(TEXT), due_on=null(DATE), debit=MONEY, credit=MONEY, balance=MONEY)),
    open_invoices=array(OPEN_INVOICE),
    totals=all_of(invoices=MONEY, credit_notes=MONEY, payments=MONEY),
    reconciliation=obj(difference=MONEY, open_invoices_total=MONEY, rule=TEXT, unapplied=MONEY))

LEGAL_STATUS = {"type": "string", "enum": list(LEGAL_STATUSES)}
LEGAL_CASE = obj(
    ["id", "customer_id", "invoice_ids", "amount", "opened_on", "status", "status_label", "status_on", "closed_on",
     "open", "action_id", "decision_id", "history"],
    id=INT, customer_id=TEXT, invoice_ids=array(TEXT), amount=MONEY, opened_on=DATE, status=LEGAL_STATUS,
    status_label={"type": "string", "enum": list(LEGAL_STATUSES.values())}, status_on=DATE, closed_on=null(DATE),
    open=BOOL, action_id=null(INT), decision_id=TEXT,
    history=array(all_of(status=LEGAL_STATUS, at=TIME, actor=TEXT, reason=TEXT, note=null(TEXT), record_id=ID)),
    record_id=ID)
LEGAL_CASES_PAGE = all_of(legal_cases=array(ref("LegalCase")), next_cursor=null(TEXT))

HEALTH = obj(["status", "policy_version"], status={"type": "string", "enum": ["ok"]}, policy_version=HASH,
             outbox=all_of(oldest_queued_age_seconds=null({"type": "number"}), dead_letters=INT),
             policy_file={"type": "object", "description": "only when the service loads a policy file: how the "
                                                             "last load went (valid, version, code, errors, file)"})

COMPONENTS = {"Decision": DECISION, "CreditFile": CREDIT_FILE, "TrailRecord": TRAIL_RECORD, "Action": ACTION,
              "Delivery": DELIVERY, "LegalCase": LEGAL_CASE}
