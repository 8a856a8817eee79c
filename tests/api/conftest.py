"""Fixtures for the HTTP API tests: real databases (SQLite always, PostgreSQL when reachable),
the app built with create_app, one API key per role, and a real threaded HTTP server.

`api` (alias of `shared`) is one app + server per backend for the whole session; tests there use
their own customer ids. `fresh` is a new database + app + server per test, for tests that tamper
with the trail, publish policies or need exact global counts.

PostgreSQL: a fresh database `creditctl_t_<random>` is created per session (more with a suffix
for `fresh`) and dropped at the end. Unreachable → those params are skipped, or fail under CI=true.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets

import pytest

import response_check
from api_harness import SERVER_ERRORS, Api

PG_ADMIN_URL = os.environ.get("CREDITCTL_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")


# ---------------------------------------------------------------------------------------- databases
class _PgDatabases:
    def __init__(self, admin_url: str):
        import psycopg

        self._psycopg = psycopg
        self.admin_url = admin_url
        self.prefix = f"creditctl_t_{secrets.token_hex(5)}"
        self.created: list[str] = []

    def _admin(self):
        return self._psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5)

    def create(self) -> str:
        name = self.prefix if not self.created else f"{self.prefix}_{len(self.created)}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        base = self.admin_url.rsplit("/", 1)[0]
        return f"{base}/{name}"

    def drop_all(self) -> None:
        with self._admin() as conn:
            for name in reversed(self.created):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


def _pg_unreachable_reason() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 — any failure means "not reachable"
        return f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {exc.__class__.__name__}: {exc}"
    return None


class Backend:
    def __init__(self, name: str, new_url):
        self.name = name
        self.new_url = new_url


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request, tmp_path_factory):
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("sqlite")
        counter = itertools.count()
        yield Backend("sqlite", lambda: f"sqlite:///{folder}/creditctl{next(counter)}.sqlite3")
        return
    reason = _pg_unreachable_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"{reason}. CI=true: the PostgreSQL API tests must run in CI, so this is a failure, "
                f"not a skip. Start PostgreSQL or point CREDITCTL_TEST_PG_ADMIN_URL at one.",
                pytrace=False,
            )
        pytest.skip(reason)
    pg = _PgDatabases(PG_ADMIN_URL)
    try:
        yield Backend("postgresql", pg.create)
    finally:
        pg.drop_all()


def _start(backend: Backend) -> Api:
    return Api(backend.name, backend.new_url())


def _stop(api: Api) -> None:
    api.close()


@pytest.fixture(scope="session")
def shared(backend):
    api = _start(backend)
    yield api
    _stop(api)


@pytest.fixture
def api(shared):
    """The session's app and server for this backend (use your own customer ids)."""
    return shared


@pytest.fixture
def fresh(backend):
    """A new database, app and server for this test only."""
    api = _start(backend)
    yield api
    _stop(api)


@pytest.fixture(autouse=True)
def _no_server_errors():
    """Every test also asserts the service answered no request with a 5xx and logged no unhandled error."""

    class _Collect(logging.Handler):
        def __init__(self):
            super().__init__(logging.ERROR)
            self.messages: list[str] = []

        def emit(self, record):
            self.messages.append(self.format(record))

    handler = _Collect()
    logger = logging.getLogger("creditctl")
    logger.addHandler(handler)
    before, declared = len(SERVER_ERRORS), len(response_check.VIOLATIONS)
    yield
    logger.removeHandler(handler)
    new = SERVER_ERRORS[before:]
    if new or handler.messages:
        pytest.fail("the service failed:\n" + "\n".join(new + handler.messages), pytrace=False)
    undeclared = response_check.VIOLATIONS[declared:]
    if undeclared:
        pytest.fail("answers the OpenAPI spec does not declare:\n" + "\n".join(undeclared[:20]), pytrace=False)
