"""Collection actions: the work queue the sweep and events fill, and its completion."""

from __future__ import annotations

from sqlalchemy import select

from rules.money import minor_str

from ..errors import conflict, not_found
from ..store.tables import Action, Delivery
from .collection_records import append_record

MAX_ACTION_ID = 2**31 - 1  # actions.id is a 32-bit integer


def list_actions(ctx, *, status="open", owner=None, customer=None, cursor=None, limit=100):
    with ctx.read_tx() as s:
        q = select(Action)
        if status:
            q = q.where(Action.status == status)
        if owner:
            q = q.where(Action.owner == owner)
        if customer:
            q = q.where(Action.customer_id == customer)
        if cursor:
            q = q.where(Action.id > int(cursor))
        rows = s.execute(q.order_by(Action.id).limit(limit + 1)).scalars().all()
        more = len(rows) > limit
        rows = rows[:limit]
        # the outbox's state of each automated action's message (api/jobs/outbox.py), None for the others
        outbox = (
            {
                d.action_id: d
                for d in s.execute(
                    select(Delivery).where(Delivery.action_id.in_([a.id for a in rows if a.owner == "automated"]))
                ).scalars()
            }
            if rows
            else {}
        )
        return (
            [{**action_view(a), "delivery": _delivery(outbox.get(a.id))} for a in rows],
            (str(rows[-1].id) if more and rows else None),
        )


def _delivery(d) -> dict | None:
    if d is None:
        return None
    return {
        "status": d.status,
        "attempts": d.attempts,
        "last_error_code": d.last_error_code,
        "next_attempt_at": d.next_attempt_at.isoformat() + "Z" if d.next_attempt_at else None,
    }


def action_view(a: Action) -> dict:
    return {
        "id": a.id,
        "customer_id": a.customer_id,
        "invoice_id": a.invoice_id,
        "type": a.type,
        "channel": a.channel,
        "owner": a.owner,
        "stage": a.stage,
        "due_on": a.due_on.isoformat(),
        "amount": minor_str(a.amount_minor, 2),
        "status": a.status,
        "outcome": a.outcome,
        "note": a.note,
        "completed_at": a.completed_at.isoformat() + "Z" if a.completed_at else None,
        "completed_by": a.completed_by,
        "decision_id": a.decision_id,
    }


def complete_action(ctx, action_id: int, body: dict, actor: str, request_id: str | None = None) -> dict:
    """Record an action's outcome; the collection record is chained in the customer's trail (evidence)."""
    if not 0 < action_id <= MAX_ACTION_ID:  # beyond the id column: cannot exist
        raise not_found("action", action_id)
    with ctx.tx() as s:
        a = s.execute(select(Action).where(Action.id == action_id).with_for_update()).scalar_one_or_none()
        if a is None:
            raise not_found("action", action_id)
        if a.status != "open":
            raise conflict(f"action {action_id} is already {a.status}")
        a.status, a.outcome, a.note = "done", body["outcome"], body.get("note")
        if body.get("channel"):
            a.channel = body["channel"]
        a.completed_at, a.completed_by = ctx.clock(), actor
        view = action_view(a)
        evidence = {
            "action_id": a.id,
            "invoice_id": a.invoice_id,
            "type": a.type,
            "channel": a.channel,
            "outcome": a.outcome,
            "note": a.note,
            "at": a.completed_at,
            "stage": a.stage,
            "amount": view["amount"],
        }
        view["record_id"] = append_record(
            ctx, s, a.customer_id, evidence, actor=actor, request_id=request_id or f"action:{a.id}"
        )["decision_id"]
        return view
