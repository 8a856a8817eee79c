"""durable_rules as a stateless matcher (see docs/durable-rules.md for why it is used this way).

One C ruleset per (policy version, phase), one fixed state id, one lock. A match asserts one
fact with a fresh id, drains every activation (rule names, in (pri, definition) order),
then retracts the fact. Facts, not events, so every matching rule fires. No Host (its
background threads touch C state unlocked), no delete_state per evaluation (crashes on
states that never completed an action cycle), so each ruleset is primed once at creation
and can then be disposed safely when a policy version is retired.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from json.encoder import encode_basestring

import durable_rules_engine as _dre

from .errors import EngineFailure

_SID = "s"
_PRIME = "__prime__"
_RULE_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
_names = itertools.count(1)


def dumps(obj) -> str:
    # Rules and facts must be serialised alike: strings compare as raw JSON text (notes, §8).
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# The same serialisation as dumps(), built once: json.dumps with keyword arguments builds a new
# JSONEncoder on every call, and a match serialises a fact every time.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
# What the compiler makes of a rule without a condition (conditions.ALWAYS → {"t": 1}; every fact
# carries t = 1). Such rules fire for every fact, so match() adds them itself (see Matcher).
_ALWAYS = {"all": [{"m": {"t": 1}}]}


class Disposed(EngineFailure):
    pass


def _fires_once(rule: dict) -> bool:
    """One pattern without $or (what the compiler writes, unless a condition has `any`/`in`):
    such a rule fires at most once per fact, so its names need no de-duplication."""
    patterns = rule.get("all")
    return set(rule) == {"all"} and len(patterns) == 1 and "$or" not in dumps(patterns)


class Matcher:
    """Answers 'which rules match this fact' for one compiled ruleset. Thread-safe."""

    def __init__(self, label: str, rules: dict[str, dict], fields=None):
        """`fields`: the fact fields the rules use (the compiler finds them in the conditions).
        When given, match() sends the engine only these, whatever else the fact carries. Rules
        cannot see other fields, so the result is the same, and the document is built from a
        template rather than by the JSON encoder (see _document)."""
        for name in rules:
            if not _RULE_NAME.match(name):
                raise ValueError(f"rule name {name!r}: use letters, digits and _ . : -")
        # Rules that always fire (e.g. the catch-all dunning owner) stay out of the C ruleset:
        # an activation costs more than the Python that adds the name. match() puts each one back
        # at its definition position, which is where the engine reports it ((pri, definition)
        # order, and no rule has a pri).
        self._position = {name: i for i, name in enumerate(rules)}
        self._always = tuple(name for name, rule in rules.items() if rule == _ALWAYS)
        definition = {name: rule for name, rule in rules.items() if rule != _ALWAYS}
        self._engine_rules = bool(definition)
        self._may_repeat = not all(map(_fires_once, definition.values()))
        definition[_PRIME] = {"all": [{"m": {_PRIME: 1}}]}
        # In the C ruleset each rule is named by its position, all of one width ("07"), so the
        # name of a fired rule is a fixed slice of the activation text ('{"07":{"m":…}}') and
        # needs no search. Definition order, and so the order of activations, is unchanged.
        width = len(str(len(definition) - 1))
        self._key_end = 2 + width
        self._by_key = {f"{i:0{width}d}": name for i, name in enumerate(definition)}
        self.label = label
        self._definition_json = dumps({key: definition[name] for key, name in self._by_key.items()})
        self._fields = None
        if fields is not None and not {"sid", "id", _PRIME} & set(fields):
            # A field no C rule mentions (e.g. t, once the always-rules are out) need not be sent.
            # The test is on the text, so it can only keep a field too many.
            self._fields = tuple(f for f in fields if dumps(f) in self._definition_json)
            # '{"sid":"s","id":"f%d","amount_tier":%s,…}': the bytes the encoder wrote for the same fields
            self._template = (
                f'{{"sid":"{_SID}","id":"f%d"'
                + "".join(f",{dumps(f).replace('%', '%%')}:%s" for f in self._fields)
                + "}"
            )
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._handle = None
        self._create()

    def _create(self):
        self._handle = _dre.create_ruleset(f"{self.label}#{next(_names)}", self._definition_json)
        if self._match_locked({_PRIME: 1}, False) != [_PRIME]:
            raise EngineFailure(f"ruleset {self.label} failed to prime")

    def _document(self, fact: dict, n: int) -> str | None:
        """The fact's fields as dumps() writes them, for the usual values (str, int, bool, None);
        None for anything else (or a missing field): the caller then uses the JSON encoder."""
        values = []
        add = values.append
        try:
            for name in self._fields:
                value = fact[name]
                kind = type(value)
                if kind is str:
                    add(encode_basestring(value))  # the function the encoder uses (ensure_ascii=False)
                elif kind is int:
                    add(int.__repr__(value))
                elif kind is bool:
                    add("true" if value else "false")
                elif value is None:
                    add("null")
                else:
                    return None
        except KeyError:
            return None
        return self._template % (n, *values)

    def _match_locked(self, fact: dict, fast: bool) -> list[str]:
        n = next(self._ids)
        doc = self._document(fact, n) if fast else None
        if doc is None:
            if fast:
                fact = {name: fact[name] for name in self._fields if name in fact}
            if fact and "sid" not in fact and "id" not in fact:
                # '{"sid":"s","id":"f7",' + the fact's own members: no copy of the fact
                doc = f'{{"sid":"{_SID}","id":"f{n}",{_encode(fact)[1:]}'
            else:
                doc = dumps(dict(fact, sid=_SID, id=f"f{n}"))
        handle = self._handle
        try:
            code, offset = _dre.assert_fact(handle, doc)
        except Exception as exc:  # e.g. error 303: more than 64 tests true at once
            raise EngineFailure(f"durable_rules refused the fact: {exc}") from exc
        if code == 2:
            raise EngineFailure("durable_rules reported a duplicate fact id")
        fired: list[str] = []
        try:
            if code == 0:  # 0: something matched, 1: nothing did
                # The first activation comes as (state, messages), the next ones as messages alone
                # (as durable/engine.py reads them); None when there are no more.
                result = _dre.start_action_for_state(handle, offset)
                messages = result[1] if isinstance(result, tuple) else result
                add, complete, by_key, end = fired.append, _dre.complete_and_start_action, self._by_key, self._key_end
                while messages is not None:
                    add(by_key[messages[2:end]])
                    messages = complete(handle, offset)
        except BaseException:
            # An activation may be left leased: this ruleset's state is unusable, build a fresh one.
            self._create()
            raise
        _dre.retract_fact(handle, f'{{"sid":"{_SID}","id":"f{n}"}}')
        return fired

    def match(self, fact: dict) -> list[str]:
        fast = self._fields is not None
        with self._lock:
            if self._handle is None:
                raise Disposed(f"ruleset {self.label} was disposed")
            names = self._match_locked(fact, fast) if self._engine_rules else []
        # A condition with `any`/`in` compiles to $or, and durable_rules fires the rule once per
        # true branch: report each rule once, at its first (pri, definition-order) position.
        if self._may_repeat:
            names = list(dict.fromkeys(names))
        if not fast and _PRIME in names:  # only a fact that carries __prime__ can fire it
            names.remove(_PRIME)
        if self._always and fact.get("t") == 1:  # {"t": 1} holds, as it would in the engine
            names = self._merge_always(names)
        return names

    def _merge_always(self, names: list[str]) -> list[str]:
        """Insert each always-firing rule before the first fired rule defined after it."""
        position = self._position
        for name in self._always:  # few, in definition order
            here = position[name]
            for i, other in enumerate(names):
                if position[other] > here:
                    names.insert(i, name)
                    break
            else:
                names.append(name)
        return names

    def dispose(self) -> None:
        """Free the C ruleset; later calls to match() raise Disposed."""
        with self._lock:
            if self._handle is None:
                return
            _dre.delete_state(self._handle, _SID)
            _dre.delete_ruleset(self._handle)
            self._handle = None

    @property
    def disposed(self) -> bool:
        return self._handle is None
