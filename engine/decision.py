"""The decision: an immutable record with its canonical JSON (sorted keys, UTF-8, no floats),
so the same policy version and facts always give byte-identical output."""
from __future__ import annotations

import json
from functools import cached_property

from .reasons import render, render_reasons

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


FORMAT = 2          # the stored form's "format": reasons as data (format 1, no marker: reasons as English text)


class Decision:
    """One evaluation's decision. `body` holds the reasons as data (engine/reasons.py): what the trail stores
    (`stored`, format 2). Readers get it rendered in a locale (`render`); `data` and `json` are the English
    rendering, byte-identical to the decision before reasons became structured (format 1). Nothing changes
    a Decision once made: `body` and what is derived from it are not to be modified."""

    __slots__ = ("body", "policy", "__dict__")

    def __init__(self, body: dict, policy):
        self.body, self.policy = body, policy

    @classmethod
    def from_stored(cls, text: str, policy) -> "Decision":
        """The decision of a stored format-2 result (`stored`), to render with the policy version it names."""
        body = _loads(text)
        body.pop("format", None)
        return cls(body, policy)

    @cached_property
    def stored(self) -> str:
        """The canonical JSON the trail keeps: the body with its reasons as data, marked "format": 2."""
        return canonical_json({**self.body, "format": FORMAT})

    @cached_property
    def data(self) -> dict:
        """The decision in English, as clients read it (the format-1 shape)."""
        return render(self.body, self.policy)

    @cached_property
    def json(self) -> str:
        """The canonical JSON of `data`: the bytes of format 1."""
        return canonical_json(self.data)

    def as_dict(self) -> dict:
        return _loads(self.json)

    def render(self, locale: str = "en") -> dict:
        """The decision as a reader in `locale` ("en", "zh") reads it."""
        if locale == "en":
            return self.data
        return render(self.body, self.policy, locale)

    def reasons(self, locale: str = "en", family: str | None = None) -> list[dict]:
        """The reasons (of one family, if given) rendered in `locale`, without rendering the rest."""
        if locale == "en" and "data" in self.__dict__:
            return [r for r in self.data["reasons"] if family is None or r["family"] == family]
        return render_reasons(self.body["reasons"], self.policy, locale, family)

    @property
    def policy_version(self) -> str:
        return self.body["policy_version"]

    @property
    def outcome(self) -> str | None:
        check = self.body["credit"].get("check")
        return check["outcome"] if check else None

    def get(self, dotted: str):
        """Value at a dotted path of the English decision, e.g. 'credit.check.outcome' or 'dunning.actions[0].type'."""
        node = self.data
        for part in _split(dotted):
            node = node[part]
        return node


def stored_format(result) -> int:
    """The format of a stored result: 2 when it carries the marker, else 1 (records before structured reasons,
    and records of kinds that hold no decision)."""
    return result.get("format", 1) if isinstance(result, dict) else 1


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
