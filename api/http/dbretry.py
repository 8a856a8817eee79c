"""Requests whose database connection died (a restarted server, pg_terminate_backend, a dropped link).

A request that failed on a dead connection before any of its transactions began to commit changed
nothing, so it is run once more (the pool has replaced the dead connections by then). Otherwise (a
commit was under way: it may or may not have landed) or when the retry fails too, the client gets 503
E_DATABASE_UNAVAILABLE with Retry-After; a credit check or event retried with the same order or event
id is safe (api/service/credit_checks.py, api/service/events.py).
"""

from __future__ import annotations

import functools
import logging

from flask import g, has_request_context
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, OperationalError

from ..codes import http_status
from .request import json_response

log = logging.getLogger("creditctl")
RETRY_AFTER_SECONDS = 1


def unavailable(exc: BaseException) -> bool:
    """The database, not the request, failed: a connection found dead, or none to be had."""
    return isinstance(exc, DBAPIError) and (exc.connection_invalidated or isinstance(exc, OperationalError))


def install(app, sessionmaker) -> None:
    @event.listens_for(sessionmaker, "before_commit")
    def _commit_started(session):
        if has_request_context():
            g.db_commit_started = True

    for endpoint, view in list(app.view_functions.items()):
        if endpoint != "static":
            app.view_functions[endpoint] = _retrying(view)

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError):
        if not unavailable(exc):
            log.exception("unhandled error")
            return json_response(
                {"code": "E_INTERNAL", "message": "internal error; nothing was changed", "errors": {}},
                http_status("E_INTERNAL"),
            )
        log.warning("database unavailable: %s", exc.__class__.__name__)
        response = json_response(
            {
                "code": "E_DATABASE_UNAVAILABLE",
                "message": "the database connection failed; retry the request (a credit check or "
                "event with the same order or event id is applied once)",
                "errors": {},
            },
            http_status("E_DATABASE_UNAVAILABLE"),
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def _retrying(view):
    @functools.wraps(view)
    def run(*args, **kwargs):
        g.db_commit_started = False
        try:
            return view(*args, **kwargs)
        except DBAPIError as exc:
            if not (exc.connection_invalidated and not g.db_commit_started):
                raise
            log.warning("database connection lost before any commit; retrying the request once")
        g.db_commit_started = False
        return view(*args, **kwargs)

    return run
