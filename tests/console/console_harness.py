"""Fixtures for the console's end-to-end tests: a real server per test (create_app on SQLite or
PostgreSQL, werkzeug on 127.0.0.1, see tests/api/api_harness.py), console users per role, and a
real browser (Playwright driving Debian's /usr/bin/chromium; Playwright never downloads one).

Screenshots of the pages go to var/screenshots/ (git-ignored)."""

from __future__ import annotations

import itertools
import os
import pathlib
import secrets
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "api"))

from api_harness import SERVER_ERRORS, Api  # noqa: E402

from api.service import users  # noqa: E402

PG_ADMIN_URL = os.environ.get("CREDITCTL_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "var" / "screenshots"
PASSWORD = "correct horse battery"
# one console user per role; "collector" is the back-office role that works the worklist
PEOPLE = {
    "controller": "王经理",
    "backoffice": "li.collector",
    "sales": "zhang.sales",
    "auditor": "audit.chen",
    "admin": "root.admin",
}


class _Pg:
    def __init__(self):
        import psycopg

        self.psycopg, self.prefix, self.created = psycopg, f"creditctl_c_{secrets.token_hex(5)}", []

    def create(self) -> str:
        name = f"{self.prefix}_{len(self.created)}"
        with self.psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"

    def drop_all(self):
        with self.psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_reason() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 — any failure means "not reachable"
        return f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {exc}"
    return None


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_factory(request, tmp_path_factory):
    if request.param == "sqlite":
        folder, counter = tmp_path_factory.mktemp("console"), itertools.count()
        yield "sqlite", lambda: f"sqlite:///{folder}/console{next(counter)}.sqlite3"
        return
    reason = _pg_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: the PostgreSQL console tests must run)", pytrace=False)
        pytest.skip(reason)
    pg = _Pg()
    try:
        yield "postgresql", pg.create
    finally:
        pg.drop_all()


class Clock:
    """The console's wall clock for idle expiry (seconds); tests move it forward."""

    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def console(db_factory, tmp_path):
    backend, new_url = db_factory
    clock = Clock()
    api = Api(
        backend,
        new_url(),
        config={
            "SECRET_KEY": "console-tests-" + secrets.token_hex(8),
            "CONSOLE_CLOCK": clock,
            "CONSOLE_IDLE_SECONDS": 600,
        },
    )
    api.clock = clock
    api.people = dict(PEOPLE)
    for role, name in PEOPLE.items():
        users.create_user(api.service, name, role, PASSWORD)
    yield api
    api.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    yield pg
    context.close()


def shot(page, backend: str, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{backend}-{name}.png"), full_page=True)


def sign_in(page, api, role: str) -> None:
    page.goto(api.base_url + "/console/sign-in")
    page.fill("input[name=name]", api.people[role])
    page.fill("input[name=password]", PASSWORD)
    page.click("#sign-in")
    page.wait_for_selector("span.who")


def nav_labels(page) -> list[str]:
    return [t.strip() for t in page.locator("header nav a").all_inner_texts()]


@pytest.fixture(autouse=True)
def _no_server_errors():
    before = len(SERVER_ERRORS)
    yield
    assert SERVER_ERRORS[before:] == []
