"""The console: server-rendered pages (Jinja2 + htmx) for controllers, collectors, sales and auditors.

An HTTP adapter beside api/http (same layer): every page reads through api/reports or api/service,
every change goes through the same use-case functions as the API, with the signed-in person as
the actor. Roles and permissions are the API's (api/service/auth.py PERMISSIONS). See docs/console.md.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import time

from flask import Flask, g, request
from flask.sessions import SecureCookieSessionInterface
from flask_babel import Babel

from ..service.users import DEFAULT_LOCALE, LOCALES

HERE = pathlib.Path(__file__).resolve().parent
IDLE_SECONDS = 30 * 60  # a session unused this long is signed out


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over TLS (or the config says so)."""

    def get_cookie_secure(self, app) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def _secret_key(app: Flask) -> str:
    """SECRET_KEY from the config, else $CREDITCTL_SECRET_KEY, else one kept in var/console-secret
    (created once, 0600) so that every worker process of a deployment signs cookies alike."""
    configured = app.config.get("SECRET_KEY") or os.environ.get("CREDITCTL_SECRET_KEY")
    if configured:
        return configured
    path = pathlib.Path(app.config.get("CONSOLE_SECRET_FILE", "var/console-secret"))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    except FileExistsError:
        pass
    return path.read_text().strip()


def _locale() -> str:
    chosen = g.get("locale") or request.cookies.get("creditctl_lang")
    return chosen if chosen in LOCALES else DEFAULT_LOCALE


def init_app(app: Flask) -> None:
    """Register the console under /console (called by api/http/app.py create_app)."""
    from . import views

    app.config.update(
        SESSION_COOKIE_NAME=app.config.get("CONSOLE_COOKIE_NAME", "creditctl_console"),
        SECRET_KEY=_secret_key(app),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
    )  # the token lives as long as the (idle-limited) session
    app.config.setdefault("CONSOLE_IDLE_SECONDS", IDLE_SECONDS)
    app.config.setdefault("CONSOLE_CLOCK", time.time)
    app.session_interface = _SessionInterface()
    Babel(
        app,
        locale_selector=_locale,
        default_locale=DEFAULT_LOCALE,
        default_translation_directories=str(HERE / "translations"),
    )
    app.register_blueprint(views.bp, url_prefix="/console")
