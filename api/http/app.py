"""create_app(config): the Flask application. Configuration is passed in, never a global."""
from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, g, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from engine.errors import InputInvalid, PolicyInvalid

from .. import console
from ..codes import http_status
from ..errors import DomainError, invalid, marshmallow_errors
from ..service import auth, deliveries
from ..service.audit import AuditSettings
from ..service.context import Context
from ..service.policies import load_policy_file as _load_policy_file
from ..service.policies import load_policy_file_or_keep
from ..store.database import make_engine, make_sessionmaker, migrate
from ..store.policy_store import PolicyRegistry
from . import dbretry, routes
from .metrics import Metrics
from .request import MAX_BODY_BYTES, json_response

log = logging.getLogger("creditctl")
access_log = logging.getLogger("creditctl.access")          # one INFO line per request
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,64}")
MAX_IMPORT_BYTES = 64 * 1024 * 1024     # POST /v1/imports: spreadsheets are larger than any JSON body
_WERKZEUG_CODES = {404: "E_NOT_FOUND", 405: "E_METHOD_NOT_ALLOWED", 400: "E_BAD_REQUEST",
                   415: "E_UNSUPPORTED_MEDIA_TYPE", 413: "E_TOO_LARGE"}


def _delivery_settings(config):
    """The outbox worker's settings: DELIVERY / DOCUMENTS from the config, else from the file named by
    CREDITCTL_DELIVERY_CONFIG (docs/delivery.md); neither: the log backend, the sweep marks actions sent."""
    import os

    from ..jobs.outbox import OutboxSettings, load_config_file
    if config.get("DELIVERY") is None and os.environ.get("CREDITCTL_DELIVERY_CONFIG"):
        data = load_config_file(os.environ["CREDITCTL_DELIVERY_CONFIG"])
        config["DELIVERY"] = data.get("delivery") or {}
        if config.get("DOCUMENTS") is None and data.get("documents"):
            config["DOCUMENTS"] = data["documents"]
    return OutboxSettings.from_config(config.get("DELIVERY"), config.get("DOCUMENTS"), config["POLICY_FILE"])


def _simulate_workers(config) -> int:
    """Processes POST /v1/policies/simulate evaluates the book in (docs/simulation.md): SIMULATE_WORKERS,
    else CREDITCTL_SIMULATE_WORKERS, else 1. A bad value stops the start, not a request."""
    import os

    from ..jobs.simulate import MAX_WORKERS
    value = config.get("SIMULATE_WORKERS", os.environ.get("CREDITCTL_SIMULATE_WORKERS") or 1)
    try:
        workers = int(value)
    except (TypeError, ValueError):
        workers = 0
    if isinstance(value, bool) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"SIMULATE_WORKERS / CREDITCTL_SIMULATE_WORKERS: {value!r} is not a number from 1 to "
                         f"{MAX_WORKERS}")
    return workers


def create_app(config: dict | None = None) -> Flask:
    app = Flask("creditctl")
    app.config.update({"DATABASE_URL": "sqlite:///var/creditctl.sqlite3", "POLICY_FILE": "policies.yaml",
                       "MIGRATE": True, "LOAD_POLICY_FILE": True, "MAX_CONTENT_LENGTH": MAX_BODY_BYTES,
                       "MAX_IMPORT_LENGTH": MAX_IMPORT_BYTES})
    app.config.update(config or {})
    app.config["SIMULATE_WORKERS"] = _simulate_workers(app.config)
    delivery = _delivery_settings(app.config)          # before the engine: a bad configuration opens nothing
    engine = make_engine(app.config["DATABASE_URL"])
    if app.config["MIGRATE"]:
        migrate(engine)
    # the audit key and checkpoint log: explicit config (None disables) or the environment (api/service/audit.py)
    audit = AuditSettings.from_env(app.config.get("AUDIT_KEY"), app.config.get("AUDIT_PUBLIC_KEY"),
                                   app.config.get("AUDIT_CHECKPOINTS"))
    if "AUDIT_CHECKPOINTS" in app.config and not app.config["AUDIT_CHECKPOINTS"]:
        audit = AuditSettings()
    app.extensions["creditctl"] = Context(make_sessionmaker(engine), PolicyRegistry(), app.config.get("CLOCK"),
                                          audit=audit)
    app.extensions["creditctl.engine"] = engine
    app.extensions["creditctl"].delivery = delivery
    # verified API keys, per process: see api/service/auth.py for how soon a revocation takes effect
    app.extensions["creditctl.keys"] = auth.KeyCache(app.config.get("KEY_CACHE_SECONDS", auth.KEY_CACHE_SECONDS),
                                                     app.config.get("KEY_CACHE_CLOCK") or time.monotonic)
    metrics = Metrics(app.config.get("METRICS_MULTIPROC_DIR"))
    app.extensions["creditctl.metrics"] = metrics
    metrics.watch_outbox(lambda: deliveries.counters(app.extensions["creditctl"]))
    if app.config["LOAD_POLICY_FILE"] and app.config.get("POLICY_FILE"):
        if app.config.get("POLICY_FILE_FALLBACK"):
            first = app.config.get("POLICY_FAILURE_FIRST") or (lambda what: True)
            status = load_policy_file_or_keep(app.extensions["creditctl"], app.config["POLICY_FILE"], log,
                                              lambda: first("log"))
            app.extensions["creditctl.policy_file"] = status
            # counted once per reload, by a worker (whose values /metrics sums), not by the master at start
            counted = not status["valid"] and (first("count") if metrics.multiproc_dir else status["first_report"])
            metrics.policy_file(status["valid"], counted)
        else:
            load_policy_file(app)

    @app.before_request
    def _start():
        g.started = time.perf_counter()
        if request.endpoint == "imports.post_import":
            request.max_content_length = app.config["MAX_IMPORT_LENGTH"]
        rid = request.headers.get("X-Request-Id", "")
        # recorded in the trail (64 characters): a longer or unprintable id is replaced, not an error
        g.request_id = rid if _REQUEST_ID.fullmatch(rid) else uuid.uuid4().hex
        # PostgreSQL text cannot hold NUL: no id contains one, and no filter may
        if "\x00" in request.path:
            raise DomainError("E_NOT_FOUND", "not found (the path contains a NUL character)")
        bad = sorted({k for k, v in request.args.items(multi=True) if "\x00" in k + v})
        if bad:
            raise invalid({k.replace("\x00", "\\x00"): ["must not contain NUL characters"] for k in bad})

    @app.after_request
    def _finish(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        rule = request.url_rule.rule if request.url_rule else "unmatched"
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        metrics.observe(request.method, rule, response.status_code, seconds)
        access_log.info("%s %s %s %.1fms request_id=%s key=%s role=%s", request.method, request.path,
                        response.status_code, seconds * 1000, g.get("request_id", "-"), g.get("actor") or "-",
                        g.get("role") or "-")
        return response

    register_error_handlers(app)
    routes.register(app)
    console.init_app(app)
    dbretry.install(app, app.extensions["creditctl"].sessionmaker)      # after the routes: it wraps them
    return app


def register_error_handlers(app: Flask) -> None:
    """Every failure answers the one JSON shape {code, message, errors}; the status comes from api/codes.py."""
    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError):
        return json_response(exc.body(), http_status(exc.code))

    @app.errorhandler(InputInvalid)
    def _input_invalid(exc: InputInvalid):
        return json_response({"code": exc.code, "message": str(exc), "errors": exc.by_field()}, http_status(exc.code))

    @app.errorhandler(PolicyInvalid)
    def _policy_invalid(exc: PolicyInvalid):
        return json_response({"code": exc.code, "message": f"the policy has {len(exc.errors)} error(s)",
                              "errors": {"policy": [e.format() for e in exc.errors]},
                              "policy_errors": [e.to_dict() for e in exc.errors]}, http_status(exc.code))

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        return json_response({"code": "E_INPUT_INVALID", "message": "the request is invalid",
                              "errors": marshmallow_errors(exc.messages)}, http_status("E_INPUT_INVALID"))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = _WERKZEUG_CODES.get(exc.code, f"E_HTTP_{exc.code}")
        return json_response({"code": code, "message": exc.description or exc.name, "errors": {}}, exc.code)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return json_response({"code": "E_INTERNAL", "message": "internal error; nothing was changed", "errors": {}},
                             http_status("E_INTERNAL"))


def load_policy_file(app) -> tuple[str, bool]:
    """Publish the policy file if it changed since it was last loaded (start and SIGHUP)."""
    return _load_policy_file(app.extensions["creditctl"], app.config["POLICY_FILE"], log)
