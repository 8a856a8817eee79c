"""Every answer a test server gives is checked against the response the OpenAPI spec declares for its
operation and status (openapi-schema-validator, OpenAPI 3.0 semantics: nullable, formats). So the whole
suite, not only the fuzzing run, proves the declared response schemas: an answer with an undeclared
status, an undeclared media type or a body that doesn't match is a violation the autouse fixture fails on."""

from __future__ import annotations

import json
import re
from functools import lru_cache

from openapi_schema_validator import OAS30Validator, oas30_format_checker

VIOLATIONS: list[str] = []


@lru_cache(maxsize=1)
def _spec() -> dict:
    from api.http.openapi import spec

    return spec()


@lru_cache(maxsize=None)
def _validator(path: str, method: str, status: str, media: str):
    """(validator or None for a body that isn't JSON, problem) for one declared answer."""
    op = _spec()["paths"].get(path, {}).get(method)
    if op is None:
        return None, f"{method.upper()} {path} is not in the spec"
    answer = op["responses"].get(status) or op["responses"].get(status[0] + "XX") or op["responses"].get("default")
    if answer is None:
        return None, f"status {status} is not declared"
    content = answer.get("content")
    if not content:
        return None, None if media == "" else f"status {status} declares no body, got {media}"
    if media == "" and any(m != "application/json" for m in content):
        return None, None  # an empty listing in a text format (CSV, JSON Lines) has no bytes
    if media not in content:
        return None, f"status {status} declares {sorted(content)}, got {media or 'no body'}"
    if media != "application/json":
        return None, None
    schema = {**content[media]["schema"], "components": _spec().get("components", {})}
    return OAS30Validator(schema, format_checker=oas30_format_checker), None


def check(request, response) -> None:
    """Called from the test apps' after_request: records a violation, never changes the answer."""
    rule = request.url_rule
    if rule is None or not (rule.rule.startswith("/v1/") or rule.rule == "/healthz"):
        return
    if request.method in ("HEAD", "OPTIONS") or response.status_code == 304:
        return
    path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
    media = (response.mimetype or "") if response.status_code != 204 and response.get_data() else ""
    validator, problem = _validator(path, request.method.lower(), str(response.status_code), media)
    where = f"{request.method} {request.full_path.rstrip('?')} → {response.status_code}"
    if problem:
        VIOLATIONS.append(f"{where}: {problem}")
        return
    if validator is None:
        return
    try:
        body = json.loads(response.get_data())
    except ValueError as exc:
        VIOLATIONS.append(f"{where}: not JSON: {exc}")
        return
    error = next(iter(sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "(the body)"
        VIOLATIONS.append(f"{where}: at {at}: {error.message[:300]}")
