"""The trail as readers see it: list and read decisions, replay one, verify the chains."""
from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
from decimal import Decimal

from sqlalchemy import select

from engine.decision import FORMAT, stored_format
from engine.errors import InputInvalid
from engine.evaluator import evaluate
from engine.reasons import render

from ..errors import DomainError, conflict, invalid, not_found
from . import audit
from ..store import trail
from ..store.policy_store import with_retry
from ..store.tables import DecisionRecord

log = logging.getLogger("creditctl.trail")
_DECISION_ID = re.compile(r"[0-9a-f]{1,64}")                 # trail.append: uuid4().hex
# kinds that record a run over the book, not one case: nothing to re-evaluate
_NOT_REPLAYABLE = {
    "simulation": "a simulation is not replayed: simulate the candidate again",
    "interest_accrual": "an interest accrual run is not replayed: its rows are in GET /v1/reports/interest-accruals",
    **{f"referral_{step}": "a step on a referral is a person's (or the expiry's) act, not an evaluation: its "
       "facts and reason are the record" for step in ("release", "reject", "expire")},
    **{kind: "placing or lifting a credit hold is a controller's act, not an evaluation: the record holds it"
       for kind in ("hold_set", "hold_lift", "group_hold_set", "group_hold_lift")},
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


def decision_view(rec: DecisionRecord, include_facts: bool = False, decision: dict | None = None) -> dict:
    """A record as readers see it; `decision`: its result rendered (decision_views), else the result as stored."""
    out = {"id": rec.id, "kind": rec.kind, "subject": rec.subject, "seq": rec.seq, "actor": rec.actor,
           "request_id": rec.request_id, "as_of": rec.as_of.isoformat(), "policy_version": rec.policy_version,
           "outcome": rec.outcome, "created_at": rec.created_at.isoformat() + "Z", "hash": rec.hash,
           "prev_hash": rec.prev_hash, "decision": json.loads(rec.result) if decision is None else decision}
    if include_facts:
        out["facts"] = json.loads(rec.facts)
    return out


def decision_views(ctx, recs, include_facts: bool = False, locale: str = "en") -> list[dict]:
    """Records as readers see them, a decision stored with its reasons as data (format 2) rendered in `locale`
    with the policy version it names: in English exactly the decision as format 1 stored it. A format-1
    record is its stored text (English, whatever the locale). A version that cannot be loaded (its stored
    text was edited: E_POLICY_TAMPERED) leaves the decision as stored, reasons as data."""
    results = [json.loads(rec.result) for rec in recs]
    if not any(stored_format(r) == FORMAT for r in results):
        return [decision_view(rec, include_facts, r) for rec, r in zip(recs, results)]
    with ctx.read_tx() as s:
        policies: dict = {}
        for i, (rec, result) in enumerate(zip(recs, results)):
            if stored_format(result) != FORMAT:
                continue
            if rec.policy_version not in policies:
                try:
                    policies[rec.policy_version] = with_retry(lambda: ctx.registry.get(s, rec.policy_version))
                except DomainError:
                    policies[rec.policy_version] = None
            if policies[rec.policy_version] is not None:
                results[i] = render(result, policies[rec.policy_version], locale)
    return [decision_view(rec, include_facts, r) for rec, r in zip(recs, results)]


def replay(ctx, decision_id: str) -> dict:
    """Check the record's own integrity, then re-evaluate it from its stored facts and policy version.
    identical: the record is intact and the replay is byte-identical. Otherwise `tampered` (with the
    problem) and/or `diff`, each differing field of the result as {path, recorded, replayed}."""
    with ctx.read_tx() as s:
        rec = s.get(DecisionRecord, decision_id)
        if rec is None:
            raise not_found("decision", decision_id)
        if rec.kind in _NOT_REPLAYABLE:
            raise conflict(_NOT_REPLAYABLE[rec.kind], "E_NOT_REPLAYABLE")
        problem = trail.record_integrity(s, rec)
        out = {"decision_id": rec.id, "policy_version": rec.policy_version, "tampered": problem is not None}
        if problem:
            log.warning("ALERT decision %s (subject %s): %s", rec.id, rec.subject, problem)
            out["problem"] = problem
        try:
            facts = json.loads(rec.facts, parse_float=Decimal)
            as_of = dt.date.fromisoformat(facts["as_of"])
            decision = with_retry(lambda: evaluate(ctx.registry.get(s, rec.policy_version), facts["case"], as_of,
                                                   order=facts["order"]))
        except (ValueError, KeyError, TypeError, InputInvalid, DomainError) as exc:
            if not problem:
                raise
            out.update(identical=False, replay_error=f"the edited facts do not replay: {exc}")
            return out
        try:
            old = json.loads(rec.result)
        except ValueError:
            old = None
        # like with like: a record of format 2 (reasons as data) against the replay's stored form, one of
        # format 1 (before structured reasons) against the replay rendered in English, as format 1 stored it
        structured = stored_format(old) == FORMAT
        same = (decision.stored if structured else decision.json) == rec.result
        out["identical"] = same and not problem
        if not same:
            new = {**decision.body, "format": FORMAT} if structured else decision.data
            if isinstance(old, dict):
                out["differences"] = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            out["diff"] = field_diff(old, new)
            out["replayed"] = new
        return out


DIFF_MAX = 200


def field_diff(recorded, replayed, path: str = "", out: list | None = None) -> list[dict]:
    """Each leaf that differs between the recorded and the replayed result (at most DIFF_MAX), with its
    path (`credit.check.outcome`, `reasons[2].message`); a side where the field is absent has no value."""
    out = [] if out is None else out
    if len(out) >= DIFF_MAX:
        return out
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        for k in sorted(set(recorded) | set(replayed)):
            sub = f"{path}.{k}" if path else str(k)
            if k not in recorded or k not in replayed:
                out.append({"path": sub, **({"recorded": recorded[k]} if k in recorded else {}),
                            **({"replayed": replayed[k]} if k in replayed else {})})
            else:
                field_diff(recorded[k], replayed[k], sub, out)
    elif isinstance(recorded, list) and isinstance(replayed, list):
        for i in range(max(len(recorded), len(replayed))):
            sub = f"{path}[{i}]"
            if i >= len(recorded) or i >= len(replayed):
                out.append({"path": sub, **({"recorded": recorded[i]} if i < len(recorded) else {}),
                            **({"replayed": replayed[i]} if i < len(replayed) else {})})
            else:
                field_diff(recorded[i], replayed[i], sub, out)
    elif recorded != replayed or type(recorded) is not type(replayed):
        out.append({"path": path or "$", "recorded": recorded, "replayed": replayed})
    return out[:DIFF_MAX]


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
