"""The decision: an immutable record with its canonical JSON (sorted keys, UTF-8, no floats),
so the same policy version and facts always give byte-identical output."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property


def canonical_json(data) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Decision:
    json: str

    @cached_property
    def data(self) -> dict:
        return json.loads(self.json)

    def as_dict(self) -> dict:
        return json.loads(self.json)

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
