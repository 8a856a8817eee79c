"""Issue 10 A: the trail against someone who can write to the database. Each of the seven hash-aware
rewrites below passes the chain walk alone (the hashes are unkeyed); a signed checkpoint kept outside
the database catches it, and the finding names the subject and the kind of break. A deleted chain head
is a finding and the next decision still goes through (the head is rebuilt, on the record)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from api.errors import DomainError
from api.jobs import scheduler
from api.service import audit
from api.store import checkpoints, trail
from api.store.trail import GENESIS, record_hash
from api_harness import NOW, POLICY_FILE, ROOT, Api, uid


class Clock:
    """A clock the test moves: checkpoints and records get distinct times."""

    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now

    def advance(self, **kw):
        self.now += dt.timedelta(**kw)


@pytest.fixture
def audited(backend, tmp_path):
    key = str(tmp_path / "audit-key")
    checkpoints.generate_key(key)
    clock = Clock()
    api = Api(
        backend.name,
        backend.new_url(),
        clock=clock,
        config={"AUDIT_KEY": key, "AUDIT_CHECKPOINTS": str(tmp_path / "checkpoints.jsonl")},
    )
    api.clock, api.key_file, api.log_file = clock, key, str(tmp_path / "checkpoints.jsonl")
    yield api
    api.close()


def _book(api, n=3):
    """n customers with three decisions each, then a checkpoint well in the past of what follows."""
    cids = []
    for _ in range(n):
        cid = api.customer()
        api.invoice(cid, "1000.00", due=-10)
        api.credit_check(cid, "10.00")
        api.credit_check(cid, "11.00")
        api.clock.advance(seconds=1)
        cids.append(cid)
    api.clock.advance(minutes=10)  # the records are older than the checkpoint by more than its GRACE
    line = audit.checkpoint(api.service)
    assert line["n"] == 0 and line["records"] == 3 * n and line["subjects"] == n
    api.clock.advance(minutes=10)  # past checkpoints.GRACE
    return sorted(cids)


def _verify(api) -> dict:
    r = api.get("/v1/audit/verify", role="auditor")
    assert r.status_code == 200, r.text
    return r.json()


def _rows(conn, subject):
    return [
        dict(r._mapping)
        for r in conn.execute(text("SELECT * FROM decisions WHERE subject = :s ORDER BY seq"), {"s": subject})
    ]


def _values(row) -> dict:
    """A decision row as record_hash() takes it (what an attacker who read trail.py would compute)."""

    def iso(v):
        return v.isoformat() if hasattr(v, "isoformat") else dt.datetime.fromisoformat(str(v)).isoformat()

    as_of = row["as_of"]
    as_of = as_of.isoformat() if hasattr(as_of, "isoformat") else str(as_of)
    return {**row, "as_of": as_of, "created_at": iso(row["created_at"])}


def _rechain(conn, subject, rows):
    """Rewrite `rows` as the whole chain of `subject`: seq 1.., prev_hash and hash recomputed, head moved."""
    conn.execute(text("DELETE FROM decisions WHERE subject = :s"), {"s": subject})
    prev = GENESIS
    for seq, row in enumerate(rows, 1):
        row = {**row, "seq": seq, "prev_hash": prev}
        row["hash"] = record_hash(prev, _values(row))
        conn.execute(
            text(
                "INSERT INTO decisions (id, subject, seq, kind, actor, request_id, as_of, facts, "
                "policy_version, result, outcome, created_at, prev_hash, hash) VALUES (:id, :subject, "
                ":seq, :kind, :actor, :request_id, :as_of, :facts, :policy_version, :result, :outcome, "
                ":created_at, :prev_hash, :hash)"
            ),
            row,
        )
        prev = row["hash"]
    conn.execute(
        text("UPDATE chain_heads SET seq = :n, hash = :h WHERE subject = :s"), {"n": len(rows), "h": prev, "s": subject}
    )


def delete_tail(conn, cid):
    _rechain(conn, cid, _rows(conn, cid)[:-1])


def forge_append(conn, cid):
    rows = _rows(conn, cid)
    forged = {**rows[-1], "id": uid("f").replace("-", ""), "outcome": "approve"}  # dated like the last one
    _rechain(conn, cid, rows + [forged])


def edit_and_rehash(conn, cid):
    rows = _rows(conn, cid)
    rows[1]["outcome"] = "reject"
    _rechain(conn, cid, rows)


def delete_middle_renumber(conn, cid):
    rows = _rows(conn, cid)
    _rechain(conn, cid, rows[:1] + rows[2:])


def delete_chain(conn, cid):
    conn.execute(text("DELETE FROM decisions WHERE subject = :s"), {"s": cid})
    conn.execute(text("DELETE FROM chain_heads WHERE subject = :s"), {"s": cid})


def forge_subject(conn, cid):
    """A new chain, copied from `cid`'s and re-hashed, under a subject the checkpoint never saw."""
    new = f"FORGED-{cid}"
    rows = [{**r, "id": uid("f").replace("-", ""), "subject": new} for r in _rows(conn, cid)]
    conn.execute(text("INSERT INTO chain_heads (subject, seq, hash) VALUES (:s, 0, :g)"), {"s": new, "g": GENESIS})
    _rechain(conn, new, rows)
    return new


def delete_head(conn, cid):
    conn.execute(text("DELETE FROM chain_heads WHERE subject = :s"), {"s": cid})


REWRITES = {
    "delete_tail": (delete_tail, "records_deleted"),
    "forge_append": (forge_append, "record_not_in_checkpoint"),
    "edit_and_rehash": (edit_and_rehash, "record_changed"),
    "delete_middle_renumber": (delete_middle_renumber, "records_deleted"),
    "delete_chain": (delete_chain, "chain_deleted"),
    "forge_subject": (forge_subject, "chain_not_in_checkpoint"),
    "delete_head": (delete_head, "head_missing"),
}


@pytest.mark.parametrize("rewrite", list(REWRITES))
def test_every_hash_aware_rewrite_is_detected_and_named(audited, rewrite):
    api = audited
    cids = _book(api)
    v = _verify(api)
    assert v["ok"] is True and v["findings"] == [] and v["checkpoints"]["count"] == 1, v
    assert v["checkpoints"]["signatures"] == "checked"
    victim = cids[1]
    fn, kind = REWRITES[rewrite]
    with api.engine.begin() as conn:
        subject = fn(conn, victim) or victim
    v = _verify(api)
    assert v["ok"] is False
    assert [(f["subject"], f["kind"]) for f in v["findings"]] == [(subject, kind)], v["findings"]
    if rewrite != "delete_head":
        # the chain walk alone is fooled: only the checkpoint knows
        assert v["broken"] == [], v["broken"]


def test_a_deleted_chain_head_is_rebuilt_on_the_record_not_a_500(audited):
    api = audited
    cids = _book(api, n=2)
    victim = cids[0]
    with api.engine.begin() as conn:
        delete_head(conn, victim)
    before = api.counts()
    r = api.credit_check(victim, "20.00", reserve=True)
    assert r.status_code == 201 and r.json()["reserved"] is True, r.text
    assert api.counts()["decisions"] == before["decisions"] + 2  # the repair record, then the decision
    with api.engine.connect() as conn:
        kinds = [row["kind"] for row in _rows(conn, victim)]
    assert kinds[-2:] == [trail.REPAIR_KIND, "credit_check"]
    v = _verify(api)
    assert [(f["subject"], f["kind"]) for f in v["findings"]] == [(victim, "head_rebuilt")], v["findings"]
    assert v["broken"] == [] and v["ok"] is False


def test_a_head_behind_its_chain_is_rebuilt_in_a_sweep_too(audited):
    api = audited
    cids = _book(api, n=2)
    with api.engine.begin() as conn:
        conn.execute(text("UPDATE chain_heads SET seq = 1, hash = :g WHERE subject = :s"), {"g": GENESIS, "s": cids[1]})
    r = api.post("/v1/sweeps", {"as_of": NOW.date().isoformat()}, role="controller")
    assert r.status_code == 201 and r.json()["errors"] == 0 and r.json()["processed"] == 2, r.text
    v = _verify(api)
    assert [(f["subject"], f["kind"]) for f in v["findings"]] == [(cids[1], "head_rebuilt")], v["findings"]


def test_the_checkpoint_log_itself_is_checked(audited, tmp_path):
    api = audited
    _book(api, n=2)
    api.credit_check(api.customer(), "5.00")
    audit.checkpoint(api.service)
    lines = checkpoints.read_log(api.log_file)
    assert len(lines) == 2 and json.loads(lines[1])["prev"] != GENESIS
    assert len(json.loads(lines[1])["heads"]) == 1  # only the chain that moved

    def write(new_lines):
        with open(api.log_file, "w", encoding="utf-8") as fh:
            fh.write("".join(x + "\n" for x in new_lines))

    edited = json.loads(lines[0])
    edited["records"] += 1
    write([json.dumps(edited, sort_keys=True, separators=(",", ":")), lines[1]])
    kinds = [f["kind"] for f in _verify(api)["findings"]]
    assert "checkpoint_signature" in kinds and "checkpoint_link" in kinds, kinds
    write(lines[1:])  # the first line removed
    assert "checkpoint_link" in [f["kind"] for f in _verify(api)["findings"]]
    write(lines)
    assert _verify(api)["ok"] is True
    other = str(tmp_path / "other-key")
    checkpoints.generate_key(other)
    cps, findings = checkpoints.verify_log(lines, checkpoints.load_public_key(other))
    assert len(cps) == 2 and {f["kind"] for f in findings} == {"checkpoint_key"}


def test_scheduler_job_and_sweep_write_checkpoints(audited):
    api = audited
    cid = api.customer()
    api.invoice(cid, "100.00", due=-3)
    assert [j for j, _, _ in scheduler.JOBS].count("audit-checkpoint") == 1
    trigger = {j: t for j, _, t in scheduler.JOBS}["audit-checkpoint"]
    assert trigger.interval == dt.timedelta(minutes=scheduler.CHECKPOINT_MINUTES)
    if "CREDITCTL_CHECKPOINT_MINUTES" not in os.environ:
        assert scheduler.CHECKPOINT_MINUTES == 60  # hourly unless the operator says
    scheduler._service = api.service
    result = scheduler.audit_checkpoint()
    assert result["outcome"] == "ok" and result["detail"]["records"] == 1, result  # the invoice's decision
    r = api.post("/v1/sweeps", {"as_of": NOW.date().isoformat()}, role="controller")
    assert r.status_code == 201, r.text
    lines = checkpoints.read_log(api.log_file)
    assert len(lines) == 2 and json.loads(lines[1])["records"] == 2  # the sweep's record is signed


def test_checkpoint_without_a_key_is_a_clear_error(backend, tmp_path):
    api = Api(backend.name, backend.new_url(), config={"AUDIT_CHECKPOINTS": str(tmp_path / "cp.jsonl")})
    try:
        with pytest.raises(DomainError) as err:
            audit.checkpoint(api.service)
        assert err.value.code == "E_AUDIT_KEY"
        assert not os.path.exists(tmp_path / "cp.jsonl")
    finally:
        api.close()


def _cli(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


@pytest.mark.stress
def test_cli_keygen_checkpoint_verify(audited, tmp_path):
    api = audited
    cids = _book(api, n=2)
    key, log_file = str(tmp_path / "k2"), str(tmp_path / "cli.jsonl")
    db = ["--database-url", api.database_url, "--policy", POLICY_FILE]
    r = _cli("audit", "keygen", "--out", key, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("-----BEGIN PUBLIC KEY-----"), r.stderr
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    pub = str(tmp_path / "k2.pub")
    with open(pub, "w") as fh:
        fh.write(r.stdout)
    assert _cli("audit", "keygen", "--out", key, cwd=tmp_path).returncode == 2  # never overwritten
    r = _cli("audit", "checkpoint", *db, "--checkpoints", log_file, "--key", key, cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["records"] == 6, r.stderr  # 2 x 3
    r = _cli("audit", "verify", *db, "--checkpoints", log_file, "--public-key", pub, cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True, r.stdout + r.stderr
    with api.engine.begin() as conn:
        delete_tail(conn, cids[0])
    r = _cli("audit", "verify", *db, "--checkpoints", log_file, "--public-key", pub, cwd=tmp_path)
    assert r.returncode == 1 and f"records_deleted: {cids[0]}:" in r.stderr, r.stderr


@pytest.mark.parametrize("inconsistent", ["hash_edited", "ahead"])
def test_an_inconsistent_chain_head_is_a_finding_and_the_next_decision_goes_through(audited, inconsistent):
    """A head row that disagrees with its chain (its hash edited; ahead of the last record, as when the
    tail was deleted) is named by verify, and the customer's next decisions are answered, never a 500."""
    api = audited
    victim = _book(api, n=2)[0]
    with api.engine.begin() as conn:
        if inconsistent == "hash_edited":
            conn.execute(text("UPDATE chain_heads SET hash = :h WHERE subject = :s"), {"h": "f" * 64, "s": victim})
        else:
            conn.execute(text("UPDATE chain_heads SET seq = seq + 1 WHERE subject = :s"), {"s": victim})
    kinds = {f["kind"] for f in _verify(api)["findings"] if f["subject"] == victim}
    assert kinds & {"head_mismatch", "records_deleted"}, kinds
    r = api.credit_check(victim, "20.00", reserve=True)
    assert r.status_code == 201 and r.json()["reserved"] is True, r.text
    api.invoice(victim, "30.00", due=20)
    v = _verify(api)
    # the next record links to the head as it was found: the break stays named where it is
    want = {"hash_edited": ("prev_hash_mismatch", 4), "ahead": ("seq_gap", 5)}[inconsistent]
    assert [(f["subject"], f["kind"], f["seq"]) for f in v["findings"]] == [(victim, *want)], v["findings"]
