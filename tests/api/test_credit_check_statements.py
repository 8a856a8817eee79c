"""How many SQL statements one credit check sends, per shape of check (issue 8: the credit check's SQL).

An upper bound per shape and backend, counted by a `before_cursor_execute` listener on the service's engine
around one request (BEGIN included, the key's lookup too): a change that adds a statement to every check
fails here, whatever it costs in time. The shapes: a plain check, a reserving check that approves, a check
that refers (the referral written), and a group member's reserving check; each on a customer that has been
checked before (its chain head and segment rows there, as for almost every check)."""
from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import event

from api_harness import uid

# statements per check: (SQLite, PostgreSQL). SQLite: BEGIN + the key; the read (BEGIN, the customers' rows,
# read_check); under the write lock BEGIN IMMEDIATE, read_check again, the record, the head, last_*, the
# reservation, the order. PostgreSQL: the key; the group's lock, the customer's, read_check; the head moved
# with the record in one statement; last_*, the reservation / referral and the order in one
BOUNDS = {"plain": (11, 6), "reserve": (12, 6), "refer": (12, 6), "group": (12, 7)}


@contextlib.contextmanager
def _counted(api):
    seen: list[str] = []

    def count(conn, cursor, statement, *_):
        seen.append(" ".join(statement.split())[:120])
    event.listen(api.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(api.engine, "before_cursor_execute", count)


def _check(api, cid, amount, **kw):
    r = api.credit_check(cid, amount, **kw)
    assert r.status_code == 201, r.text
    return r.json()


def _group(api, members) -> str:
    gid = uid("G")
    r = api.put(f"/v1/groups/{gid}", {"name": "集团 test group", "limit": "5000000.00", "reason": "集团授信"},
                role="controller")
    assert r.status_code in (200, 201), r.text
    for cid in members:
        r = api.put(f"/v1/customers/{cid}/group", {"group_id": gid, "reason": "subsidiary"}, role="controller")
        assert r.status_code == 200, r.text
    return gid


@pytest.mark.parametrize("shape", sorted(BOUNDS))
def test_statements_per_credit_check(api, shape):
    cid = api.customer()
    if shape == "group":
        _group(api, [cid, api.customer()])
    _check(api, cid, "1000.00", reserve=True)          # the customer checked before: head and segments there
    with _counted(api) as seen:
        if shape == "plain":
            body = _check(api, cid, "1000.00")
            assert body["outcome"] in ("approve", "approve_with_conditions") and body["reserved"] is False
        elif shape == "reserve":
            body = _check(api, cid, "2000.00", reserve=True)
            assert body["reserved"] is True
        elif shape == "refer":
            body = _check(api, cid, "455000.00", reserve=True)       # > 90 % of the 500,000 limit: refer
            assert body["outcome"] == "refer" and body["referral"]["status"] == "open"
        else:
            body = _check(api, cid, "3000.00", reserve=True)
            assert body["reserved"] is True and body["group"]["limit"] == "5000000.00"
    bound = BOUNDS[shape][api.backend != "sqlite"]
    listing = "\n".join(f"{i:3d}. {st}" for i, st in enumerate(seen, 1))
    assert len(seen) <= bound, f"{shape} check on {api.backend}: {len(seen)} statements > {bound}:\n{listing}"
    print(f"{shape} {api.backend}: {len(seen)}\n{listing}")
