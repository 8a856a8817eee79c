"""Customers' credit files: create or replace one, read one with its current figures."""
from __future__ import annotations

import datetime as dt

from marshmallow import ValidationError
from sqlalchemy import func, or_, select

from engine.evaluator import evaluate_loaded
from engine.facts import CustomerSchema

from ..errors import invalid, marshmallow_errors, not_found
from ..store.ledger import customer_dict, load_cases
from ..store.policy_store import with_retry
from ..store.tables import Customer, DecisionRecord
from .validation import check_categories, check_dates, check_lengths, money_minor

_FILE_FIELDS = ("name", "type", "industry", "region", "size", "since", "credit_score", "external_rating",
                "collector", "last_reviewed_on", "arrears_reason", "deal_type", "tags", "approved_terms_days")


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
    c.approved_limit_minor = (None if loaded["approved_limit"] is None
                              else money_minor(loaded["approved_limit"], policy.exponent, f"{prefix}approved_limit"))


def put_customer(ctx, customer_id: str, data: dict) -> tuple[bool, dict]:
    loaded = load_customer(dict(data, id=customer_id), today=ctx.today())
    with ctx.tx() as s:
        policy = ctx.registry.active(s)
        check_categories(policy, loaded, "")
        c = s.execute(select(Customer).where(Customer.id == customer_id).with_for_update()).scalar_one_or_none()
        created = c is None
        if created:
            c = Customer(id=customer_id)
            s.add(c)
        set_fields(c, loaded, policy)
        c.updated_at = ctx.clock()
        return created, customer_dict(c)


def get_customer(ctx, customer_id: str, as_of: dt.date | None = None) -> dict:
    as_of = as_of or ctx.today()
    with ctx.read_tx() as s:
        c = s.get(Customer, customer_id)
        if c is None:
            raise not_found("customer", customer_id)
        policy = ctx.registry.active(s, as_of)
        case = load_cases(s, [c], policy.exponent, as_of)[c.id].typed
        d = with_retry(lambda: evaluate_loaded(ctx.registry.active(s, as_of), case, as_of)).data
        return {**customer_dict(c), "as_of": as_of.isoformat(), "policy_version": d["policy_version"],
                "classification": d["classification"], "score": d["score"]["value"],
                "credit": {k: d["credit"][k] for k in ("limit", "terms_days", "exposure", "available",
                                                        "outstanding", "overdue", "reserved", "utilisation_pct")},
                "dunning_stage": d["dunning"]["stage"], "alerts": d["alerts"]}


def counts(ctx) -> dict:
    with ctx.read_tx() as s:
        return {"decisions": s.execute(select(func.count()).select_from(DecisionRecord)).scalar_one(),
                "customers": s.execute(select(func.count()).select_from(Customer)).scalar_one()}


LIST_LIMIT_MAX = 200


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_customers(ctx, *, q: str | None = None, limit: int = 50, cursor: str | None = None) -> dict:
    """Credit files ordered by id (a stable order), `limit` at a time; `q` matches the id exactly or as a
    prefix, or any part of the name (case-insensitive; Chinese as typed). `next_cursor` (the last id of
    the page) continues the list, None on the last page."""
    query = select(Customer).order_by(Customer.id).limit(limit + 1)
    if q:
        query = query.where(or_(Customer.id == q, Customer.id.like(_like(q)[1:], escape="\\"),
                                Customer.name.ilike(_like(q), escape="\\")))
    if cursor:
        query = query.where(Customer.id > cursor)
    with ctx.read_tx() as s:
        rows = s.execute(query).scalars().all()
        page = [customer_dict(c) for c in rows[:limit]]
    return {"customers": page, "next_cursor": page[-1]["id"] if len(rows) > limit else None}
