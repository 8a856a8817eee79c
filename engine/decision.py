"""The decision: an immutable record with its canonical JSON (sorted keys, UTF-8, no floats),
so the same policy version and facts always give byte-identical output."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

try:
    import orjson
except ImportError:          # an environment installed before orjson became a dependency
    orjson = None

# orjson is several times faster and writes the same bytes for what a decision holds: dicts with
# str keys, lists, str, int, bool, None. A decision never holds a float (money is a decimal
# string; orjson would write some floats differently, e.g. 1e16). Types the stdlib encoder refuses
# but orjson would write (dataclasses, dates, subclasses) are passed to _refuse, and orjson refuses
# non-str keys, ints beyond 64 bits and lone surrogates itself: all of these take the stdlib path,
# which gives the output, or the error, it always gave. tests/test_canonical_json.py compares the
# two on every decision of tests/policy/ and the property-test generators.
_ORJSON_OPTIONS = 0 if orjson is None else (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS
                                            | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS)


def _refuse(value):
    raise TypeError(type(value).__name__)


def canonical_json_stdlib(data) -> str:
    """The definition of the canonical form: sorted keys, UTF-8 text, compact separators."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _loads(text: str):
    # orjson reads a decision (str, int, bool, None, lists, dicts; no floats, ints within 64 bits) into the
    # same objects as json.loads, several times faster; anything it refuses takes the stdlib path
    if orjson is not None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def canonical_json(data) -> str:
    if orjson is not None:
        try:
            return orjson.dumps(data, default=_refuse, option=_ORJSON_OPTIONS).decode()
        except TypeError:          # orjson.JSONEncodeError is a TypeError
            pass
    return canonical_json_stdlib(data)


@dataclass(frozen=True)
class Decision:
    json: str

    @cached_property
    def data(self) -> dict:
        return _loads(self.json)

    def as_dict(self) -> dict:
        return _loads(self.json)

    @property
    def policy_version(self) -> str:
        return self.data["policy_version"]

    @property
    def outcome(self) -> str | None:
        check = self.data["credit"].get("check")
        return check["outcome"] if check else None

    def get(self, dotted: str):
        """Value at a dotted path, e.g. 'credit.check.outcome' or 'dunning.actions[0].type'."""
        node = self.data
        for part in _split(dotted):
            node = node[part]
        return node


def _split(dotted: str):
    for piece in dotted.split("."):
        while "[" in piece:
            head, rest = piece.split("[", 1)
            if head:
                yield head
            index, piece = rest.split("]", 1)
            yield int(index)
        if piece:
            yield piece
