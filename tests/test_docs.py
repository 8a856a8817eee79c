"""The documentation can't drift from the code: the fact dictionary in docs/policy-language.md is
the generator's output, every error code the code can emit is documented, and docs/decisions.md
names every key a decision can carry."""

import datetime as dt
import importlib.util
import json
import pathlib
import re

import pytest

from engine import evaluate
from rules.fields import FIELDS

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
POLICY_LANGUAGE = DOCS / "policy-language.md"
DECISIONS = DOCS / "decisions.md"
CODE = re.compile(r"\bE_[A-Z][A-Z0-9_]*[A-Z0-9]\b")


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_fields", DOCS / "gen_fields.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_fields = _load_generator()


def _between_markers(text: str) -> str:
    assert text.count(gen_fields.START) == 1 and text.count(gen_fields.END) == 1, "markers missing or repeated"
    return text.split(gen_fields.START)[1].split(gen_fields.END)[0].strip("\n")


def test_fact_dictionary_in_the_doc_is_what_the_generator_produces():
    in_doc = _between_markers(POLICY_LANGUAGE.read_text(encoding="utf-8"))
    assert in_doc == gen_fields.render_table(), "docs/policy-language.md is out of date: run python docs/gen_fields.py"


def test_fact_dictionary_has_one_row_per_field_in_order():
    rows = [line for line in gen_fields.render_table().splitlines()[2:]]
    assert [row.split("`")[1] for row in rows] == list(FIELDS)


def test_generator_check_mode_agrees_with_the_test():
    assert gen_fields.main(["--check"]) == 0


def test_splice_replaces_only_the_table():
    doc = f"before\n{gen_fields.START}\nold table\n{gen_fields.END}\nafter\n"
    assert gen_fields.splice(doc, "NEW") == f"before\n{gen_fields.START}\nNEW\n{gen_fields.END}\nafter\n"
    with pytest.raises(ValueError):
        gen_fields.splice("no markers here", "NEW")


def _codes_in_code() -> set[str]:
    codes = set()
    for folder in ("engine", "rules"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            codes |= set(CODE.findall(path.read_text(encoding="utf-8")))
    return codes


def test_every_error_code_in_engine_and_rules_is_documented():
    codes = _codes_in_code()
    assert len(codes) > 20, "the code scan found too few codes; is the pattern still right?"
    documented = set(CODE.findall(POLICY_LANGUAGE.read_text(encoding="utf-8")))
    assert sorted(codes - documented) == []


def _keys(node, prefix=""):
    """Every key path in a decision; the scorecard's per-factor `points` keys are data, not schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            if key != "points":
                yield from _keys(value, f"{prefix}.{key}")
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item, prefix)


def test_every_decision_key_is_documented(policy):
    case = json.loads((ROOT / "examples" / "customer.json").read_text(encoding="utf-8"))
    keys = set()
    # 11-22: stage 2 between actions, with an order; 11-24: stage-2 actions and a reminder fall due
    for as_of, order in ((dt.date(2026, 11, 22), "30000"), (dt.date(2026, 11, 24), "30000")):
        keys |= set(_keys(evaluate(policy, case, as_of, order=order).data))
    assert sorted(keys - _documented_names(DECISIONS.read_text(encoding="utf-8"))) == []


def _documented_names(markdown: str) -> set[str]:
    """Identifiers inside inline `code` spans, outside fenced blocks (so the pasted example output,
    which contains every key by construction, does not count as documentation)."""
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    names = set()
    for span in re.findall(r"`([^`\n]+)`", prose):
        names |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span))
    return names
