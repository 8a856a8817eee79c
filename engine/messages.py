"""Reason messages: a rule's template filled with the actual values and thresholds."""
from __future__ import annotations

import string

from rules.fields import FIELDS, show


class _Values(dict):
    def __missing__(self, key):          # compile-time checks make this unreachable; never crash a decision
        return "{" + key + "}"


class Template:
    """A message template parsed once, when the policy is compiled.

    Rendering used to run string.Formatter().parse and scan the rule's params for every
    message of every decision. Here the placeholder names are found once, and a placeholder
    that names one of the rule's own params is shown once, since params are constants
    (`fixed`); only fact fields (`live`) are shown per render.
    Values are looked up in the same order as before: `extra` (per evaluation, e.g. the
    anchor invoice) first, then the rule's params, then fact fields; anything else stays
    '{name}'. An empty template gives `fallback`. tests/test_fast_paths.py compares the
    output with the per-call renderer's.
    """

    __slots__ = ("text", "exponent", "constant", "plan", "names", "fixed", "live")

    def __init__(self, text: str, params: tuple = (), exponent: int = 2, fallback: str = ""):
        self.text, self.exponent = text, exponent
        self.constant: str | None = None     # the message when it never changes
        self.plan: tuple = ()                # (name, the param's shown value or None, fact field kind or None)
        self.names, self.fixed, self.live = frozenset(), {}, ()
        if not text:
            self.constant = fallback
            return
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
        plan = []
        for name in sorted(names):
            param = next((p for p in params if p[0] == name), None)
            if param is not None:
                plan.append((name, show(param[1], param[2], exponent), None))
            else:
                plan.append((name, None, FIELDS[name].kind if name in FIELDS else None))
        self.plan = tuple(plan)
        # render() starts from the params' values and adds the fact fields' (the plan, split)
        self.names = frozenset(names)
        self.fixed = {name: shown for name, shown, _ in plan if shown is not None}
        self.live = tuple((name, kind) for name, shown, kind in plan if shown is None and kind is not None)
        if not plan:
            try:
                self.constant = text.format_map(_Values())
            except (ValueError, IndexError, KeyError):
                pass          # the compiler refuses such templates; if one gets here, fail at render as before

    def render(self, fact, extra: dict | None = None) -> str:
        if self.constant is not None:
            return self.constant
        values = _Values(self.fixed)
        if extra:
            for name, kind in self.live:
                if name in fact and name not in extra:
                    values[name] = show(kind, fact[name], self.exponent)
            for name in extra:
                if name in self.names:
                    values[name] = extra[name]
        else:
            for name, kind in self.live:
                if name in fact:
                    values[name] = show(kind, fact[name], self.exponent)
        return self.text.format_map(values)


def render(template: str, fact: dict, params: tuple = (), extra: dict | None = None, exponent: int = 2) -> str:
    """Fill a template in one go (the evaluator uses the Template compiled with the policy)."""
    return Template(template, params, exponent).render(fact, extra)
