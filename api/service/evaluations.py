"""Evaluate a stored customer (recorded, with its actions) or a case sent whole (stateless)."""
from __future__ import annotations

import datetime as dt

from marshmallow import ValidationError

from engine.errors import EngineFailure
from engine.evaluator import evaluate
from engine.facts import CaseSchema

from ..errors import engine_failed, invalid
from ..store import trail
from ..store.policy_store import with_retry
from .decide import decide, lock_customer
from .validation import canonical, check_dates


def evaluate_customer(ctx, customer_id, as_of, actor, request_id, locale="en") -> dict:
    as_of = as_of or ctx.today()
    with ctx.tx() as s:
        c = lock_customer(s, customer_id)
        rec, decision = decide(ctx, s, c, as_of, kind="evaluate", actor=actor, request_id=request_id)
        return {"decision_id": rec.id, "decision": decision.render(locale)}


def evaluate_stateless(ctx, body: dict, actor, request_id, locale="en") -> dict:
    body = dict(body)
    as_of_raw = body.pop("as_of", None)
    order = body.pop("order_amount", None)
    try:
        as_of = dt.date.fromisoformat(as_of_raw) if as_of_raw else ctx.today()
    except (TypeError, ValueError):
        raise invalid({"as_of": [f"'{as_of_raw}' is not an ISO date"]}) from None
    check_dates(as_of, "as_of")
    try:
        check_dates(CaseSchema().load(body))
    except ValidationError:
        pass                                 # evaluate() reports every problem of the case
    with ctx.tx() as s:
        def run():
            policy = ctx.registry.active(s, as_of)
            return policy, evaluate(policy, body, as_of, order=order)
        try:
            policy, decision = with_retry(run)
        except EngineFailure as exc:
            raise engine_failed(exc) from None
        subject = f"stateless:{body['customer']['id']}"
        rec = trail.append(s, subject=subject, kind="evaluate_stateless", actor=actor, request_id=request_id,
                           as_of=as_of, facts=canonical({"case": body, "as_of": as_of, "order": order}),
                           policy_version=policy.version, result=decision.stored, outcome=decision.outcome,
                           created_at=ctx.clock())
        return {"decision_id": rec.id, "decision": decision.render(locale)}
