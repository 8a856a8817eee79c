"""Fuzzing the compiler with deterministic mutations of the shipped policy.

Each mutated text (a deleted, duplicated or re-indented line, a number made huge or not a number,
swapped keys, a truncation, an alias bomb, deep nesting, NUL or bytes that are not UTF-8, a deleted
`when`, a stray YAML character) must either compile, and then evaluate the worked example without
an exception other than InputInvalid / EngineFailure, or be refused with PolicyInvalid whose every
error has a documented code and a line and column. Nothing else: no other exception, no crash, no
hang. Each text is compiled in a separate process (tests/compile_worker.py) that is given 10 s per
text: that bound is a correctness bound (a hang or a crash fails the case instead of pytest), not a
speed measurement. The larger variant (3,300 texts) is marked soak: `make soak` runs it.
"""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from compile_worker import CompileWorker, Crashed, Hung
from helpers import ROOT

SEED = 20261122
CASE_TIMEOUT_S = 10
SHIPPED = (ROOT / "policies.yaml").read_text(encoding="utf-8")
CODE = re.compile(r"\bE_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
DOCUMENTED = set(CODE.findall((ROOT / "docs" / "policy-language.md").read_text(encoding="utf-8")))

NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
HUGE = [
    "1e400",
    "1" + "0" * 400,
    "-0",
    "NaN",
    ".nan",
    ".inf",
    "-.inf",
    "1e-400",
    "99999999999999999999",
    '"1e400"',
    '"-1E+999999"',
    "0x1F",
    "1_000",
    "9" * 5000,
    "1.0e+400",
    '"0.' + "0" * 60 + '1"',
]
KEY = re.compile(r"^(\s*(?:- )?)([A-Za-z_]+):", re.M)
STRAY = list("[]{}:,-#&*!|>'\"%@?`") + ["\t", "\r", "\u2028", "\ufeff"]
BAD_BYTES = [b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x1b", b"\xef\xbb\xbf", b"\xfe\xff", b"\x80\x80"]
ENCODINGS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "gb18030", "latin-1"]


def billion_laughs(indent: str = "") -> str:
    lines = [f"{indent}fz0: &fz0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
    lines += [f"{indent}fz{i}: &fz{i} [" + ",".join([f"*fz{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def _lines(text):
    return text.splitlines(keepends=True)


def delete_line(rnd, text):
    lines = _lines(text)
    del lines[rnd.randrange(len(lines))]
    return "".join(lines)


def duplicate_line(rnd, text):
    lines = _lines(text)
    i = rnd.randrange(len(lines))
    lines.insert(i, lines[i])
    return "".join(lines)


def reindent_line(rnd, text):
    lines = _lines(text)
    i = rnd.randrange(len(lines))
    body = lines[i].lstrip(" ")
    depth = len(lines[i]) - len(body)
    lines[i] = (
        rnd.choice(
            [
                " " * (depth + 1),
                " " * (depth + 2),
                " " * max(depth - 1, 0),
                " " * max(depth - 2, 0),
                "\t" + " " * max(depth - 2, 0),
                "",
            ]
        )
        + body
    )
    return "".join(lines)


def huge_number(rnd, text):
    spots = list(NUMBER.finditer(text))
    m = rnd.choice(spots)
    return text[: m.start()] + rnd.choice(HUGE) + text[m.end() :]


def swap_keys(rnd, text):
    keys = list(KEY.finditer(text))
    a, b = rnd.sample(keys, 2)
    if a.start() > b.start():
        a, b = b, a
    return text[: a.start(2)] + b.group(2) + text[a.end(2) : b.start(2)] + a.group(2) + text[b.end(2) :]


def truncate(rnd, text):
    data = text.encode("utf-8")
    return data[: rnd.randrange(len(data))]  # may cut a character in two


def alias_bomb(rnd, text):
    lines = _lines(text)
    i = rnd.randrange(len(lines))
    indent = re.match(r" *", lines[i]).group() if rnd.random() < 0.5 else ""
    lines.insert(i, billion_laughs(indent))
    return "".join(lines)


def deep_nesting(rnd, text):
    n = rnd.choice([33, 40, 100, 1000, 5000, 20000])
    deep = rnd.choice(["[" * n + "]" * n, "{a: " * n + "1" + "}" * n, "[" * n, "{not: " * n + "x" + "}" * n])
    values = [m for m in re.finditer(r": (\S[^\n]*)$", text, re.M)]
    m = rnd.choice(values)
    if rnd.random() < 0.3:
        deep = "\n" + "- " * n + "x"  # block lists, on a line of their own
    return text[: m.start(1)] + deep + text[m.end(1) :]


def bad_bytes(rnd, text):
    if rnd.random() < 0.25:
        return text.encode(rnd.choice(ENCODINGS), "replace")
    data = text.encode("utf-8")
    at = rnd.randrange(len(data))
    return data[:at] + rnd.choice(BAD_BYTES) + data[at:]


def delete_when(rnd, text):
    spots = list(re.finditer(r"\n *when: [^\n]*(?=\n)|, when: (?:always|\{[^\n]*\})(?=\})", text))
    m = rnd.choice(spots)
    return text[: m.start()] + text[m.end() :]


def stray_character(rnd, text):
    at = rnd.randrange(len(text))
    return text[:at] + rnd.choice(STRAY) + text[at + rnd.choice([0, 1]) :]


KINDS = [
    delete_line,
    duplicate_line,
    reindent_line,
    huge_number,
    swap_keys,
    truncate,
    alias_bomb,
    deep_nesting,
    bad_bytes,
    delete_when,
    stray_character,
]


def mutations(per_kind: int, seed: int = SEED):
    """(name, text) for `per_kind` mutations of each kind, the same ones on every run."""
    out = []
    for k, kind in enumerate(KINDS):
        rnd = random.Random(seed * 100 + k)
        for i in range(per_kind):
            text = kind(rnd, SHIPPED)
            while text == SHIPPED:  # e.g. two keys of the same name swapped
                text = kind(rnd, SHIPPED)
            out.append((f"{kind.__name__}#{i}", text))
    return out


def fuzz(cases) -> tuple[list[str], Counter]:
    """Compile every case in the worker: the problems found, and what happened (outcomes, codes)."""
    problems, seen = [], Counter()
    with CompileWorker() as worker:
        for name, text in cases:
            try:
                answer = worker.compile(text, timeout=CASE_TIMEOUT_S)
            except (Hung, Crashed) as exc:
                problems.append(f"{name}: {exc}")
                seen["hung or crashed"] += 1
                continue
            seen[answer["outcome"]] += 1
            if answer["outcome"] == "exception":
                problems.append(f"{name}: {answer['type']}\n{answer['traceback'][-1500:]}")
            elif answer["outcome"] == "invalid":
                if not answer["errors"]:
                    problems.append(f"{name}: PolicyInvalid without errors")
                for e in answer["errors"]:
                    seen[e["code"]] += 1
                    if e["code"] not in DOCUMENTED or e["file"] != "fuzz.yaml" or e["line"] < 1 or e["column"] < 1:
                        problems.append(f"{name}: error without a documented code or a place: {e}")
            else:
                seen[f"evaluated: {answer['evaluated']}"] += 1
    return problems, seen


def test_the_mutations_are_deterministic_and_change_the_text():
    first, again = mutations(3), mutations(3)
    assert first == again
    assert all(text != SHIPPED for _, text in first)
    assert len({text for _, text in first}) == len(first)


def test_mutated_policies_compile_or_are_refused_with_coded_errors():
    cases = mutations(27)  # 297 texts
    problems, seen = fuzz(cases)
    assert problems == [], "\n\n".join(problems[:20])
    assert sum(seen[o] for o in ("compiled", "invalid")) == len(cases)
    # the mutations reach every kind of refusal they are meant to, and some still compile
    assert seen["compiled"] > 10 and seen["evaluated: decision"] > 10
    assert {
        "E_YAML_SYNTAX",
        "E_YAML_ALIAS",
        "E_YAML_DEPTH",
        "E_ENCODING",
        "E_MISSING_CONDITION",
        "E_SHAPE",
        "E_YAML_DUPLICATE_KEY",
    } <= set(seen), seen


@pytest.mark.soak
def test_many_more_mutated_policies_compile_or_are_refused_with_coded_errors():
    cases = mutations(300, seed=SEED + 1)  # 3,300 texts
    problems, seen = fuzz(cases)
    assert problems == [], "\n\n".join(problems[:20])
    assert seen["compiled"] > 100
