"""`creditctl policy check` also checks the document templates beside the policy (templates/ next to it):
each problem FILE:LINE:COL: CODE: message, exit 1; no folder is an error when the policy's actions send
documents."""

from __future__ import annotations

import json
import pathlib
import re
import shutil

import pytest

from api.cli import main

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def policy(tmp_path):
    shutil.copy(ROOT / "policies.yaml", tmp_path / "policies.yaml")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    return tmp_path / "policies.yaml"


def test_a_clean_policy_and_templates_pass(policy, capsys):
    assert main(["policy", "check", str(policy)]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and f"templates {policy.parent / 'templates'}: ok" in out
    assert main(["policy", "check", "--format", "json", str(policy)]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["valid"] is True and body["templates"]["files"] > 20


def test_a_misspelt_variable_is_reported_with_file_line_column_and_code(policy, capsys):
    template = policy.parent / "templates" / "zh_CN" / "written_demand.txt.j2"
    text = template.read_text(encoding="utf-8")
    assert "customer.name" in text
    template.write_text(text.replace("customer.name", "custmer.name", 1), encoding="utf-8")
    line = next(i for i, t in enumerate(template.read_text(encoding="utf-8").splitlines(), 1) if "custmer" in t)
    assert main(["policy", "check", str(policy)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    m = re.fullmatch(r"(?P<file>.+):(?P<line>\d+):(?P<col>\d+): (?P<code>E_[A-Z_]+): (?P<msg>.+)", err[0])
    assert m and m["file"] == str(template) and int(m["line"]) == line and int(m["col"]) >= 1
    assert m["code"] == "E_TEMPLATE_UNKNOWN_VARIABLE" and "did you mean 'customer'" in m["msg"]
    assert main(["policy", "check", "--format", "json", str(policy)]) == 1
    (problem,) = json.loads(capsys.readouterr().err)
    assert (problem["code"], problem["file"], problem["line"]) == ("E_TEMPLATE_UNKNOWN_VARIABLE", str(template), line)


def test_a_missing_document_part_and_a_missing_folder_are_errors(policy, capsys):
    (policy.parent / "templates" / "en" / "lawyer_letter.html.j2").unlink()
    assert main(["policy", "check", str(policy)]) == 1
    assert "E_TEMPLATE_MISSING: locale 'en' has no 'lawyer_letter.html.j2'" in capsys.readouterr().err
    shutil.rmtree(policy.parent / "templates")
    assert main(["policy", "check", str(policy)]) == 1
    err = capsys.readouterr().err
    assert "E_TEMPLATE_MISSING: no template folder" in err and "lawyer_letter" in err and "payment_reminder" in err
