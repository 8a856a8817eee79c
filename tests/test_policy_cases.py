"""The YAML policy cases in tests/policy/ pass against the shipped policy, and the runner really fails.

`creditctl policy test` is run as a subprocess (the way a credit controller runs it), so these tests
also cover the command's exit code and its summary line.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CASE_DIR = ROOT / "tests" / "policy"
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")


def run_policy_test(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "policy", "test", "policies.yaml", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def case_files() -> list[Path]:
    return sorted(CASE_DIR.glob("*.yaml"))


def all_cases() -> list[tuple[str, dict]]:
    out = []
    for path in case_files():
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        out += [(path.name, case) for case in doc.get("cases", [])]
    return out


def summary_of(proc: subprocess.CompletedProcess) -> tuple[int, int]:
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {proc.stderr}"
    match = SUMMARY.match(lines[-1])
    assert match, f"last line is not 'N passed, M failed': {lines[-1]!r}"
    return int(match.group(1)), int(match.group(2))


def test_case_files_are_well_formed():
    assert len(case_files()) >= 10, "the cases are split into several files by theme"
    cases = all_cases()
    assert len(cases) >= 100
    for name, case in cases:
        assert str(case.get("note", "")).strip(), f"{name}: every case says what it proves"
        assert "as_of" in case, f"{name}: {case['note']}: no as_of"
        assert ("expect" in case) != ("expect_error" in case), (
            f"{name}: {case['note']}: exactly one of expect / expect_error"
        )
        if "expect" in case:
            assert case["expect"], f"{name}: {case['note']}: an empty expect proves nothing"


def test_all_policy_cases_pass():
    proc = run_policy_test()
    passed, failed = summary_of(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert failed == 0, proc.stdout
    assert passed == len(all_cases()), "every case in tests/policy/*.yaml was run"
    assert "FAIL" not in proc.stdout


def test_wrong_expectation_fails_and_shows_both_values(tmp_path):
    # Manual score 70 is medium reputation (60–79) with a 200,000 limit. The first case is right,
    # the second deliberately wrong on two fields.
    cases = tmp_path / "wrong.yaml"
    cases.write_text(
        textwrap.dedent("""\
        base_input:
          customer: {id: C-X, type: enterprise, industry: trading, region: local, size: medium,
                     since: 2020-01-01, credit_score: 70}
        cases:
          - note: right expectation
            as_of: 2026-11-22
            expect:
              classification.reputation: medium
          - note: deliberately wrong expectation
            as_of: 2026-11-22
            expect:
              classification.reputation: high
              credit.limit: "123.45"
        """),
        encoding="utf-8",
    )
    proc = run_policy_test(str(cases))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert summary_of(proc) == (1, 1)
    out = proc.stdout
    assert "FAIL" in out and "deliberately wrong expectation" in out
    assert "right expectation" not in out.replace("deliberately wrong expectation", "")
    reputation = next(line for line in out.splitlines() if "classification.reputation" in line)
    assert '"high"' in reputation and '"medium"' in reputation, reputation
    assert (
        reputation.index("expected")
        < reputation.index('"high"')
        < reputation.index("got")
        < reputation.index('"medium"')
    ), reputation
    limit = next(line for line in out.splitlines() if "credit.limit" in line)
    assert "123.45" in limit and "200000.00" in limit, limit


def test_expected_error_on_valid_input_fails(tmp_path):
    cases = tmp_path / "error.yaml"
    cases.write_text(
        textwrap.dedent("""\
        cases:
          - note: valid input, so the expected refusal does not happen
            as_of: 2026-11-22
            input:
              customer: {id: C-X, type: enterprise, industry: trading, region: local, size: medium,
                         since: 2020-01-01}
            expect_error: E_AMOUNT
          - note: a wrong error code is a failure too
            as_of: 2026-11-22
            input:
              customer: {id: C-X, type: enterprise, industry: mining, region: local, size: medium,
                         since: 2020-01-01}
            expect_error: E_CURRENCY
        """),
        encoding="utf-8",
    )
    proc = run_policy_test(str(cases))
    assert proc.returncode == 1
    assert summary_of(proc) == (0, 2)
    assert "expected error E_AMOUNT, got a decision" in proc.stdout
    assert "E_CURRENCY" in proc.stdout
