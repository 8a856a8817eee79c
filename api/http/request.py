"""What every route needs from the request: the JSON body, the caller's key, the JSON answer,
and the process's unit of work. Routes import this module; it imports no route."""
from __future__ import annotations

import json
from decimal import Decimal

from flask import Response, current_app, g, request

from ..errors import DomainError, invalid
from ..service import auth


def ctx():
    """The use cases' unit of work (api/service/context.py), built by create_app."""
    return current_app.extensions["creditctl"]


def metrics():
    return current_app.extensions["creditctl.metrics"]


def actor() -> str:
    return g.actor


def request_id() -> str:
    return g.request_id


def json_response(body, status=200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, sort_keys=True, default=str), status,
                    mimetype="application/json")


def json_body() -> dict:
    """The request's JSON with exact decimals (numbers never become floats)."""
    raw = request.get_data(cache=True)
    if not raw:
        raise DomainError("E_BAD_REQUEST", "a JSON body is required")
    try:
        data = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DomainError("E_MALFORMED_JSON", f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DomainError("E_BAD_REQUEST", "the body must be a JSON object")
    bad = _nul_fields(data)
    if bad:
        raise invalid({f: ["must not contain NUL characters"] for f in bad})
    return data


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
    g.actor = key.name            # before the permission check: the access log names a refused key too
    g.role = key.role
    auth.require(key, permission)
    return key
