"""Customers' credit files: create or replace one, read one with its current figures."""

from __future__ import annotations

import datetime as dt

from marshmallow import ValidationError
from sqlalchemy import func, select

from engine.evaluator import evaluate_loaded
from engine.facts import CustomerSchema

from ..errors import DomainError, invalid, marshmallow_errors, not_found
from ..store import trail
from ..store.ledger import customer_dict, load_cases
from ..store.policy_store import with_retry
from ..store.tables import Customer, DecisionRecord
from . import customer_list
from .validation import canonical, check_categories, check_dates, check_lengths, money_minor

_FILE_FIELDS = (
    "name",
    "type",
    "industry",
    "region",
    "size",
    "since",
    "credit_score",
    "external_rating",
    "collector",
    "last_reviewed_on",
    "arrears_reason",
    "deal_type",
    "tags",
    "approved_terms_days",
)


def load_customer(payload: dict, prefix: str = "", today: dt.date | None = None) -> dict:
    """A credit file as written; with `today`, a customer `since` after it is refused (not yet a customer)."""
    try:
        loaded = CustomerSchema().load(payload)
    except ValidationError as exc:
        raise invalid(marshmallow_errors(exc.messages, prefix.rstrip("."))) from None
    check_lengths(loaded, prefix)
    check_dates(loaded, prefix.rstrip("."))
    if today is not None and loaded["since"] > today:
        raise invalid({f"{prefix}since": [f"must not be after today ({today.isoformat()})"]})
    return loaded


def set_fields(c: Customer, loaded: dict, policy, prefix: str = "") -> None:
    for key in _FILE_FIELDS:
        setattr(c, key, loaded[key])
    c.approved_limit_minor = (
        None
        if loaded["approved_limit"] is None
        else money_minor(loaded["approved_limit"], policy.exponent, f"{prefix}approved_limit")
    )


# Separation of duties: the credit file's fields a decision reads are the credit department's. Roles outside
# DECIDING_ROLES (back office) send them unchanged (a PUT replaces the whole file) or not at all; the segment
# attributes a new file is opened with are its identity, the rest only a controller sets (docs/governance.md).
DECIDING_ROLES = ("controller", "admin")
SEGMENT_FIELDS = ("type", "industry", "region", "size", "deal_type", "since")
DECISION_FIELDS = {
    "credit_score": "a controller's manual assessment (信用评分)",
    "approved_limit": "PUT /v1/customers/{id}/limit-grant or a credit review (POST /v1/reviews)",
    "approved_terms_days": "a credit review (POST /v1/reviews)",
    "arrears_reason": "the arrears_reason_recorded event",
    **{f: "a controller (a segment attribute: it selects the segment strategy)" for f in SEGMENT_FIELDS},
}


def _stored(c: Customer, field: str):
    return c.approved_limit_minor if field == "approved_limit" else getattr(c, field)


def _written(loaded: dict, field: str, policy, prefix: str):
    if field == "approved_limit":
        value = loaded["approved_limit"]
        return None if value is None else money_minor(value, policy.exponent, f"{prefix}approved_limit")
    return loaded[field]


def decision_changes(c: Customer | None, loaded: dict, policy, prefix: str = "") -> dict:
    """{field: (before, after)} of the decision fields `loaded` changes (c None: a new file)."""
    out = {}
    for field in DECISION_FIELDS:
        before = None if c is None else _stored(c, field)
        after = _written(loaded, field, policy, prefix)
        if before != after:
            out[field] = (before, after)
    return out


def guard_decision_fields(role: str | None, created: bool, changes: dict, prefix: str = "") -> None:
    """403 E_DECISION_FIELD naming each decision field a non-deciding role would change (role None: the
    operator's CLI). A new file's segment attributes are its identity: anyone who may open a file sets them."""
    if role is None or role in DECIDING_ROLES:
        return
    refused = [f for f in changes if not (created and f in SEGMENT_FIELDS)]
    if refused:
        raise DomainError(
            "E_DECISION_FIELD",
            f"role '{role}' may not change {', '.join(refused)}: decision fields of the credit file are changed "
            f"only through their governed operation or by a controller; back office keeps identity and contact data",
            {
                f"{prefix}{f}": [f"a decision field: changed by {DECISION_FIELDS[f]}, not by role '{role}'"]
                for f in refused
            },
        )


def _jsonable(field: str, value, policy):
    if value is None:
        return None
    if field == "approved_limit":
        from rules.money import minor_str

        return minor_str(value, policy.exponent)
    return value.isoformat() if isinstance(value, dt.date) else value


def record_decision_changes(
    ctx,
    s,
    c: Customer,
    changes: dict,
    created: bool,
    policy,
    *,
    actor: str,
    request_id: str,
    reason: str,
    as_of: dt.date | None = None,
) -> DecisionRecord | None:
    """A controller's change of an existing file's decision fields: a record in the customer's chain with
    before/after, actor and reason (as_of: today, or an import's). Opening a file is no change: nothing was
    decided on it before, and its first decision's facts carry every field it was opened with."""
    if created or not changes:
        return None
    body = {
        "reason": reason,
        "created": created,
        "changes": {
            f: {"before": _jsonable(f, b, policy), "after": _jsonable(f, a, policy)}
            for f, (b, a) in sorted(changes.items())
        },
    }
    return trail.append(
        s,
        subject=c.id,
        kind="credit_file_change",
        actor=actor,
        request_id=request_id,
        as_of=as_of or ctx.today(),
        facts=canonical(body),
        policy_version=policy.version,
        result=canonical(body),
        outcome="changed",
        created_at=ctx.clock(),
    )


def put_customer(
    ctx,
    customer_id: str,
    data: dict,
    *,
    role: str | None = None,
    actor: str = "-",
    request_id: str = "-",
    reason: str | None = None,
) -> tuple[bool, dict]:
    loaded = load_customer(dict(data, id=customer_id), today=ctx.today())
    with ctx.tx() as s:
        policy = ctx.registry.active(s)
        check_categories(policy, loaded, "")
        c = s.execute(select(Customer).where(Customer.id == customer_id).with_for_update()).scalar_one_or_none()
        created = c is None
        changes = decision_changes(c, loaded, policy)
        guard_decision_fields(role, created, changes)  # refused before anything is written
        reason = (reason or "").strip()
        if not reason:
            if not created and changes:
                raise invalid(
                    {"reason": [f"a reason is required to change decision fields ({', '.join(changes)}): ?reason=…"]}
                )
            reason = "credit file opened"
        if created:
            c = Customer(id=customer_id)
            s.add(c)
        set_fields(c, loaded, policy)
        c.updated_at = ctx.clock()
        s.flush()
        rec = record_decision_changes(
            ctx, s, c, changes, created, policy, actor=actor, request_id=request_id, reason=reason
        )
        out = customer_dict(c)
        if rec is not None:
            out["decision_id"] = rec.id
        return created, out


def get_customer(ctx, customer_id: str, as_of: dt.date | None = None) -> dict:
    as_of = as_of or ctx.today()
    with ctx.read_tx() as s:
        c = s.get(Customer, customer_id)
        if c is None:
            raise not_found("customer", customer_id)
        policy = ctx.registry.active(s, as_of)
        case = load_cases(s, [c], policy.exponent, as_of)[c.id].typed
        d = with_retry(lambda: evaluate_loaded(ctx.registry.active(s, as_of), case, as_of)).data
        return {
            **customer_dict(c),
            "as_of": as_of.isoformat(),
            "policy_version": d["policy_version"],
            "classification": d["classification"],
            "score": d["score"]["value"],
            "credit": {
                k: d["credit"][k]
                for k in (
                    "limit",
                    "terms_days",
                    "exposure",
                    "available",
                    "outstanding",
                    "overdue",
                    "reserved",
                    "utilisation_pct",
                )
            },
            "dunning_stage": d["dunning"]["stage"],
            "alerts": d["alerts"],
        }


def counts(ctx) -> dict:
    with ctx.read_tx() as s:
        return {
            "decisions": s.execute(select(func.count()).select_from(DecisionRecord)).scalar_one(),
            "customers": s.execute(select(func.count()).select_from(Customer)).scalar_one(),
        }


LIST_LIMIT_MAX = 200
LIST_PARAMS = ("q", "limit", "cursor", "sort", "dir", *customer_list.FILTERS)


def list_customers(ctx, args: dict, limit: int = 50) -> dict:
    """Credit files matching search and filters (api/service/customer_list.py), `limit` at a time, each with
    the last recorded decision's classification; `next_cursor` continues the list, None on the last page."""
    with ctx.read_tx() as s:
        f = customer_list.validate(ctx.registry.active(s), args)
    got = customer_list.search(ctx, f, limit=limit)
    return {
        "customers": [
            {**customer_dict(c), **customer_list.summary_dict(c, held, got["exponent"])} for c, held in got["rows"]
        ],
        "next_cursor": got["next_cursor"],
    }
