"""create_app(config): the Flask application. Configuration is passed in, never a global."""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import uuid
from decimal import Decimal

from flask import Flask, Response, current_app, g, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from engine.errors import InputInvalid, PolicyInvalid

from . import auth
from .db import make_engine, make_sessionmaker, migrate
from .errors import ApiError, invalid, marshmallow_errors
from .metrics import Metrics
from .policies import PolicyRegistry
from .service import Service

log = logging.getLogger("creditctl")


def create_app(config: dict | None = None) -> Flask:
    app = Flask("creditctl")
    app.config.update({"DATABASE_URL": "sqlite:///var/creditctl.sqlite3", "POLICY_FILE": "policies.yaml",
                       "MIGRATE": True, "LOAD_POLICY_FILE": True})
    app.config.update(config or {})
    engine = make_engine(app.config["DATABASE_URL"])
    if app.config["MIGRATE"]:
        migrate(engine)
    service = Service(make_sessionmaker(engine), PolicyRegistry(), app.config.get("CLOCK"))
    app.extensions["creditctl"] = service
    app.extensions["creditctl.engine"] = engine
    # verified API keys, per process: see api/auth.py for how soon a revocation takes effect
    app.extensions["creditctl.keys"] = auth.KeyCache(app.config.get("KEY_CACHE_SECONDS", auth.KEY_CACHE_SECONDS),
                                                     app.config.get("KEY_CACHE_CLOCK") or time.monotonic)
    metrics = Metrics()
    app.extensions["creditctl.metrics"] = metrics
    if app.config["LOAD_POLICY_FILE"] and app.config.get("POLICY_FILE"):
        load_policy_file(app)

    @app.before_request
    def _start():
        g.started = time.perf_counter()
        rid = request.headers.get("X-Request-Id", "")
        # recorded in the trail (64 characters): a longer or unprintable id is replaced, not an error
        g.request_id = rid if _REQUEST_ID.fullmatch(rid) else uuid.uuid4().hex
        # PostgreSQL text cannot hold NUL: no id contains one, and no filter may
        if "\x00" in request.path:
            raise ApiError(404, "E_NOT_FOUND", "not found (the path contains a NUL character)")
        bad = sorted({k for k, v in request.args.items(multi=True) if "\x00" in k + v})
        if bad:
            raise invalid({k.replace("\x00", "\\x00"): ["must not contain NUL characters"] for k in bad})

    @app.after_request
    def _finish(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        rule = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.observe(request.method, rule, response.status_code, time.perf_counter() - g.get("started", 0))
        return response

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return _json(exc.body(), exc.status)

    @app.errorhandler(InputInvalid)
    def _input_invalid(exc: InputInvalid):
        return _json({"code": exc.code, "message": str(exc), "errors": exc.by_field()}, 422)

    @app.errorhandler(PolicyInvalid)
    def _policy_invalid(exc: PolicyInvalid):
        return _json({"code": exc.code, "message": f"the policy has {len(exc.errors)} error(s)",
                      "errors": {"policy": [e.format() for e in exc.errors]},
                      "policy_errors": [e.to_dict() for e in exc.errors]}, 422)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        return _json({"code": "E_INPUT_INVALID", "message": "the request is invalid",
                      "errors": marshmallow_errors(exc.messages)}, 422)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = {404: "E_NOT_FOUND", 405: "E_METHOD_NOT_ALLOWED", 400: "E_BAD_REQUEST",
                415: "E_UNSUPPORTED_MEDIA_TYPE", 413: "E_TOO_LARGE"}.get(exc.code, f"E_HTTP_{exc.code}")
        return _json({"code": code, "message": exc.description or exc.name, "errors": {}}, exc.code)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return _json({"code": "E_INTERNAL", "message": "internal error; nothing was changed", "errors": {}}, 500)

    from .routes import register
    register(app)
    return app


def load_policy_file(app) -> tuple[str, bool]:
    """Publish the policy file if it changed since it was last loaded (start and SIGHUP)."""
    service: Service = app.extensions["creditctl"]
    path = app.config["POLICY_FILE"]
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    with service.tx() as s:
        from engine.compiler import compile_policy
        version = compile_policy(text, path)
        try:
            current_file = service.registry.file_version(s)
            if current_file == version.version:
                return version.version, False
        finally:
            version.dispose()
        policy, changed = service.registry.publish(s, text, path, f"file:{path}", service.clock(), from_file=True)
        log.info("policy %s from %s is active", policy.version[:12], path)
        return policy.version, changed


def _json(body, status=200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, sort_keys=True, default=str), status,
                    mimetype="application/json")


def json_body() -> dict:
    """The request's JSON with exact decimals (numbers never become floats)."""
    raw = request.get_data(cache=True)
    if not raw:
        raise ApiError(400, "E_BAD_REQUEST", "a JSON body is required")
    try:
        data = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "E_MALFORMED_JSON", f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "E_BAD_REQUEST", "the body must be a JSON object")
    bad = _nul_fields(data)
    if bad:
        raise invalid({f: ["must not contain NUL characters"] for f in bad})
    return data


_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,64}")


def _nul_fields(value, path: str = "") -> list[str]:
    """Where a JSON value holds a NUL character (PostgreSQL text cannot store one)."""
    if isinstance(value, str):
        return [path or "_"] if "\x00" in value else []
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            p = f"{path}.{k}" if path else k
            out += [p.replace("\x00", "\\x00")] if "\x00" in k else _nul_fields(v, p)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _nul_fields(v, f"{path}[{i}]")
    return out


def current_key(permission: str) -> auth.Principal:
    extensions = current_app.extensions
    key = auth.authenticate(extensions["creditctl.keys"], extensions["creditctl"].read_tx,
                            request.headers.get("Authorization"))
    auth.require(key, permission)
    g.actor = key.name
    g.role = key.role
    return key
