"""A policy version stored before `when: always` became required still compiles from the database
(its decisions must replay), while a new publish of the same text is refused."""

from __future__ import annotations

import re

import pytest

from api_harness import POLICY_FILE
from engine.compiler import compile_policy
from engine.errors import PolicyInvalid


def _legacy_text() -> str:
    """The shipped policy as it was written before: the rules that now say `when: always` had no `when`."""
    with open(POLICY_FILE, encoding="utf-8") as fh:
        text = fh.read()
    legacy = re.sub(r"^[ \t]*when: always[ \t]*\n", "", text, flags=re.M)
    assert legacy != text
    return legacy


def test_a_stored_pre_always_version_compiles_but_is_not_published_again(fresh):
    from api.store.tables import PolicyVersion

    legacy = _legacy_text()
    with pytest.raises(PolicyInvalid) as refused:
        compile_policy(legacy, "old.yaml")
    assert {e.code for e in refused.value.errors} == {"E_MISSING_CONDITION"}
    old = compile_policy(legacy, "old.yaml", legacy_when=True)
    old.dispose()
    with fresh.service.tx() as s:
        s.add(
            PolicyVersion(
                version=old.version,
                name=old.name,
                text=legacy,
                source="old.yaml",
                created_at=fresh.service.clock(),
                created_by="before-the-upgrade",
            )
        )
    with fresh.service.read_tx() as s:
        policy = fresh.service.registry.get(s, old.version)
    assert policy.version == old.version and len(policy.rules) == len(old.rules)
    r = fresh.post("/v1/policies", {"text": legacy, "source": "old.yaml"}, role="controller")
    assert r.status_code == 422 and "E_MISSING_CONDITION" in r.text
