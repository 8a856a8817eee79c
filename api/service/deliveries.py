"""Reading the outbox (api/jobs/outbox.py writes it): the listing controllers watch, and the counters
/metrics exposes (read from the database, so they count every worker process's sends)."""
from __future__ import annotations

from sqlalchemy import func, select

from ..store.tables import Delivery

STATUSES = ("queued", "sending", "sent", "failed", "dead")


def _iso(value):
    return value.isoformat() + "Z" if value is not None else None


def delivery_view(d: Delivery) -> dict:
    return {"id": d.id, "action_id": d.action_id, "customer_id": d.customer_id, "channel": d.channel,
            "status": d.status, "attempts": d.attempts, "next_attempt_at": _iso(d.next_attempt_at),
            "last_error_code": d.last_error_code, "last_error": d.last_error, "backend": d.backend,
            "recipient": d.recipient, "document_hash": d.document_hash,
            "provider_message_id": d.provider_message_id, "idempotency_key": d.idempotency_key,
            "created_at": _iso(d.created_at), "updated_at": _iso(d.updated_at), "sent_at": _iso(d.sent_at),
            "decision_id": d.decision_id}


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
    return ({"deliveries": [delivery_view(d) for d in rows], "counts": {st: counts.get(st, 0) for st in STATUSES},
             "next_cursor": str(rows[-1].id) if more and rows else None})


def counters(ctx) -> dict:
    """Messages by status, and the failed attempts so far (every attempt of a message that did not send it)."""
    with ctx.read_tx() as s:
        by_status = dict(s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        attempts = s.execute(select(func.coalesce(func.sum(Delivery.attempts), 0))).scalar_one()
    sent, sending = by_status.get("sent", 0), by_status.get("sending", 0)
    return {"by_status": {st: by_status.get(st, 0) for st in STATUSES},
            "failed_attempts": max(int(attempts) - sent - sending, 0)}
