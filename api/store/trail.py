"""The decision trail: append-only records in per-subject hash chains.

hash = sha256(prev_hash || canonical JSON of the record's fields). Editing, deleting or
reordering a record breaks its chain; the chain head catches a deleted tail. A chain per
subject (customer) lets writers for different customers proceed in parallel; writers for
one subject serialise on its chain head row.

A head row that is missing or behind its chain's last record (someone wrote to the database) is
rebuilt by the next writer from the last record, and a `trail_repair` record saying so is chained
first: the decision goes through, and verify() names the repair for ever after (docs/audit.md).
The chain's integrity against a writer who recomputes hashes comes from signed checkpoints kept
outside the database (api/store/checkpoints.py).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid

from sqlalchemy import bindparam, exists, func, insert, select, update

from engine.decision import canonical_json
from rules.credit import OUTCOMES as CHECK_OUTCOMES

from .database import insert_ignoring_duplicates
from .tables import ChainHead, DecisionRecord

log = logging.getLogger("creditctl.trail")
GENESIS = "0" * 64
HASHED_FIELDS = ("id", "subject", "seq", "kind", "actor", "request_id", "as_of", "facts", "policy_version",
                 "result", "outcome", "created_at")


def record_hash(prev_hash: str, values: dict) -> str:
    body = canonical_json({k: values[k] for k in HASHED_FIELDS})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _values(rec: DecisionRecord) -> dict:
    return {"id": rec.id, "subject": rec.subject, "seq": rec.seq, "kind": rec.kind, "actor": rec.actor,
            "request_id": rec.request_id, "as_of": rec.as_of.isoformat(), "facts": rec.facts,
            "policy_version": rec.policy_version, "result": rec.result, "outcome": rec.outcome,
            "created_at": rec.created_at.isoformat()}


def record_integrity(session, rec: DecisionRecord) -> str | None:
    """None when the record is as it was written: its content hashes to its hash and it links to its
    neighbours in the chain; otherwise what is wrong (an edited, rehashed or re-linked row)."""
    if record_hash(rec.prev_hash, _values(rec)) != rec.hash:
        return "content does not match its hash (the record was edited)"
    before = session.execute(select(DecisionRecord.hash).where(DecisionRecord.subject == rec.subject,
                                                               DecisionRecord.seq == rec.seq - 1)).scalar()
    if rec.prev_hash != (GENESIS if rec.seq == 1 else before):
        return "prev_hash does not match the previous record's hash"
    after = session.execute(select(DecisionRecord.prev_hash).where(DecisionRecord.subject == rec.subject,
                                                                   DecisionRecord.seq == rec.seq + 1)).scalar()
    if after is not None and after != rec.hash:
        return "the next record does not link to this record's hash (it was edited and rehashed)"
    return None


# built once: the head, locked, and its chain's last seq (unique index (subject, seq): one index probe)
_LOCK_HEAD = (select(ChainHead.seq, ChainHead.hash,
                     select(func.max(DecisionRecord.seq)).where(DecisionRecord.subject == ChainHead.subject)
                     .scalar_subquery())
              .where(ChainHead.subject == bindparam("subject")).with_for_update(of=ChainHead))
_LAST_RECORD = (select(DecisionRecord.seq, DecisionRecord.hash).where(DecisionRecord.subject == bindparam("subject"))
                .order_by(DecisionRecord.seq.desc()).limit(1))
_LAST_SEQS = (select(DecisionRecord.subject, func.max(DecisionRecord.seq))
              .where(DecisionRecord.subject.in_(bindparam("subjects", expanding=True))).group_by(DecisionRecord.subject))
REPAIR_KIND = "trail_repair"
# Every kind of record the code writes (chain() refuses another; tests/api/test_hardening_http.py finds each
# kind written in the source here), and every outcome a record carries besides none: GET /v1/decisions
# refuses a filter outside them (422), so a typo never reads as "no such records".
RECORD_KINDS = ("event", "credit_check", "credit_check_what_if", "evaluate", "evaluate_stateless", "review",
                "review_approval", "sweep", "import", "simulation", "interest_accrual", "referral_recheck",
                "referral_release", "referral_reject", "referral_expire", "hold_set", "hold_lift", REPAIR_KIND,
                "delivery", "key_revoke", "key_rotate", "group_set", "group_member", "group_hold_set",
                "group_hold_lift", "limit_grant",
                "limit_grant_request", "limit_grant_revoke", "limit_grant_reject", "policy_propose", "policy_approve",
                "policy_reject", "collection_record", "statement", "policy_activate", "policy_schedule",
                "policy_in_force", "policy_cancel", "credit_file_change", "legal_case")
RECORD_OUTCOMES = (*CHECK_OUTCOMES, "released", "rejected", "expired", "on_hold", "lifted", "head_rebuilt",
                   "sent", "dead", "revoked", "rotated", "set", "joined", "left", "granted", "pending", "approved", "recorded",
                   "queued", "requeued", "applied", "in_force", "scheduled", "superseded", "cancelled", "changed",
                   # a legal case's statuses (api/service/legal_cases.py)
                   "referred", "filed", "judgment", "enforcement", "recovered", "settled", "withdrawn", "written_off")


def repair_record(subject: str, head: tuple[int, str] | None, last: tuple[int, str], now: dt.datetime) -> dict:
    """The record chained after `last` when the head row was `head` (None: missing) instead of `last`."""
    facts = canonical_json({"reason": "chain head missing" if head is None else "chain head behind its last record",
                            "head_found": list(head) if head else None, "rebuilt_from": list(last)})
    return dict(subject=subject, kind=REPAIR_KIND, actor="system:trail", request_id="trail-repair",
                as_of=now.date(), facts=facts, policy_version="-", result="{}", outcome="head_rebuilt",
                created_at=now)


def _lock_head(session, subject: str, now: dt.datetime) -> tuple[int, str]:
    """Lock (creating if missing) the subject's chain head: (seq, hash) to chain from. One statement reads
    the head and its chain's last seq; a head behind it is rebuilt first (see the module's docstring)."""
    conn = session.connection()
    found = conn.execute(_LOCK_HEAD, {"subject": subject}).one_or_none()
    head = None if found is None else (found[0], found[1])
    if found is None:
        conn.execute(insert_ignoring_duplicates(session, ChainHead.__table__),
                     [{"subject": subject, "seq": 0, "hash": GENESIS}])
        found = conn.execute(_LOCK_HEAD, {"subject": subject}).one()
    seq, hash_, last_seq = found
    if last_seq is not None and last_seq > seq:         # chaining from this head would collide on (subject, seq)
        last = tuple(conn.execute(_LAST_RECORD, {"subject": subject}).one())
        log.warning("trail: chain head of %s %s; rebuilt from record %d", subject,
                    "missing" if head is None else f"at {head[0]}", last[0])
        row, = chain([repair_record(subject, head, last, now)], {subject: last})
        conn.execute(_INSERT_RECORDS, row)
        seq, hash_ = row["seq"], row["hash"]
    return seq, hash_


def append(session, *, subject, kind, actor, request_id, as_of: dt.date, facts: str, policy_version: str,
           result: str, outcome, created_at: dt.datetime) -> DecisionRecord:
    """Chain one record to the subject's head and store it (Core: the record is written now, not at the
    session's flush). Returns the record as an object outside the session, to read."""
    head = _lock_head(session, subject, created_at)
    row, = chain([dict(subject=subject, kind=kind, actor=actor, request_id=request_id, as_of=as_of, facts=facts,
                       policy_version=policy_version, result=result, outcome=outcome, created_at=created_at)],
                 {subject: head})
    conn = session.connection()
    conn.execute(_INSERT_RECORDS, row)
    conn.execute(_UPDATE_HEAD, {"b_subject": subject, "b_seq": row["seq"], "b_hash": row["hash"]})
    return DecisionRecord(**row)


def append_at(session, head: tuple[int, str, int | None] | None, **record) -> DecisionRecord:
    """append() where this transaction has read the subject's chain head: `head` (seq, hash, the chain's last
    seq) as ledger.read_check gives it, None when there was no head row. SQLite: the transaction holds the
    write lock, so the head is as read: the record is inserted and the head moved, no lock statement.
    PostgreSQL: one statement moves the head only if it is still as read (taking its row lock, waiting for
    a writer that holds it) and inserts the record only if it moved; when another writer came between, or
    the head is missing or behind its chain, append() does as ever."""
    if head is None or (head[2] is not None and head[2] > head[0]):
        return append(session, **record)
    row, = chain([record], {record["subject"]: head[:2]})
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        if conn.execute(_MOVE_HEAD_AND_INSERT, {**{f"b_{k}": v for k, v in row.items()}, "b_old_seq": head[0],
                                                "b_old_hash": head[1]}).first() is not None:
            return DecisionRecord(**row)
        return append(session, **record)
    conn.execute(_INSERT_RECORDS, row)
    conn.execute(_UPDATE_HEAD, {"b_subject": row["subject"], "b_seq": row["seq"], "b_hash": row["hash"]})
    return DecisionRecord(**row)


def read_heads(session, subjects) -> dict[str, tuple[int, str]]:
    """Each subject's chain head now, {subject: (seq, hash)} ((0, GENESIS): no record yet), without locking."""
    heads = dict.fromkeys(subjects, (0, GENESIS))
    heads.update({subject: (seq, hash_) for subject, seq, hash_ in session.execute(
        select(ChainHead.subject, ChainHead.seq, ChainHead.hash).where(ChainHead.subject.in_(subjects)))})
    return heads


def lock_heads(session, subjects, now: dt.datetime | None = None) -> dict[str, tuple[int, str]]:
    """Lock (creating where missing) the chain heads of `subjects`: {subject: (seq, hash)}. A head missing
    or behind its chain's last record is rebuilt (see the module's docstring)."""
    subjects = sorted(set(subjects))             # one lock order for every writer
    stmt = (select(ChainHead.subject, ChainHead.seq, ChainHead.hash)
            .where(ChainHead.subject.in_(subjects)).with_for_update())
    heads = {subject: (seq, hash_) for subject, seq, hash_ in session.execute(stmt)}
    missing = [subject for subject in subjects if subject not in heads]
    if missing:
        session.connection().execute(insert_ignoring_duplicates(session, ChainHead.__table__),
                                     [{"subject": subject, "seq": 0, "hash": GENESIS} for subject in missing])
        heads.update({subject: (seq, hash_) for subject, seq, hash_ in session.execute(
            stmt.where(ChainHead.subject.in_(missing)))})
    behind = {subject: seq for subject, seq in session.execute(_LAST_SEQS, {"subjects": subjects})
              if seq > heads[subject][0]}
    if behind:
        now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        missing = set(missing)
        rows = []
        for subject in sorted(behind):
            last = tuple(session.execute(_LAST_RECORD, {"subject": subject}).one())
            log.warning("trail: chain head of %s %s; rebuilt from record %d", subject,
                      "missing" if subject in missing else f"at {heads[subject][0]}", last[0])
            rows += chain([repair_record(subject, None if subject in missing else heads[subject], last, now)],
                          {subject: last})
        insert_chained(session, rows)
        heads.update({row["subject"]: (row["seq"], row["hash"]) for row in rows})
    return heads


_INSERT_RECORDS = insert(DecisionRecord.__table__)
_UPDATE_HEAD = (update(ChainHead.__table__).where(ChainHead.__table__.c.subject == bindparam("b_subject"))
                .values(seq=bindparam("b_seq"), hash=bindparam("b_hash")))


_H, _R = ChainHead.__table__.c, DecisionRecord.__table__.c
# PostgreSQL: WITH moved AS (UPDATE chain_heads … WHERE the head is as read RETURNING …) INSERT … SELECT … FROM moved
_MOVED = (update(ChainHead.__table__)
          .where(_H.subject == bindparam("b_subject"), _H.seq == bindparam("b_old_seq"),
                 _H.hash == bindparam("b_old_hash"),
                 ~exists().where(_R.subject == bindparam("b_subject"), _R.seq > bindparam("b_old_seq")))
          .values(seq=bindparam("b_seq"), hash=bindparam("b_hash")).returning(_H.subject).cte("moved"))
_RECORD_COLUMNS = [c.name for c in DecisionRecord.__table__.columns]
_MOVE_HEAD_AND_INSERT = (insert(DecisionRecord.__table__)
                         .from_select(_RECORD_COLUMNS,
                                      select(*(bindparam(f"b_{name}", type_=_R[name].type) for name in _RECORD_COLUMNS))
                                      .select_from(_MOVED))
                         .add_cte(_MOVED).returning(_R.seq))      # a row: inserted (psycopg's rowcount is -1 here)


def chain(records: list[dict], heads: dict) -> list[dict]:
    """The stored rows of `records` (the keyword arguments of append(), as dicts) appended, in order, to
    `heads` ({subject: (seq, hash)}, advanced in place): id, seq, prev_hash and hash added. Pure, so a
    writer can prepare them before it locks the heads, and insert them if the heads have not moved."""
    rows = []
    for r in records:
        if r["kind"] not in RECORD_KINDS:
            raise ValueError(f"record kind {r['kind']!r} is not in trail.RECORD_KINDS")
        seq, prev_hash = heads[r["subject"]]
        row = {"id": uuid.uuid4().hex, **r, "seq": seq + 1, "prev_hash": prev_hash}
        row["hash"] = record_hash(prev_hash, {**row, "as_of": row["as_of"].isoformat(),
                                              "created_at": row["created_at"].isoformat()})
        heads[r["subject"]] = (row["seq"], row["hash"])
        rows.append(row)
    return rows


def insert_chained(session, rows: list[dict]) -> None:
    """Store rows from chain(), whose heads this transaction has locked and found where chain() started;
    each subject's head moves to its last row."""
    if not rows:
        return
    last = {row["subject"]: row for row in rows}
    conn = session.connection()
    conn.execute(_INSERT_RECORDS, rows)
    conn.execute(_UPDATE_HEAD, [{"b_subject": subject, "b_seq": last[subject]["seq"], "b_hash": last[subject]["hash"]}
                                for subject in sorted(last)])


def verify(session, batch: int = 5000) -> dict:
    """Walk every chain; report the first broken record of each broken chain, every repaired head, and
    every chain whose head row is missing or does not match its last record. Each finding has a `kind`."""
    broken = []
    repaired = []
    checked = 0
    heads = {h.subject: h for h in session.execute(select(ChainHead)).scalars()}
    current, prev_hash, expected_seq = None, GENESIS, 1
    last_seen: dict[str, tuple[int, str]] = {}
    stmt = select(DecisionRecord).order_by(DecisionRecord.subject, DecisionRecord.seq).execution_options(
        yield_per=batch)
    bad_subjects = set()
    for rec in session.execute(stmt).scalars():
        checked += 1
        if rec.subject != current:
            current, prev_hash, expected_seq = rec.subject, GENESIS, 1
        if rec.subject in bad_subjects:
            continue
        problem = kind = None
        if rec.seq != expected_seq:
            kind, problem = "seq_gap", f"expected seq {expected_seq}, found {rec.seq} (a record is missing)"
        elif rec.prev_hash != prev_hash:
            kind, problem = "prev_hash_mismatch", "prev_hash does not match the previous record"
        elif record_hash(prev_hash, _values(rec)) != rec.hash:
            kind, problem = "hash_mismatch", "content does not match its hash (the record was edited)"
        if problem:
            broken.append({"subject": rec.subject, "decision_id": rec.id, "seq": rec.seq, "kind": kind,
                           "problem": problem})
            bad_subjects.add(rec.subject)
            continue
        if rec.kind == REPAIR_KIND:
            repaired.append({"subject": rec.subject, "decision_id": rec.id, "seq": rec.seq, "kind": "head_rebuilt",
                             "problem": f"the chain head was found {json.loads(rec.facts)['reason'].split(' ', 2)[2]}"
                                        f" and was rebuilt before this record (someone wrote to the database)"})
        prev_hash, expected_seq = rec.hash, expected_seq + 1
        last_seen[rec.subject] = (rec.seq, rec.hash)
    for subject, head in heads.items():
        if subject in bad_subjects:
            continue
        seen = last_seen.get(subject, (0, GENESIS))
        if seen != (head.seq, head.hash):
            kind, problem = (("records_deleted", "the chain ends before its recorded head (records were deleted)")
                             if seen[0] < head.seq else
                             ("head_mismatch", "the chain head does not match the chain's last record"))
            broken.append({"subject": subject, "decision_id": None, "seq": head.seq, "kind": kind,
                           "problem": problem})
    for subject, (seq, _) in last_seen.items():
        if subject not in heads and subject not in bad_subjects:
            broken.append({"subject": subject, "decision_id": None, "seq": seq, "kind": "head_missing",
                           "problem": "the chain has records but no chain head row (the head was deleted)"})
    broken.sort(key=lambda b: (b["subject"], b["seq"]))
    findings = sorted(broken + repaired, key=lambda b: (b["subject"], b["seq"]))
    broken = [{k: v for k, v in b.items() if k != "kind"} for b in broken]     # the shape before `findings`
    return {"ok": not findings, "records_checked": checked, "chains": len(heads), "broken": broken,
            "first_broken": broken[0] if broken else None, "findings": findings}
