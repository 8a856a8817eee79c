"""What each worker process keeps between requests, and how soon a change elsewhere reaches it:
verified API keys (api/service/auth.py KeyCache: off by default, so a revocation is refused at once; opted into
here with KEY_CACHE_SECONDS, a revoked key works at most that long) and the active policy (read once
per transaction, so a publish is live in every worker for the next request). "Another worker" is a
second app on the same database with its own HTTP server, as a gunicorn worker would be."""

from __future__ import annotations

import contextlib
import threading

import pytest
import requests
from sqlalchemy import event, update
from werkzeug.serving import make_server

from api.store import database as db
from api.http.app import create_app
from api.service.auth import hash_key
from api.store.tables import ApiKey
from api_harness import POLICY_FILE, Api, fixed_clock
from test_api_policies import with_high_limit


KEY_CACHE_SECONDS = 5.0  # the cache a deployment may opt into (the default, 0, checks every request)


class FakeMonotonic:
    """The key cache's clock, moved by hand: expiry is tested without waiting."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.contextmanager
def another_worker(api: Api, **config):
    """A second app (no migration, policy file already published) with its own HTTP server."""
    app = create_app(
        {"DATABASE_URL": api.database_url, "POLICY_FILE": POLICY_FILE, "CLOCK": fixed_clock, "MIGRATE": False, **config}
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    http = requests.Session()
    base = f"http://127.0.0.1:{server.server_port}"

    def call(method, path, role, **kw):
        return http.request(
            method, base + path, headers={"Authorization": f"Bearer {api.keys[role]}"}, timeout=60, **kw
        )

    try:
        yield call
    finally:
        http.close()
        server.shutdown()
        thread.join(10)
        server.server_close()
        app.extensions["creditctl.engine"].dispose()


@pytest.fixture
def clocked(backend):
    """A fresh database and server with the opt-in key cache, on a FakeMonotonic clock."""
    clock = FakeMonotonic()
    api = Api(
        backend.name, backend.new_url(), config={"KEY_CACHE_CLOCK": clock, "KEY_CACHE_SECONDS": KEY_CACHE_SECONDS}
    )
    api.key_clock = clock
    yield api
    api.close()


def _revoke(api: Api, role: str) -> None:
    with api.service.tx() as s:
        s.execute(update(ApiKey).where(ApiKey.name == api.key_names[role]).values(revoked=True))


def test_a_revoked_key_stops_working_within_key_cache_seconds(clocked):
    api = clocked
    assert api.get("/v1/audit/verify", role="auditor").status_code == 200  # now cached by this worker
    _revoke(api, "auditor")
    with another_worker(api) as other:
        # a worker that has not verified the key refuses it at once
        r = other("GET", "/v1/audit/verify", "auditor")
        assert r.status_code == 401 and r.json()["code"] == "E_UNAUTHENTICATED"
        assert other("GET", "/v1/audit/verify", "admin").status_code == 200
    # the worker that verified it may accept it until KEY_CACHE_SECONDS after that verification …
    api.key_clock.now += KEY_CACHE_SECONDS - 0.01
    assert api.get("/v1/audit/verify", role="auditor").status_code == 200
    # … and no longer
    api.key_clock.now += 0.01
    r = api.get("/v1/audit/verify", role="auditor")
    assert r.status_code == 401 and r.json()["code"] == "E_UNAUTHENTICATED"
    # refusals are not cached: the other keys still work, and keep failing for the revoked one
    assert api.get("/v1/audit/verify", role="admin").status_code == 200
    assert api.get("/v1/audit/verify", role="auditor").status_code == 401


def test_a_cached_key_is_looked_up_again_once_it_expires(clocked):
    """Within the TTL a known key costs no query; after it, one query renews it."""
    api = clocked
    assert api.get("/v1/audit/verify", role="auditor").status_code == 200
    lookups = []

    def count(conn, cursor, statement, *args):
        if "api_keys" in statement:
            lookups.append(statement)

    event.listen(api.engine, "before_cursor_execute", count)
    try:
        for _ in range(3):
            assert api.get("/v1/audit/verify", role="auditor").status_code == 200
        assert lookups == []
        api.key_clock.now += KEY_CACHE_SECONDS
        for _ in range(3):
            assert api.get("/v1/audit/verify", role="auditor").status_code == 200
        assert len(lookups) == 1
    finally:
        event.remove(api.engine, "before_cursor_execute", count)


def test_unknown_keys_are_not_cached(clocked):
    """A key refused because it did not exist yet works as soon as it is stored (no negative caching)."""
    api = clocked
    raw = "cc_auditor_stored-after-first-use"
    headers = {"Authorization": f"Bearer {raw}"}
    assert api.get("/v1/audit/verify", role=None, headers=headers).status_code == 401
    with api.service.tx() as s:
        s.add(ApiKey(name="late-key", role="auditor", key_hash=hash_key(raw), created_at=fixed_clock(), revoked=False))
    assert api.get("/v1/audit/verify", role=None, headers=headers).status_code == 200


def test_key_cache_seconds_zero_checks_every_request(backend):
    api = Api(backend.name, backend.new_url(), config={"KEY_CACHE_SECONDS": 0})
    try:
        assert api.get("/v1/audit/verify", role="auditor").status_code == 200
        _revoke(api, "auditor")
        assert api.get("/v1/audit/verify", role="auditor").status_code == 401
    finally:
        api.close()


def test_a_publish_in_one_worker_is_live_in_another_at_once(fresh):
    api = fresh
    cid = api.customer()
    with another_worker(api) as other:
        before = other(
            "POST",
            "/v1/credit-checks",
            "sales",
            json={"customer_id": cid, "order_id": "O-before", "amount": "10.00", "currency": "CNY"},
        )
        assert before.status_code == 201 and before.json()["limit"] == "500000.00", before.text
        r = api.post("/v1/policies", {"text": with_high_limit(410000), "source": "elsewhere"}, role="controller")
        assert r.status_code == 201, r.text
        v2 = r.json()["version"]
        after = other(
            "POST",
            "/v1/credit-checks",
            "sales",
            json={"customer_id": cid, "order_id": "O-after", "amount": "10.00", "currency": "CNY"},
        )
        assert after.status_code == 201, after.text
        assert (after.json()["policy_version"], after.json()["limit"]) == (v2, "410000.00")
        assert other("GET", f"/v1/customers/{cid}", "sales").json()["credit"]["limit"] == "410000.00"


def test_the_active_policy_is_read_once_per_transaction(fresh):
    """Later asks in the same transaction agree with the first (and cost no query); the session's next
    transaction reads the row again and sees a publish committed in between."""
    api = fresh
    registry, sessionmaker = api.service.registry, api.service.sessionmaker
    reads = []

    def count(conn, cursor, statement, *args):
        if "policy_state" in statement:
            reads.append(statement)

    session = sessionmaker()
    try:
        event.listen(api.engine, "before_cursor_execute", count)
        with session.begin():
            v1 = registry.active(session).version
            assert registry.active(session).version == v1 and len(reads) == 1
        with api.service.tx() as s:
            v2 = registry.publish(s, with_high_limit(420000), "elsewhere", "test", fixed_clock())[0].version
        assert v2 != v1
        reads.clear()
        with session.begin():
            assert registry.active(session).version == v2
            assert registry.active_version(session) == v2 and len(reads) == 1
    finally:
        event.remove(api.engine, "before_cursor_execute", count)
        session.close()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # SQLite has no server to drop connections
def test_an_idle_postgresql_connection_that_died_is_replaced(fresh, monkeypatch):
    """Without pool_pre_ping: a pooled connection idle longer than PING_IDLE_SECONDS is pinged at checkout,
    and one the server dropped meanwhile is replaced before a request uses it."""
    api = fresh
    import psycopg

    cid = api.customer()
    assert api.credit_check(cid, "10.00").status_code == 201  # the pool now holds live connections
    with psycopg.connect(api.database_url, autocommit=True) as admin:
        dropped = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    assert dropped and all(ok for (ok,) in dropped)
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)  # every pooled connection counts as idle
    r = api.credit_check(cid, "10.00")
    assert r.status_code == 201, r.text
    assert api.get("/v1/audit/verify", role="auditor").status_code == 200
