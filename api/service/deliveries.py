"""The outbox seen from outside (api/jobs/outbox.py sends it): the listing controllers watch, the counters and
gauges /metrics and /healthz expose (read from the database, so they count every worker process's sends),
and the requeue of a dead letter."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update

from engine.decision import canonical_json

from ..errors import conflict, not_found
from ..store import trail
from ..store.tables import Action, Delivery

STATUSES = ("queued", "sending", "sent", "failed", "dead")
PENDING = ("queued", "sending", "failed")  # not sent yet, not given up on
MAX_DELIVERY_ID = 2**63 - 1


def _iso(value):
    return value.isoformat() + "Z" if value is not None else None


def delivery_view(d: Delivery) -> dict:
    return {
        "id": d.id,
        "kind": "action" if d.action_id is not None else "statement",
        "action_id": d.action_id,
        "statement_period": d.statement_period,
        "customer_id": d.customer_id,
        "channel": d.channel,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": _iso(d.next_attempt_at),
        "last_error_code": d.last_error_code,
        "last_error": d.last_error,
        "backend": d.backend,
        "recipient": d.recipient,
        "document_hash": d.document_hash,
        "provider_message_id": d.provider_message_id,
        "idempotency_key": d.idempotency_key,
        "created_at": _iso(d.created_at),
        "updated_at": _iso(d.updated_at),
        "sent_at": _iso(d.sent_at),
        "decision_id": d.decision_id,
        "requeued_at": _iso(d.requeued_at),
        "requeues": d.requeues,
    }


def list_deliveries(ctx, *, status=None, customer=None, action=None, cursor=None, limit=100):
    """(deliveries, next cursor), oldest first; `recipient` is masked as stored."""
    with ctx.read_tx() as s:
        q = select(Delivery)
        if status:
            q = q.where(Delivery.status == status)
        if customer:
            q = q.where(Delivery.customer_id == customer)
        if action:
            q = q.where(Delivery.action_id == action)
        if cursor:
            q = q.where(Delivery.id > int(cursor))
        rows = s.execute(q.order_by(Delivery.id).limit(limit + 1)).scalars().all()
        more = len(rows) > limit
        rows = rows[:limit]
        counts = dict(s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
    return {
        "deliveries": [delivery_view(d) for d in rows],
        "counts": {st: counts.get(st, 0) for st in STATUSES},
        "next_cursor": str(rows[-1].id) if more and rows else None,
    }


def counters(ctx) -> dict:
    """Messages by status, and the failed attempts so far (every attempt of a message that did not send it)."""
    with ctx.read_tx() as s:
        by_status = dict(s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        attempts, requeues = s.execute(
            select(func.coalesce(func.sum(Delivery.attempts), 0), func.coalesce(func.sum(Delivery.requeues), 0))
        ).one()
    sent, sending = by_status.get("sent", 0), by_status.get("sending", 0)
    return {
        "by_status": {st: by_status.get(st, 0) for st in STATUSES},
        "failed_attempts": max(int(attempts) - sent - sending, 0),
        # every time a message died, requeued ones included: a counter never goes down
        "dead_total": by_status.get("dead", 0) + int(requeues),
        **stuck(ctx),
    }


def stuck(ctx) -> dict:
    """Is the outbox moving? The age in seconds of the oldest message not sent yet (None: none waits) and
    the dead letters. A message waits since it was queued (or requeued); an automated action the sweep queued
    that no worker has picked up yet waits since the start of its due day (no worker running: it still shows)."""
    now = ctx.clock()
    with ctx.read_tx() as s:
        oldest = s.execute(
            select(func.min(func.coalesce(Delivery.requeued_at, Delivery.created_at))).where(
                Delivery.status.in_(PENDING)
            )
        ).scalar_one()
        unclaimed = s.execute(
            select(func.min(Action.due_on))
            .outerjoin(Delivery, Delivery.action_id == Action.id)
            .where(Action.status == "queued", Delivery.id.is_(None))
        ).scalar_one()
        dead = s.execute(select(func.count()).select_from(Delivery).where(Delivery.status == "dead")).scalar_one()
    since = [t for t in (oldest, dt.datetime.combine(unclaimed, dt.time()) if unclaimed else None) if t is not None]
    age = max((now - min(since)).total_seconds(), 0.0) if since else None
    return {"oldest_queued_age_seconds": age, "dead_letters": int(dead)}


def requeue(ctx, delivery_id: int, req: dict, actor: str, request_id: str) -> dict:
    """Send a dead letter again: queued at once with the whole retry budget, its action (if any) queued
    again, and a trail record (kind delivery, outcome requeued) with the actor and reason. The next worker
    round sends it once; its idempotency key is the one it always had."""
    reason = req["reason"].strip()
    if not 0 < delivery_id <= MAX_DELIVERY_ID:
        raise not_found("delivery", delivery_id)
    with ctx.tx() as s:
        # the row locked: of two requeues of one dead letter, the second finds it queued
        d = s.execute(select(Delivery).where(Delivery.id == delivery_id).with_for_update()).scalar_one_or_none()
        if d is None:
            raise not_found("delivery", delivery_id)
        if d.status != "dead":
            raise conflict(
                f"delivery {delivery_id} is {d.status}, not a dead letter: only dead letters are requeued",
                "E_DELIVERY_NOT_DEAD",
            )
        action = s.get(Action, d.action_id) if d.action_id is not None else None
        if action is not None and not (action.status == "failed" and action.outcome == "dead_letter"):
            raise conflict(
                f"delivery {delivery_id}'s action {action.id} is {action.status}"
                f"{f' ({action.outcome})' if action.outcome else ''}: nothing is left to send",
                "E_DELIVERY_OBSOLETE",
            )
        now = ctx.clock()
        before = {
            "status": d.status,
            "attempts": d.attempts,
            "last_error_code": d.last_error_code,
            "last_error": d.last_error,
        }
        facts = {"delivery_id": d.id, "action_id": d.action_id, "channel": d.channel, "reason": reason}
        if d.statement_period:
            facts["statement_period"] = d.statement_period
        rec = trail.append(
            s,
            subject=d.customer_id,
            kind="delivery",
            actor=actor,
            request_id=request_id,
            as_of=now.date(),
            facts=canonical_json(facts),
            policy_version=ctx.registry.active(s).version,
            result=canonical_json(
                {"status": "queued", "before": before, "reason": reason, "idempotency_key": d.idempotency_key}
            ),
            outcome="requeued",
            created_at=now,
        )
        s.execute(
            update(Delivery)
            .where(Delivery.id == d.id, Delivery.status == "dead")
            .values(
                status="queued",
                next_attempt_at=None,
                claimed_at=None,
                worker=None,
                attempt_base=d.attempts,
                requeued_at=now,
                requeues=Delivery.requeues + 1,
                updated_at=now,
                decision_id=rec.id,
            )
            .execution_options(synchronize_session=False)
        )
        if action is not None:
            s.execute(
                update(Action)
                .where(Action.id == action.id)
                .values(status="queued", outcome=None)
                .execution_options(synchronize_session=False)
            )
        s.flush()
        s.refresh(d)
        return {**delivery_view(d), "reason": reason, "before": before}
