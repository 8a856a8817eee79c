"""The trail as readers see it: list and read decisions, replay one, verify the chains."""
from __future__ import annotations

import base64
import datetime as dt
import json
import re
from decimal import Decimal

from sqlalchemy import select

from engine.evaluator import evaluate

from ..errors import conflict, invalid, not_found
from . import audit
from ..store.policy_store import with_retry
from ..store.tables import DecisionRecord

_DECISION_ID = re.compile(r"[0-9a-f]{1,64}")                 # trail.append: uuid4().hex
# kinds that record a run over the book, not one case: nothing to re-evaluate
_NOT_REPLAYABLE = {
    "simulation": "a simulation is not replayed: simulate the candidate again",
    "interest_accrual": "an interest accrual run is not replayed: its rows are in GET /v1/reports/interest-accruals",
    **{f"referral_{step}": "a step on a referral is a person's (or the expiry's) act, not an evaluation: its "
       "facts and reason are the record" for step in ("release", "reject", "expire")},
    **{kind: "placing or lifting a credit hold is a controller's act, not an evaluation: the record holds it"
       for kind in ("hold_set", "hold_lift")},
    "collection_record": "a collection record (催收记录) is evidence of a contact, not an evaluation: the record "
                         "holds it",
}


def list_decisions(ctx, *, customer=None, kind=None, outcome=None, since=None, until=None, actor=None,
                   cursor=None, limit=100) -> tuple[list[DecisionRecord], str | None]:
    with ctx.read_tx() as s:
        q = select(DecisionRecord)
        if customer:
            q = q.where(DecisionRecord.subject.in_([customer, f"stateless:{customer}"]))
        if kind:
            q = q.where(DecisionRecord.kind == kind)
        if outcome:
            q = q.where(DecisionRecord.outcome == outcome)
        if since:
            q = q.where(DecisionRecord.as_of >= since)
        if until:
            q = q.where(DecisionRecord.as_of <= until)
        if actor:
            q = q.where(DecisionRecord.actor == actor)
        if cursor:
            created, rid = _decode_cursor(cursor)
            q = q.where((DecisionRecord.created_at > created) |
                        ((DecisionRecord.created_at == created) & (DecisionRecord.id > rid)))
        rows = s.execute(q.order_by(DecisionRecord.created_at, DecisionRecord.id).limit(limit + 1)).scalars().all()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1]) if more and rows else None
        return rows, next_cursor


def get_decision(ctx, decision_id: str) -> DecisionRecord:
    with ctx.read_tx() as s:
        rec = s.get(DecisionRecord, decision_id)
        if rec is None:
            raise not_found("decision", decision_id)
        return rec


def decision_view(rec: DecisionRecord, include_facts: bool = False) -> dict:
    out = {"id": rec.id, "kind": rec.kind, "subject": rec.subject, "seq": rec.seq, "actor": rec.actor,
           "request_id": rec.request_id, "as_of": rec.as_of.isoformat(), "policy_version": rec.policy_version,
           "outcome": rec.outcome, "created_at": rec.created_at.isoformat() + "Z", "hash": rec.hash,
           "prev_hash": rec.prev_hash, "decision": json.loads(rec.result)}
    if include_facts:
        out["facts"] = json.loads(rec.facts)
    return out


def replay(ctx, decision_id: str) -> dict:
    with ctx.read_tx() as s:
        rec = s.get(DecisionRecord, decision_id)
        if rec is None:
            raise not_found("decision", decision_id)
        if rec.kind in _NOT_REPLAYABLE:
            raise conflict(_NOT_REPLAYABLE[rec.kind], "E_NOT_REPLAYABLE")
        facts = json.loads(rec.facts, parse_float=Decimal)
        as_of = dt.date.fromisoformat(facts["as_of"])
        decision = with_retry(lambda: evaluate(ctx.registry.get(s, rec.policy_version), facts["case"], as_of,
                                               order=facts["order"]))
        identical = decision.json == rec.result
        out = {"decision_id": rec.id, "policy_version": rec.policy_version, "identical": identical}
        if not identical:
            old, new = json.loads(rec.result), decision.data
            out["differences"] = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            out["replayed"] = new
        return out


def verify(ctx) -> dict:
    return audit.verify(ctx)            # the chains and the signed checkpoints


def _encode_cursor(rec: DecisionRecord) -> str:
    return base64.urlsafe_b64encode(f"{rec.created_at.isoformat()}|{rec.id}".encode()).decode()


def _decode_cursor(cursor: str):
    try:
        created, rid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        if not _DECISION_ID.fullmatch(rid):
            raise ValueError(rid)
        return dt.datetime.fromisoformat(created), rid
    except Exception:
        raise invalid({"cursor": ["not a cursor returned by this API"]}) from None
