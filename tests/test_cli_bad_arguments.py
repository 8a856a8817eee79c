"""Every `creditctl policy …` and `creditctl evaluate` subcommand refuses bad arguments (a missing file,
a folder, a bad date or amount, a file in the wrong encoding) with one line on stderr, a code, and no
traceback; and `policy test` reports a broken case file as a failure instead of crashing.

The commands run as a credit controller runs them: `python -m api.cli` (api/cli.py delegates the policy
and evaluate commands to engine/cli.py), in a subprocess.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.cli import main

from helpers import ROOT, edit

# api/simulate.py reads the candidate itself and answers E_FILE with exit code 1 (a follow-up there:
# exit 2 like the other commands, and read bytes so that an encoding error gets its line and column).
SIMULATE_FILE_EXIT = 1
LATIN1_CASE = '{"customer": {"id": "C-1", "name": "Café"}}'


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    text = (ROOT / "policies.yaml").read_text(encoding="utf-8")
    out = {"dir": folder / "a-folder", "missing": folder / "missing.yaml", "db": folder / "empty.sqlite3"}
    out["dir"].mkdir()
    out["db"].write_bytes(b"")  # exists, so simulate gets as far as compiling the candidate
    for name, data in {
        "utf16.yaml": text.encode("utf-16"),
        "utf16-nobom.yaml": text.encode("utf-16-le"),
        "ascii-utf16-nobom.yaml": "policy:\n  name: x\n".encode("utf-16-le"),  # reads as UTF-8 with NULs
        "latin1.yaml": edit(text, "  name: default", "  name: défault").encode("latin-1", "replace"),
        "nul.yaml": edit(text, "  currency: CNY", "  currency: CNY\x00").encode(),
        "bomb.yaml": (
            "a: &a [x,x,x,x,x,x,x,x,x]\n"
            + "".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
        ).encode(),
        "case.json": (ROOT / "examples" / "customer.json").read_bytes(),
        "case-utf16.json": (ROOT / "examples" / "customer.json").read_text(encoding="utf-8").encode("utf-16"),
        "case-latin1.json": LATIN1_CASE.encode("latin-1"),
        "case-deep.json": b"[" * 100_000 + b"]" * 100_000,
        "case-broken.json": b'{"customer": ',
    }.items():
        (folder / name).write_bytes(data)
        out[name] = folder / name
    return out


def creditctl(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def bad_argument_cases(f):
    """(args, exit code, what the one line on stderr must match)."""
    case, policy = f["case.json"], ROOT / "policies.yaml"
    e_file = lambda p, why: rf"^{re.escape(str(p))}: E_FILE: {why}$"  # noqa: E731
    encoding = lambda p: rf"^{re.escape(str(p))}:1:\d+: E_ENCODING: "  # noqa: E731
    return [
        (("policy", "check", f["missing"]), 2, e_file(f["missing"], "No such file or directory")),
        (("policy", "check", f["dir"]), 2, e_file(f["dir"], "Is a directory")),
        (("policy", "check", "--format", "json", f["missing"]), 2, r'^\[\{"code": "E_FILE", '),
        (("policy", "check", "--format", "xml"), 2, r"^creditctl policy check: error: argument --format"),
        (("policy", "check", f["utf16.yaml"]), 1, encoding(f["utf16.yaml"]) + "the file is UTF-16"),
        (("policy", "check", f["utf16-nobom.yaml"]), 1, encoding(f["utf16-nobom.yaml"]) + "the file looks like UTF-16"),
        (("policy", "check", f["latin1.yaml"]), 1, r":5:10: E_ENCODING: byte 0xE9 is not UTF-8"),
        (("policy", "check", f["nul.yaml"]), 1, r":6:16: E_ENCODING: the text contains a NUL character"),
        (("policy", "check", f["bomb.yaml"]), 1, r":5:\d+: E_YAML_ALIAS: "),
        (("policy", "test", f["missing"]), 2, e_file(f["missing"], "No such file or directory")),
        (("policy", "test", f["dir"]), 2, e_file(f["dir"], "Is a directory")),
        (("policy", "test", policy, f["missing"]), 2, e_file(f["missing"], "No such file or directory")),
        (("policy", "test", f["utf16.yaml"]), 1, encoding(f["utf16.yaml"])),
        (("policy", "test", f["latin1.yaml"]), 1, r": E_ENCODING: byte 0xE9 is not UTF-8"),
        (("policy", "schema", "extra"), 2, r"^creditctl: error: unrecognized arguments: extra"),
        (("policy", "publish", f["missing"]), 2, e_file(f["missing"], "No such file or directory")),
        (("policy", "publish", f["dir"]), 2, e_file(f["dir"], "Is a directory")),
        (("policy", "publish", f["utf16.yaml"]), 1, encoding(f["utf16.yaml"]) + "the file is UTF-16"),
        (
            ("policy", "publish", policy, "--effective-from", "2026-13-01"),
            2,
            r"^--effective-from: '2026-13-01' is not an ISO date$",
        ),
        (("policy", "cancel", "abc", "--reason", "x"), 2, r"^creditctl policy cancel: error: argument activation_id"),
        (
            ("policy", "cancel", "1"),
            2,
            r"^creditctl policy cancel: error: the following arguments are required: --reason",
        ),
        (("policy", "versions", "--colour"), 2, r"^creditctl: error: unrecognized arguments: --colour"),
        (("policy", "simulate", f["missing"]), SIMULATE_FILE_EXIT, e_file(f["missing"], "No such file or directory")),
        (("policy", "simulate", f["dir"]), SIMULATE_FILE_EXIT, e_file(f["dir"], "Is a directory")),
        (("policy", "simulate", policy, "--as-of", "2026-02-30"), 2, r'"code": "E_INPUT_INVALID"'),
        (
            ("policy", "simulate", f["ascii-utf16-nobom.yaml"], "--database-url", f"sqlite:///{f['db']}"),
            1,
            r":1:2: E_ENCODING: the text contains a NUL character",
        ),
        (("policy", "simulate"), 2, r"^creditctl policy simulate: error: the following arguments are required"),
        (("evaluate", "--input", f["missing"]), 2, r'"code": "E_INPUT_INVALID".*No such file or directory'),
        (("evaluate", "--input", f["dir"]), 2, r'"code": "E_INPUT_INVALID".*Is a directory'),
        (("evaluate", "--input", case, "--as-of", "2026-13-01"), 2, r'"errors": \{"as_of": '),
        (("evaluate", "--input", case, "--as-of", "tomorrow"), 2, r'"errors": \{"as_of": '),
        (("evaluate", "--input", case, "--as-of", "2026-11-22", "--order-amount", "lots"), 2, r'"order_amount": '),
        (("evaluate", "--input", case, "--as-of", "2026-11-22", "--order-amount", "-5"), 2, r'"order_amount": '),
        (
            ("evaluate", "--input", case, "--as-of", "2026-11-22", "--order-amount", "1e999999"),
            2,
            r'"order_amount": \["\'1e999999\' is not a decimal string',
        ),
        (("evaluate", "--input", case, "--as-of", "2026-11-22", "--order-amount", "0.001"), 2, r'"order_amount": '),
        (("evaluate", "--input", case, "--policy", f["missing"]), 2, r'"errors": \{"policy": '),
        (("evaluate", "--input", case, "--policy", f["dir"]), 2, r'"errors": \{"policy": '),
        (("evaluate", "--input", case, "--policy", f["utf16.yaml"]), 1, encoding(f["utf16.yaml"])),
        (
            ("evaluate", "--input", f["case-utf16.json"]),
            2,
            r'^\{"code": "E_ENCODING", "message": "[^"]*case-utf16.json:1:1: the file is UTF-16',
        ),
        (
            ("evaluate", "--input", f["case-latin1.json"]),
            2,
            rf'^\{{"code": "E_ENCODING", "message": "[^"]*case-latin1.json:1:{LATIN1_CASE.index("é") + 1}: '
            r"byte 0xE9 is not UTF-8",
        ),
        (("evaluate", "--input", f["case-deep.json"]), 2, r"malformed JSON: nested too deeply"),
        (("evaluate", "--input", f["case-broken.json"]), 2, r"case-broken.json:1:14: malformed JSON"),
        (("evaluate",), 2, r"^creditctl evaluate: error: the following arguments are required: --input"),
        (("demo", "--policy", f["missing"]), 2, e_file(f["missing"], "No such file or directory")),
        (("demo", "--portfolio", f["dir"]), 2, e_file(f["dir"], "Is a directory")),
        (("demo", "--as-of", "2026-13-01"), 2, r"E_INPUT_INVALID: not a portfolio with a date"),
    ]


def test_every_bad_argument_is_one_line_with_a_code_and_no_traceback(files):
    cases = bad_argument_cases(files)
    # each case is its own interpreter start: run four at a time (they share nothing but read-only files)
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda case: creditctl(*case[0]), cases))
    failures = []
    for (args, code, pattern), run in zip(cases, runs):
        lines = run.stderr.splitlines()
        if (
            "Traceback" in run.stderr
            or run.returncode != code
            or run.stdout
            or len(lines) != 1
            or not re.search(pattern, lines[0])
        ):
            failures.append(
                f"{' '.join(map(str, args))}: exit {run.returncode} (want {code}), "
                f"stdout {run.stdout[:200]!r}, stderr {run.stderr[-600:]!r}"
            )
    assert failures == [], "\n".join(failures)


def test_the_walk_covers_every_policy_and_evaluate_subcommand(files):
    from api.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    policy_actions = set(next(a for a in commands["policy"]._actions if a.dest == "action").choices)
    walked = {args[1] if args[0] == "policy" else args[0] for args, _, _ in bad_argument_cases(files)}
    assert policy_actions | {"evaluate", "demo"} <= walked


def test_a_good_policy_still_checks_tests_and_evaluates(files):
    assert creditctl("policy", "check", ROOT / "policies.yaml").returncode == 0
    run = creditctl(
        "evaluate", "--input", files["case.json"], "--as-of", "2026-11-22", "--order-amount", "30000", "--compact"
    )
    assert run.returncode == 0 and json.loads(run.stdout)["credit"]["check"]["outcome"] == "refer"


# ---------------------------------------------------------------- broken case files
def run_cases(tmp_path, capsys, text: str | bytes):
    path = tmp_path / "cases.yaml"
    path.write_bytes(text if isinstance(text, bytes) else textwrap.dedent(text).encode())
    code = main(["policy", "test", str(ROOT / "policies.yaml"), str(path)])
    out, err = capsys.readouterr()
    return code, out, str(path)


def test_a_case_file_that_is_not_yaml_is_one_failure_with_its_position(tmp_path, capsys):
    code, out, path = run_cases(tmp_path, capsys, "cases:\n  - note: x\n    as_of: [2026-11-22\n")
    assert code == 1
    assert out.splitlines()[-1] == "0 passed, 1 failed"
    assert f"FAIL {path}: the case file is not valid YAML" in out
    assert f"{path}:3:12: E_YAML_SYNTAX: while parsing a flow sequence that begins here" in out


@pytest.mark.parametrize(
    "text, shown",
    [
        (b"cases:\n  - note: \xff\n", ":2:11: E_ENCODING: byte 0xFF is not UTF-8"),
        (
            b"a: &a [x,x,x,x,x,x,x,x,x]\n"
            + b"".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n".encode() for p, c in zip("abcdefgh", "bcdefghi")),
            ":5:8: E_YAML_ALIAS: ",
        ),
        (b"cases:\n  - note: a\n    note: b\n", ":3:5: E_YAML_DUPLICATE_KEY: key 'note' appears twice"),
    ],
    ids=["not-utf8", "alias-bomb", "duplicate-key"],
)
def test_a_case_file_the_policy_loader_refuses_is_one_failure(tmp_path, capsys, text, shown):
    code, out, path = run_cases(tmp_path, capsys, text)
    assert code == 1 and out.splitlines()[-1] == "0 passed, 1 failed"
    assert f"{path}{shown}" in out


@pytest.mark.parametrize(
    "case, failure",
    [
        ("  - note: no date\n    expect: {credit.limit: '0.00'}\n", "malformed case: as_of None is not a date"),
        (
            "  - note: bad date\n    as_of: '2026-13-01'\n    expect: {credit.limit: '0.00'}\n",
            "malformed case: as_of '2026-13-01' is not a date",
        ),
        (
            "  - note: input is a list\n    as_of: 2026-11-22\n    input: [1]\n    expect: {credit.limit: '0.00'}\n",
            "malformed case: 'input' and 'expect' are mappings",
        ),
        ("  - just a string\n", "a case is a mapping"),
        (
            "  - note: bad index\n    as_of: 2026-11-22\n    input: {customer: {id: C-1, type: enterprise, industry: trading,"
            " region: local, size: medium, since: 2020-01-01}}\n    expect: {'reasons[x].rule': a}\n",
            "reasons[x].rule: missing from the decision",
        ),
    ],
    ids=["no-as-of", "bad-as-of", "input-list", "not-a-mapping", "bad-index"],
)
def test_a_malformed_case_is_a_failure_not_a_crash(tmp_path, capsys, case, failure):
    code, out, _ = run_cases(tmp_path, capsys, "cases:\n" + case)
    assert code == 1 and out.splitlines()[-1] == "0 passed, 1 failed"
    assert failure in out


def test_a_case_file_of_the_wrong_shape_is_a_failure(tmp_path, capsys):
    code, out, _ = run_cases(tmp_path, capsys, "- a list, not a mapping\n")
    assert code == 1 and "expected a mapping of 'cases' (a list)" in out
