"""Database tables (SQLAlchemy 2.x). Money is stored as integer minor units, never float."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    type: Mapped[str] = mapped_column(String(64))
    industry: Mapped[str] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(64))
    size: Mapped[str] = mapped_column(String(64))
    since: Mapped[dt.date] = mapped_column(Date)
    credit_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    external_rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    collector: Mapped[str | None] = mapped_column(String(128), nullable=True)
    last_reviewed_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    arrears_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    deal_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    # limit and terms in force by approval; a periodic review proposes, decreases apply at once
    approved_limit_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    approved_terms_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    proposed_limit_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    proposed_terms_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    proposal_decision_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # what the last evaluation saw, for alerts on change (bucket worsened, score drop)
    last_as_of: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    last_bucket: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # the rest of the last decision's classification (migration 0020): what the customer list filters and
    # sorts on; written with last_* by every decision writer (api/service/decide.py)
    last_tier: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_reputation: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_stage: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_outstanding_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_segments: Mapped[list | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)
    __table_args__ = (Index("ix_customers_name", "name", "id"), Index("ix_customers_last_bucket", "last_bucket", "id"),
                      Index("ix_customers_collector", "collector", "id"),
                      Index("ix_customers_last_tier", "last_tier", "id"),
                      Index("ix_customers_last_reputation", "last_reputation", "id"),
                      Index("ix_customers_last_stage", "last_stage", "id"),
                      Index("ix_customers_last_outstanding", "last_outstanding_minor", "id"))


class CustomerSegment(Base):
    """The segments of a customer's last decision, one row each: the list's segment filter is an index range."""
    __tablename__ = "customer_segments"
    segment: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    __table_args__ = (Index("ix_customer_segments_customer", "customer_id"),)


class Invoice(Base):
    __tablename__ = "invoices"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    issued_on: Mapped[dt.date] = mapped_column(Date)
    due_on: Mapped[dt.date] = mapped_column(Date)
    order_id: Mapped[str | None] = mapped_column(String(128), nullable=True)


class Payment(Base):
    __tablename__ = "payments"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    paid_on: Mapped[dt.date] = mapped_column(Date)


class CreditNote(Base):
    __tablename__ = "credit_notes"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_id: Mapped[str] = mapped_column(String(128))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    issued_on: Mapped[dt.date] = mapped_column(Date)


class Promise(Base):
    __tablename__ = "promises"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    made_on: Mapped[dt.date] = mapped_column(Date)
    promised_on: Mapped[dt.date] = mapped_column(Date)


class Dispute(Base):
    __tablename__ = "disputes"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_id: Mapped[str] = mapped_column(String(128))
    opened_on: Mapped[dt.date] = mapped_column(Date)
    resolved_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")


class InstalmentPlan(Base):
    __tablename__ = "instalment_plans"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    agreed_on: Mapped[dt.date] = mapped_column(Date)
    invoice_ids: Mapped[list] = mapped_column(JSON)
    instalments: Mapped[list] = mapped_column(JSON)      # [{"due_on": iso, "amount_minor": int}]


class Reservation(Base):
    """Credit held for an approved order until it is invoiced, released or expires."""
    __tablename__ = "reservations"
    order_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))      # held → invoiced / released / expired, one way
    expires_on: Mapped[dt.date] = mapped_column(Date)
    decision_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)          # the key that holds it
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)    # of the holding request


class PolicyVersion(Base):
    __tablename__ = "policy_versions"
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    created_by: Mapped[str] = mapped_column(String(128))


class PolicyState(Base):
    """Single row (id=1): which version is live. Workers compare it on each request."""
    __tablename__ = "policy_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    active_version: Mapped[str] = mapped_column(ForeignKey("policy_versions.version"))
    activated_at: Mapped[dt.datetime] = mapped_column(DateTime)
    activated_by: Mapped[str] = mapped_column(String(128))
    file_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # bumped by every change of policy_activations: a worker reloads its copy of the timeline only then
    timeline_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class PolicyActivation(Base):
    """The timeline of effective dates: version V is in force from `effective_from` (a date) until the next
    activation's. A future `effective_from` is scheduled (cancellable until that day); the state row follows
    the version in force today (`activated_at`: when it came into force, once)."""
    __tablename__ = "policy_activations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(ForeignKey("policy_versions.version"))
    effective_from: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    created_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(1000), default="")
    decision_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    activated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    cancelled_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)


class DecisionRecord(Base):
    """The trail. Each subject (customer) has its own hash chain: seq 1, 2, … with
    hash = sha256(prev_hash + canonical record); chain_heads holds the tip."""
    __tablename__ = "decisions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(160))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    request_id: Mapped[str] = mapped_column(String(64))
    as_of: Mapped[dt.date] = mapped_column(Date)
    facts: Mapped[str] = mapped_column(Text)             # canonical JSON of the evaluated case + order
    policy_version: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(Text)            # canonical decision JSON
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    __table_args__ = (UniqueConstraint("subject", "seq", name="uq_decisions_subject_seq"),
                      Index("ix_decisions_created", "created_at", "id"),
                      Index("ix_decisions_subject_kind", "subject", "kind"))


class ChainHead(Base):
    __tablename__ = "chain_heads"
    subject: Mapped[str] = mapped_column(String(160), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class Action(Base):
    """A collection task (or automated message in the outbox), created once per
    invoice / type / stage / due date."""
    __tablename__ = "actions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(160))
    stage: Mapped[int] = mapped_column(Integer)
    due_on: Mapped[dt.date] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="open")   # open, done, cancelled
    outcome: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    completed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decision_id: Mapped[str] = mapped_column(String(64))
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)   # the notifier has it
    __table_args__ = (UniqueConstraint("customer_id", "invoice_id", "type", "stage", "due_on",
                                       name="uq_actions_once"),
                      # the outbox's enqueue and /healthz's oldest waiting action read the queued ones by status
                      Index("ix_actions_status_due", "status", "due_on"))


class LegalCase(Base):
    """A legal case (法律诉讼案件) a litigation referral opened: the overdue invoices it claims, the amount at
    opening, and its one-way status (api/service/legal_cases.py). At most one open per customer."""
    __tablename__ = "legal_cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_ids: Mapped[list] = mapped_column(JSON)
    amount_minor: Mapped[int] = mapped_column(BigInteger)              # the claim at opening (诉讼标的)
    opened_on: Mapped[dt.date] = mapped_column(Date)
    action_id: Mapped[int | None] = mapped_column(Integer, nullable=True)   # the litigation referral
    decision_id: Mapped[str] = mapped_column(String(64))               # the decision that created the referral
    status: Mapped[str] = mapped_column(String(16))
    status_on: Mapped[dt.date] = mapped_column(Date)
    closed_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    history: Mapped[list] = mapped_column(JSON)                        # [{status, at, actor, reason, note, record_id}]
    # one open case per customer (closed_on NULL): a second referral while one is open opens nothing
    __table_args__ = (Index("uq_legal_cases_open", "customer_id", unique=True,
                            sqlite_where=text("closed_on IS NULL"),
                            postgresql_where=text("closed_on IS NULL")),)


class ProcessedEvent(Base):
    __tablename__ = "events"
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    body_hash: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(128))
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    # who holds the key and the level of the policy's authority matrix it may release at (docs/governance.md)
    person: Mapped[str | None] = mapped_column(String(128), nullable=True)
    authority: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # revocation and rotation (api/service/keys.py): a rotated key's old hash works until previous_until
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    rotated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    previous_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    previous_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    __table_args__ = (Index("ix_api_keys_previous_hash", "previous_hash", unique=True),)


class DunningState(Base):
    """Where each customer's collection workflow stands; every ledger evaluation reads and
    updates it, so stages advance one at a time and cadences count from the stage's start."""
    __tablename__ = "dunning_states"
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    stage: Mapped[int] = mapped_column(Integer)
    entered_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    as_of: Mapped[dt.date] = mapped_column(Date)                            # the sweep day that set it
    # the state before that day's step: evaluations on the same day start from it, so a day
    # advances a customer at most one stage however often it is evaluated
    prev_stage: Mapped[int] = mapped_column(Integer, default=0)
    prev_entered_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)


class SweepRun(Base):
    __tablename__ = "sweep_runs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)          # "<as_of>.<n>"
    as_of: Mapped[dt.date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(16))                        # running, done
    actor: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    customers: Mapped[int] = mapped_column(Integer, default=0)
    partitions: Mapped[int] = mapped_column(Integer, default=0)


class SweepPartition(Base):
    """A range of customer ids that one sweep worker claims at a time."""
    __tablename__ = "sweep_partitions"
    run_id: Mapped[str] = mapped_column(ForeignKey("sweep_runs.id"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_customer: Mapped[str] = mapped_column(String(128))
    last_customer: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))                        # pending, claimed, done
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    heartbeat: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class SweepItem(Base):
    """One customer processed by a run: written in the customer's own transaction, so a
    crashed run resumes exactly where it stopped."""
    __tablename__ = "sweep_items"
    run_id: Mapped[str] = mapped_column(ForeignKey("sweep_runs.id"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))                       # done, error
    stage: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actions: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class SchedulerLock(Base):
    """Single row: which scheduler process holds the right to run jobs (heartbeat lease)."""
    __tablename__ = "scheduler_lock"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    heartbeat: Mapped[dt.datetime] = mapped_column(DateTime)


class JobRun(Base):
    """Every scheduled (or manual) job run: started, finished, outcome, counts."""
    __tablename__ = "job_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))            # running, ok, failed
    detail: Mapped[str] = mapped_column(Text, default="")


class InterestAccrual(Base):
    """The late-interest ledger (逾期罚息): one row per invoice per day the accrual job charged it
    (api/jobs/accrual.py). Rows are never changed; a day is accrued once (uq_interest_accruals_once, which
    is also the (customer, invoice, accrued_on) index the job and the report read through)."""
    __tablename__ = "interest_accruals"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    invoice_id: Mapped[str] = mapped_column(String(128))
    accrued_on: Mapped[dt.date] = mapped_column(Date)
    days: Mapped[int] = mapped_column(Integer)                     # chargeable days this row accrues
    chargeable_days: Mapped[int] = mapped_column(Integer)          # the invoice's total at accrued_on
    base_minor: Mapped[int] = mapped_column(BigInteger)            # open balance the row accrued on
    fee_minor: Mapped[int] = mapped_column(BigInteger)             # fixed fee: on the first row only
    amount_minor: Mapped[int] = mapped_column(BigInteger)          # interest (capped) + fee_minor
    cumulative_minor: Mapped[int] = mapped_column(BigInteger)      # the invoice's rows up to this one
    policy_version: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    __table_args__ = (UniqueConstraint("customer_id", "invoice_id", "accrued_on", name="uq_interest_accruals_once"),
                      Index("ix_interest_accruals_accrued_on", "accrued_on"))


class Contact(Base):
    """A person to reach at a customer (personal data: masked for roles that don't need it)."""
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("customer_id", "name", name="uq_contacts_customer_name"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str | None] = mapped_column(String(128), nullable=True)
    email: Mapped[str | None] = mapped_column(String(256), nullable=True)
    mobile: Mapped[str | None] = mapped_column(String(64), nullable=True)
    address: Mapped[str | None] = mapped_column(Text, nullable=True)
    preferred_channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)


class ImportRun(Base):
    """One import of files: what it read (names, hashes, kinds, rows), what it wrote, what it refused."""
    __tablename__ = "imports"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))          # running, done, rejected
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    as_of: Mapped[dt.date] = mapped_column(Date)
    files: Mapped[list] = mapped_column(JSON, default=list)
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    errors: Mapped[list] = mapped_column(JSON, default=list)  # the first MAX_ERRORS, formatted
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    decisions: Mapped[int] = mapped_column(Integer, default=0)


class User(Base):
    """A console user (api/console/): signs in with a password, acts with its role's permissions
    (api/service/auth.py PERMISSIONS) under its own name in the trail."""
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(256))          # argon2id, salted (argon2-cffi)
    locale: Mapped[str] = mapped_column(String(16), default="zh_CN")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    authority: Mapped[str | None] = mapped_column(String(32), nullable=True)   # rules/authority.py level (0014)


class DbMark(Base):
    """Facts about the database itself, e.g. `demo`: created by `serve --demo` (demo keys allowed)."""
    __tablename__ = "db_marks"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


class CreditOrder(Base):
    """Where each checked order stands (GET /v1/credit-checks/{order_id}): approved, referred, released,
    rejected or expired; written by every credit check and every referral step (api/service/referrals.py)."""
    __tablename__ = "credit_orders"
    order_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    requested_by: Mapped[str] = mapped_column(String(128))
    decision_id: Mapped[str] = mapped_column(String(64))          # the last trail record about the order
    referral_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)
    # the answer of the credit check that held or referred the order, and that request's hash: its retry
    # gets the answer back while decision_id is still that check's (api/service/credit_checks.py)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)


class Referral(Base):
    """A credit check that came out `refer`, waiting for a controller (release, reject, recheck) or expiry.
    The figures are the ones the check saw; with reserve the order's reservation is `provisional` meanwhile."""
    __tablename__ = "referrals"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(128), index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))               # open, released, rejected, expired
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    limit_minor: Mapped[int] = mapped_column(BigInteger)
    exposure_minor: Mapped[int] = mapped_column(BigInteger)
    over_limit_minor: Mapped[int] = mapped_column(BigInteger)     # exposure after the order - limit, ≥ 0
    reasons: Mapped[list] = mapped_column(JSON)
    reserve: Mapped[bool] = mapped_column(Boolean)
    requested_by: Mapped[str] = mapped_column(String(128))
    opened_on: Mapped[dt.date] = mapped_column(Date)
    expires_on: Mapped[dt.date] = mapped_column(Date)
    decision_id: Mapped[str] = mapped_column(String(64))          # the credit check that referred
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    close_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    conditions: Mapped[list | None] = mapped_column(JSON, nullable=True)
    close_decision_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (Index("ix_referrals_status_created", "status", "created_at", "id"),)


class CreditHold(Base):
    """停止赊销: a customer on credit hold; every credit check rejects with the reason while it is in force
    (placed_on ≤ as_of ≤ until). One row per customer; lifting deletes it (its history is in the trail)."""
    __tablename__ = "credit_holds"
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    placed_on: Mapped[dt.date] = mapped_column(Date)
    until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)       # the last day; None: until lifted
    placed_by: Mapped[str] = mapped_column(String(128))
    placed_at: Mapped[dt.datetime] = mapped_column(DateTime)
    decision_id: Mapped[str] = mapped_column(String(64))


class SweepFigures(Base):
    """A sweep group's share of the book figures (api/reports/figures.py), written in the group's own
    transaction, so a resumed run counts every customer once; summed into a BookSnapshot when the run ends."""
    __tablename__ = "sweep_figures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64))
    sums: Mapped[dict] = mapped_column(JSON)
    __table_args__ = (Index("ix_sweep_figures_run", "run_id"),)


class BookSnapshot(Base):
    """The overview's book figures (receivables, overdue, aging by tier, credit sales) as of a day, under a
    policy version, written at the end of a sweep: the console reads them instead of a pass over the book."""
    __tablename__ = "book_snapshots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    policy_version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(128))                 # e.g. "sweep 2026-12-15.1"
    computed_at: Mapped[dt.datetime] = mapped_column(DateTime)
    customers: Mapped[int] = mapped_column(Integer)                  # customers the figures count
    figures: Mapped[dict] = mapped_column(JSON)
    __table_args__ = (Index("ix_book_snapshots_as_of", "as_of", "id"),)


class Delivery(Base):
    """The outbox: one message per automated action, or per customer and month for a statement of account
    (action_id None, statement_period 'YYYY-MM'; api/jobs/outbox.py). status queued → sending → sent, or
    failed (retried at next_attempt_at) → … → dead (a person looks at it, and may requeue it). A worker claims a row with a
    conditional UPDATE (status and next attempt still as it read them), so two workers never send it twice;
    a `sending` row whose worker went silent past its lease is claimed again (same idempotency key)."""
    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("actions.id"), unique=True, nullable=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    statement_period: Mapped[str | None] = mapped_column(String(7), nullable=True)    # a statement's month
    channel: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))          # queued, sending, sent, failed, dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    backend: Mapped[str | None] = mapped_column(String(16), nullable=True)
    recipient: Mapped[str | None] = mapped_column(String(256), nullable=True)        # masked
    document_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    decision_id: Mapped[str | None] = mapped_column(String(64), nullable=True)       # its trail record
    # a requeued dead letter: the retry limit counts the attempts since (attempts itself never goes down)
    attempt_base: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    requeued_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    requeues: Mapped[int] = mapped_column(Integer, default=0, server_default="0")   # times it was dead before
    __table_args__ = (Index("ix_deliveries_status_next", "status", "next_attempt_at"),
                      UniqueConstraint("customer_id", "statement_period", name="uq_deliveries_statement"))


class LimitGrant(Base):
    """A limit a controller granted in place of the policy's (above or below it), with a reason and optionally a
    last day (`until`); past it the policy's limit applies again. One row per customer; revoking deletes it (its
    history is in the trail). api/service/grants.py."""
    __tablename__ = "limit_grants"
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    limit_minor: Mapped[int] = mapped_column(BigInteger)
    policy_limit_minor: Mapped[int] = mapped_column(BigInteger)   # the policy's limit when granted
    until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[str] = mapped_column(String(128))
    person: Mapped[str | None] = mapped_column(String(128), nullable=True)
    authority: Mapped[str | None] = mapped_column(String(32), nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)   # the second pair of eyes
    granted_at: Mapped[dt.datetime] = mapped_column(DateTime)
    decision_id: Mapped[str] = mapped_column(String(64))


class Approval(Base):
    """Four-eyes (api/service/approvals.py): a change one person requested that a different person approves or
    rejects (pending → approved / rejected): a limit grant above the policy's threshold, a policy publish."""
    __tablename__ = "approvals"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))                  # limit_grant, policy_publish
    subject: Mapped[str] = mapped_column(String(160))              # the trail chain: a customer, policy:<version>
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))                # pending, approved, rejected
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_person: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime)
    request_decision_id: Mapped[str] = mapped_column(String(64))
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_person: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    decision_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (Index("ix_approvals_status_requested", "status", "requested_at", "id"),)


class CustomerGroup(Base):
    """集团客户: a parent company's group of customers with a group limit; a credit check of a member tests the
    customer's limit and the group's (api/service/groups.py)."""
    __tablename__ = "customer_groups"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    limit_minor: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)
    updated_by: Mapped[str] = mapped_column(String(128))
    decision_id: Mapped[str] = mapped_column(String(64))


class GroupHold(Base):
    """停止赊销 of a whole group: every member's credit check rejects with the reason while it is in force
    (placed_on ≤ as_of ≤ until), members joining later included. One row per group; lifting deletes it."""
    __tablename__ = "group_holds"
    group_id: Mapped[str] = mapped_column(ForeignKey("customer_groups.id"), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    placed_on: Mapped[dt.date] = mapped_column(Date)
    until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)       # the last day; None: until lifted
    placed_by: Mapped[str] = mapped_column(String(128))
    placed_at: Mapped[dt.datetime] = mapped_column(DateTime)
    decision_id: Mapped[str] = mapped_column(String(64))


class GroupMember(Base):
    """A customer's group (at most one)."""
    __tablename__ = "group_members"
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("customer_groups.id"), index=True)
