"""What every route needs from the request: the JSON body, the caller's key, the JSON answer,
and the process's unit of work. Routes import this module; it imports no route."""
from __future__ import annotations

import codecs
import json
import re

from flask import Response, current_app, g, request

from engine.reasons import LOCALES
from rules.money import JsonFloat

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


def reader_locale() -> str:
    """The locale a decision's reasons are rendered in for this request (engine/reasons.py): `?locale=en|zh`,
    else the first of en / zh in Accept-Language (zh-CN, zh-TW … are zh), else en. docs/api.md: Locale."""
    asked = request.args.get("locale")
    if asked is not None:
        if asked not in LOCALES:
            raise invalid({"locale": [f"one of {', '.join(LOCALES)}"]})
        return asked
    for tag, _quality in request.accept_languages:          # best first
        primary = tag.split("-")[0].split("_")[0].lower()
        if primary in LOCALES:
            return primary
    return "en"


def json_response(body, status=200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, sort_keys=True, default=str), status,
                    mimetype="application/json")


# Bodies: JSON is UTF-8 (RFC 8259), one object, nested at most this deep (Python's parser recurses per level)
MAX_JSON_DEPTH = 32
MAX_BODY_BYTES = 1024 * 1024            # Flask MAX_CONTENT_LENGTH (api/http/app.py): larger is 413
# a string, or an unterminated one to the end: every match succeeds where it starts (possessive, no
# backtracking), so the scan is linear even for '"\\"\\"\\…'
_STRINGS = re.compile(r'"(?:[^"\\]|\\[\s\S]?)*+(?:"|\Z)')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_LEAVES = re.compile(r"\[\]|\{\}")
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class _DuplicateKey(Exception):
    pass


def _object(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _DuplicateKey(key)
    return out


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects nest deeper than `limit`, found without recursion: strings are dropped, then
    each pass removes the innermost empty brackets, one level per pass (a C-speed regex pass each)."""
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    for level in range(limit):
        if not brackets:
            return False
        brackets, removed = _LEAVES.subn("", brackets)
        if not removed:             # unbalanced (never valid JSON): the parser may still open each one left
            return level + brackets.count("[") + brackets.count("{") > limit
    return bool(brackets)


def json_body() -> dict:
    """The request's JSON object: UTF-8 `application/json`, no duplicate keys, at most MAX_JSON_DEPTH deep; numbers
    with a fraction or exponent are exact `JsonFloat`s, which amounts refuse (rules/money.py)."""
    raw = request.get_data(cache=True)
    if not raw:
        raise DomainError("E_BAD_REQUEST", "a JSON body is required")
    mimetype = request.mimetype
    if mimetype != "application/json" and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
        raise DomainError("E_UNSUPPORTED_MEDIA_TYPE",
                          f"the body must be JSON (Content-Type: application/json), not {mimetype or 'untyped'}")
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise DomainError("E_UNSUPPORTED_MEDIA_TYPE", f"JSON is UTF-8, not {charset}")
    if raw.startswith(codecs.BOM_UTF8):
        raise DomainError("E_MALFORMED_JSON", "malformed JSON: the body starts with a byte order mark (send UTF-8 "
                                              "without one)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DomainError("E_MALFORMED_JSON", f"malformed JSON: not UTF-8 (byte {exc.start})") from None
    if json_depth_exceeds(text):
        raise DomainError("E_JSON_DEPTH", f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(text, parse_float=JsonFloat, object_pairs_hook=_object)
    except _DuplicateKey as exc:
        key = _printable(exc.args[0])
        raise DomainError("E_JSON_DUPLICATE_KEY", f"the key '{key}' appears twice in one JSON object",
                          {key: ["appears more than once in the same object"]}) from None
    except ValueError as exc:       # JSONDecodeError, and an integer of more digits than Python converts
        raise DomainError("E_MALFORMED_JSON", f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DomainError("E_BAD_REQUEST", "the body must be a JSON object")
    bad = _bad_text_fields(data)
    if bad:
        raise invalid({f: ["must not contain NUL characters or lone surrogates (text is Unicode scalar values)"]
                       for f in bad})
    return data


def _printable(text: str) -> str:
    return _BAD_TEXT.sub(lambda m: "\\x00" if m[0] == "\x00" else f"\\u{ord(m[0]):04x}", text)


def _bad_text_fields(value, path: str = "") -> list[str]:
    """Where a JSON value holds a NUL character (PostgreSQL text cannot store one) or a lone surrogate ("\\ud800"
    in JSON: no UTF-8 encodes it, so the database would fail on it)."""
    if isinstance(value, str):
        return [path or "_"] if _BAD_TEXT.search(value) else []
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            p = f"{path}.{k}" if path else k
            out += [_printable(p)] if _BAD_TEXT.search(k) else _bad_text_fields(v, p)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _bad_text_fields(v, f"{path}[{i}]")
    return out


def current_key(permission: str) -> auth.Principal:
    extensions = current_app.extensions
    service = extensions["creditctl"]
    key = auth.authenticate(extensions["creditctl.keys"], service.read_tx, request.headers.get("Authorization"),
                            service.clock())
    g.actor = key.name            # before the permission check: the access log names a refused key too
    g.role = key.role
    auth.require(key, permission)
    return key
