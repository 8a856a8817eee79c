"""Signed checkpoints of the trail, kept outside the database.

The trail's hashes are unkeyed: someone who can write to the database can rewrite a chain and
recompute every hash after it. A checkpoint pins the chains as they were: every subject's head
(seq = its record count, and the hash of that record), a root over all of them, the totals and the
time, signed with an Ed25519 key the database never holds, appended as one JSON line to a log file
(var/checkpoints.jsonl by default) in which each line carries the sha256 of the line before it.

A line stores only the heads that moved since the previous line (`heads`); the full state at a
line is the fold of every line up to it, and its `root` is over that full state, so one line is
small and still commits to everything. verify_log() checks the links, signatures and roots;
verify_against() checks that every head each checkpoint recorded is still in the database (the
chains as checkpointed are prefixes of the chains now) and that no record older than the last
checkpoint (by more than GRACE) is missing from it. See docs/audit.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import json
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select

from ..errors import DomainError
from .tables import DecisionRecord

GENESIS = "0" * 64
VERSION = 1
# a record this much older than a checkpoint must be in it: a transaction that started before the
# checkpoint's snapshot and committed after it (a sweep group evaluates, then writes) is not a forgery
GRACE = dt.timedelta(minutes=5)


# ------------------------------------------------------------------------------------------------ keys
def generate_key(path: str) -> str:
    """Write a new Ed25519 private key (PEM, mode 0600) to `path`; return its public key (PEM)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never overwrite a key
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return public_pem(key.public_key())


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _pem(spec: str) -> bytes:
    """A key given as PEM text or as the path of a PEM file."""
    if spec.lstrip().startswith("-----BEGIN"):
        return spec.encode()
    try:
        with open(spec, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise DomainError("E_AUDIT_KEY", f"cannot read the audit key '{spec}': {exc.strerror}") from None


def load_private_key(spec: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_pem(spec), password=None)
    except ValueError as exc:
        raise DomainError("E_AUDIT_KEY", f"the audit key is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DomainError("E_AUDIT_KEY", "the audit key is not an Ed25519 key")
    return key


def load_public_key(spec: str) -> Ed25519PublicKey:
    """A public key (PEM), or the public half of a private key."""
    data = _pem(spec)
    try:
        if b"PRIVATE KEY" in data:
            return load_private_key(data.decode()).public_key()
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise DomainError("E_AUDIT_KEY", f"the audit public key is not PEM: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise DomainError("E_AUDIT_KEY", "the audit public key is not an Ed25519 key")
    return key


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------ state
_LAST = (
    select(DecisionRecord.subject, func.max(DecisionRecord.seq).label("seq"))
    .group_by(DecisionRecord.subject)
    .subquery()
)
_HEADS = select(DecisionRecord.subject, DecisionRecord.seq, DecisionRecord.hash).join(
    _LAST, (DecisionRecord.subject == _LAST.c.subject) & (DecisionRecord.seq == _LAST.c.seq)
)


def current_heads(session) -> dict[str, tuple[int, str]]:
    """Every chain's last record as stored now: {subject: (seq, hash)} (one statement: one snapshot)."""
    return {subject: (seq, hash_) for subject, seq, hash_ in session.execute(_HEADS)}


def state_root(state: dict) -> str:
    h = hashlib.sha256()
    for subject in sorted(state):
        seq, hash_ = state[subject]
        h.update(f"{subject}\x1f{seq}\x1f{hash_}\n".encode("utf-8"))
    return h.hexdigest()


def _signed_bytes(line: dict) -> bytes:
    body = {k: v for k, v in line.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _line_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------------ the log
def read_log(path: str) -> list[str]:
    """The log's lines (without newlines); [] when the file does not exist yet."""
    try:
        with open(path, encoding="utf-8") as fh:
            return [line.rstrip("\n") for line in fh if line.strip()]
    except FileNotFoundError:
        return []


def _fold(lines: list[str]) -> tuple[dict, str, int]:
    """The full state after `lines` (unchecked), the last line's hash and the next line number."""
    state: dict = {}
    for text in lines:
        for subject, (seq, hash_) in json.loads(text)["heads"].items():
            state[subject] = (seq, hash_)
    return state, (_line_hash(lines[-1]) if lines else GENESIS), len(lines)


def write_checkpoint(session, path: str, private_key: Ed25519PrivateKey, now: dt.datetime) -> dict:
    """Append a checkpoint of the chains as `session` sees them. Appenders serialise on an flock of
    "<path>.lock"; the line is written with one write() and fsynced. Returns the line (parsed)."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    heads = current_heads(session)
    lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        state, prev, n = _fold(read_log(path))
        delta = {s: list(h) for s, h in sorted(heads.items()) if state.get(s) != h}
        state.update(heads)  # a chain gone since the last checkpoint stays in the state: verify names it
        line = {
            "v": VERSION,
            "n": n,
            "prev": prev,
            "time": now.isoformat(timespec="seconds"),
            "root": state_root(state),
            "subjects": len(state),
            "records": sum(seq for seq, _ in state.values()),
            "heads": delta,
            "key_id": key_id(private_key.public_key()),
        }
        line["sig"] = base64.b64encode(private_key.sign(_signed_bytes(line))).decode()
        text = json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (text + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        os.close(lock_fd)  # releases the flock
    return line


def verify_log(lines: list[str], public_key: Ed25519PublicKey | None) -> tuple[list[dict], list[dict]]:
    """Check the log itself: each line parses, links to the line before, carries a valid signature (when
    a public key is given) and a root matching the state folded so far. Returns (checkpoints, findings):
    each checkpoint {n, time, heads (delta), state (full, a dict), records, subjects}."""
    findings, checkpoints = [], []
    state: dict = {}
    prev = GENESIS

    def finding(n, kind, problem):
        findings.append(
            {"subject": None, "seq": None, "decision_id": None, "checkpoint": n, "kind": kind, "problem": problem}
        )

    for n, text in enumerate(lines):
        try:
            line = json.loads(text)
            delta = {s: (int(h[0]), str(h[1])) for s, h in line["heads"].items()}
            time = dt.datetime.fromisoformat(line["time"])
        except (ValueError, KeyError, TypeError, IndexError):
            finding(n, "checkpoint_unreadable", f"checkpoint line {n + 1} is not a checkpoint")
            prev = _line_hash(text)
            continue
        if line.get("prev") != prev or line.get("n") != n:
            finding(
                n,
                "checkpoint_link",
                f"checkpoint line {n + 1} does not follow the line before it "
                "(a line was removed, inserted or reordered)",
            )
        if public_key is not None:
            if line.get("key_id") != key_id(public_key):
                finding(
                    n, "checkpoint_key", f"checkpoint line {n + 1} was signed with another key ({line.get('key_id')})"
                )
            else:
                try:
                    public_key.verify(base64.b64decode(line.get("sig", "")), _signed_bytes(line))
                except (InvalidSignature, ValueError):
                    finding(
                        n,
                        "checkpoint_signature",
                        f"checkpoint line {n + 1} has an invalid signature (the line was edited)",
                    )
        state = {**state, **delta}
        if line.get("root") != state_root(state):
            finding(n, "checkpoint_root", f"checkpoint line {n + 1}: its root does not match its heads")
        checkpoints.append(
            {
                "n": n,
                "time": time,
                "heads": delta,
                "state": state,
                "records": line.get("records"),
                "subjects": line.get("subjects"),
            }
        )
        prev = _line_hash(text)
    return checkpoints, findings


def verify_against(session, checkpoints: list[dict], batch: int = 5000) -> list[dict]:
    """Findings where the records now differ from what the checkpoints recorded, one per subject (the
    first): chain_deleted, records_deleted, record_changed, record_not_in_checkpoint,
    chain_not_in_checkpoint."""
    if not checkpoints:
        return []
    expected: dict[tuple[str, int], tuple[str, int]] = {}  # (subject, seq) → (hash, checkpoint n)
    for cp in checkpoints:
        for subject, (seq, hash_) in cp["heads"].items():
            expected[(subject, seq)] = (hash_, cp["n"])
    last = checkpoints[-1]
    covered = last["state"]
    cutoff = last["time"] - GRACE
    found: dict[str, dict] = {}
    max_seq: dict[str, int] = {}

    def finding(subject, seq, kind, problem, n, decision_id=None):
        found.setdefault(
            subject,
            {
                "subject": subject,
                "seq": seq,
                "decision_id": decision_id,
                "checkpoint": n,
                "kind": kind,
                "problem": problem,
            },
        )

    stmt = (
        select(
            DecisionRecord.subject,
            DecisionRecord.seq,
            DecisionRecord.hash,
            DecisionRecord.created_at,
            DecisionRecord.id,
        )
        .order_by(DecisionRecord.subject, DecisionRecord.seq)
        .execution_options(yield_per=batch)
    )
    for subject, seq, hash_, created_at, rid in session.execute(stmt):
        max_seq[subject] = max(seq, max_seq.get(subject, 0))
        want = expected.get((subject, seq))
        if want is not None and want[0] != hash_:
            finding(
                subject,
                seq,
                "record_changed",
                f"record {seq} is not the one checkpoint {want[1] + 1} signed (the chain was rewritten)",
                want[1],
                rid,
            )
        if seq > covered.get(subject, (0, None))[0] and created_at < cutoff:
            if subject in covered:
                finding(
                    subject,
                    seq,
                    "record_not_in_checkpoint",
                    f"record {seq} is dated {created_at.isoformat()}, before checkpoint {last['n'] + 1} "
                    f"({last['time'].isoformat()}), which ends this chain at {covered[subject][0]} "
                    "(the record was added afterwards)",
                    last["n"],
                    rid,
                )
            else:
                finding(
                    subject,
                    seq,
                    "chain_not_in_checkpoint",
                    f"the chain has records dated before checkpoint {last['n'] + 1} "
                    f"({last['time'].isoformat()}), which does not know it (the chain was added afterwards)",
                    last["n"],
                    rid,
                )
    for subject, (seq, _) in covered.items():
        n = next((cp["n"] for cp in reversed(checkpoints) if subject in cp["heads"]), last["n"])
        if subject not in max_seq:
            found[subject] = {
                "subject": subject,
                "seq": seq,
                "decision_id": None,
                "checkpoint": n,
                "kind": "chain_deleted",
                "problem": f"checkpoint {n + 1} recorded {seq} records "
                "of this chain; none is left (the chain was deleted)",
            }
        elif max_seq[subject] < seq:
            found[subject] = {
                "subject": subject,
                "seq": max_seq[subject],
                "decision_id": None,
                "checkpoint": n,
                "kind": "records_deleted",
                "problem": f"checkpoint {n + 1} recorded {seq} records of "
                f"this chain; it now ends at {max_seq[subject]} (records were deleted)",
            }
    return [found[s] for s in sorted(found)]
