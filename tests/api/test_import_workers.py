"""The import's decide phase in worker processes (run_import(workers=2)): the same decisions, byte for byte,
as in one process, each customer decided once, chains intact; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
import json

from sqlalchemy import select

from api.jobs.importer.reader import Source
from api.jobs.importer.run import DECIDE_GROUP, run_import
from api.store.tables import DecisionRecord
from api_harness import Api

AS_OF = dt.date(2026, 11, 30)


def _book(customers: int) -> list[Source]:
    c = ["id,name,type,industry,region,size,since"]
    i = ["id,customer_id,amount,currency,issued_on,due_on"]
    for k in range(customers):
        cid = f"W{k:05d}"
        c.append(f"{cid},客户{k},enterprise,services,local,small,2020-01-01")
        for j in range(2):
            issued = AS_OF - dt.timedelta(days=(k * 7 + j * 31) % 120)
            i.append(f"{cid}-{j},{cid},{1000 + k}.{j:02d},CNY,{issued},{issued + dt.timedelta(days=30)}")
    files = {"customers.csv": "\n".join(c) + "\n", "invoices.csv": "\n".join(i) + "\n"}
    return [Source(name, (lambda text=text: io.BytesIO(text.encode("utf-8")))) for name, text in files.items()]


def _decisions(api) -> dict[str, tuple]:
    with api.service.read_tx() as s:
        rows = s.execute(select(DecisionRecord).where(DecisionRecord.kind == "import")).scalars().all()
    return {r.subject: (r.seq, r.outcome, r.facts, r.result) for r in rows}


def test_two_decide_workers_make_the_decisions_one_process_makes(backend):
    n = DECIDE_GROUP + 60  # two groups: both workers get one
    results = {}
    for workers in (1, 2):
        api = Api(backend.name, backend.new_url())
        try:
            got = run_import(api.service, _book(n), actor="test", as_of=AS_OF, workers=workers)
            assert got["status"] == "done" and got["decisions"] == n and got["decision_failures"] == []
            results[workers] = _decisions(api)
            assert api.get("/v1/audit/verify", role="auditor").json()["ok"] is True
            last = api.get("/v1/customers/W00001", params={"as_of": AS_OF.isoformat()}).json()
            assert last["id"] == "W00001"
        finally:
            api.close()
    assert len(results[2]) == n and results[1] == results[2]
    assert {seq for seq, *_ in results[2].values()} == {1}  # one decision per customer
    assert all(json.loads(result)["policy_version"] for *_, result in results[2].values())


def test_a_controllers_score_changes_are_chained_before_the_workers_decisions(backend):
    """Records written in the write phase (credit_file_change) are in the chain heads the workers read: each
    customer's chain is import, credit_file_change, import, and verifies."""
    n = DECIDE_GROUP + 10
    api = Api(backend.name, backend.new_url())
    try:
        assert run_import(api.service, _book(n), actor="test", as_of=AS_OF)["decisions"] == n
        scored = ["id,name,type,industry,region,size,since,credit_score"] + [
            f"W{k:05d},客户{k},enterprise,services,local,small,2020-01-01,{50 + k % 40}" for k in range(n)
        ]
        source = Source("customers.csv", lambda: io.BytesIO(("\n".join(scored) + "\n").encode("utf-8")))
        got = run_import(
            api.service, [source], actor="controller-x", as_of=AS_OF, workers=2, role="controller", reason="年度评估"
        )
        assert got["status"] == "done" and got["decisions"] == n and got["decision_failures"] == [], got
        with api.service.read_tx() as s:
            rows = s.execute(
                select(DecisionRecord.subject, DecisionRecord.seq, DecisionRecord.kind).order_by(
                    DecisionRecord.subject, DecisionRecord.seq
                )
            ).all()
        chains: dict = {}
        for subject, _seq, kind in rows:
            chains.setdefault(subject, []).append(kind)
        assert len(chains) == n and set(map(tuple, chains.values())) == {("import", "credit_file_change", "import")}
        assert api.get("/v1/audit/verify", role="auditor").json()["ok"] is True
    finally:
        api.close()
