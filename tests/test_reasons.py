"""Structured reasons (issue 8): a reason is data, its message is rendered when read, in English or Chinese.

- the English rendering of every decision is what the evaluator wrote before (the golden corpus:
  tests/test_golden_decisions.py); here: the shipped policy with its Chinese messages decides as the
  same policy without them, and without them it is byte for byte the version of before;
- every reason's values are plain JSON (no floats), every engine reason names a message of the
  catalogue, which has both locales, and every rule of the shipped policy has a Chinese message;
- the Chinese rendering of every decision of tests/policy/ is complete (no placeholder left, an
  engine reason in Chinese), and the stored form renders to the same decision again;
- `message_zh` is checked at compile time like `message`, with its position.
"""
from __future__ import annotations

import json
import re

import pytest

from engine import InputInvalid, PolicyInvalid, compile_policy, evaluate
from engine.decision import Decision
from engine.reasons import CATALOGUE, LOCALES, message, normal_locale, render

from helpers import compiled
from reference import replace_section
from test_fast_paths import policy_inputs

# the shipped policy's version before it had Chinese messages (commit 883bf6a)
VERSION_BEFORE_ZH = "14670c8d8caa9fcb37e2bd929f90de88ab5f2f54e2529f00a30735ea83e670af"
_ZH_LINE = re.compile(r"^\s*message_zh: .*\n", re.M)
_ZH_FLOW = re.compile(r",\s*message_zh: \"[^\"]*\"")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def without_zh(text: str) -> str:
    return _ZH_FLOW.sub("", _ZH_LINE.sub("", text))


@pytest.fixture(scope="module")
def decisions(policy):
    out = []
    for name, data, as_of, order in policy_inputs():
        try:
            out.append((name, evaluate(policy, data, as_of, order=order)))
        except InputInvalid:
            pass
    assert len(out) >= 100
    return out


def test_the_shipped_policy_without_its_chinese_messages_is_the_version_of_before(policy_text):
    assert "message_zh" in policy_text
    with compiled(without_zh(policy_text), "policies.yaml") as before:
        assert before.version == VERSION_BEFORE_ZH
        assert all(before.messages_zh[r.id] is before.messages[r.id] for r in before.rules)


def test_chinese_messages_change_no_english_decision(policy, policy_text, decisions):
    with compiled(without_zh(policy_text), "policies.yaml") as before:
        for (name, data, as_of, order), (_, ours) in zip(
                [i for i in policy_inputs() if i[0] in {n for n, _ in decisions}], decisions):
            theirs = evaluate(before, data, as_of, order=order)
            assert ours.json.replace(policy.version, before.version) == theirs.json, name
            assert ours.stored.replace(policy.version, before.version) == theirs.stored, name


def test_every_shipped_rule_has_both_messages(policy):
    for rule in policy.rules:
        assert policy.messages_zh[rule.id] is not policy.messages[rule.id], f"{rule.id} has no message_zh"
        assert _CJK.search(policy.messages_zh[rule.id].text), rule.id


def test_the_catalogue_has_both_locales_and_every_engine_reason_names_it(decisions):
    assert LOCALES == ("en", "zh")
    for key, entry in CATALOGUE.items():
        assert set(entry.templates) == set(LOCALES), key
        assert entry.templates["zh"] != entry.templates["en"] and "：" in entry.templates["zh"] + "：", key
    seen = set()
    for name, d in decisions:
        for r in d.body["reasons"]:
            assert set(r) in ({"rule", "family", "values"}, {"rule", "family", "key", "values"}), (name, r)
            if "key" in r:
                assert r["key"] in CATALOGUE, (name, r)
                seen.add(r["key"])
            else:
                assert r["rule"] in d.policy.rules_by_id, (name, r)
    assert len(seen) >= 15, sorted(seen)          # the cases reach most of the catalogue


def _plain(value, path="$"):
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str), path
            _plain(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _plain(v, f"{path}[{i}]")
    else:
        assert value is None or type(value) in (str, int, bool), f"{path}: {type(value).__name__}"


def test_values_are_plain_json_and_money_stays_in_minor_units(decisions):
    for name, d in decisions:
        _plain(d.body["reasons"])
        stored = json.loads(d.stored, parse_float=lambda s: pytest.fail(f"{name}: a float {s}"))
        assert stored["format"] == 2 and stored["reasons"] == d.body["reasons"]
        assert '"message":' not in d.stored.split('"reasons"')[1]        # the stored reasons carry no text
    over = next(d for name, d in decisions if d.outcome == "reject"
                and any(r["rule"] == "check.over_limit" for r in d.body["reasons"]))
    values = next(r["values"] for r in over.body["reasons"] if r["rule"] == "check.over_limit")
    assert values["exposure_after_order"] > values["credit_limit"]       # what it compared, in fen
    assert type(values["credit_limit"]) is int


def test_the_stored_form_renders_to_the_same_decision(decisions):
    for name, d in decisions:
        again = Decision.from_stored(d.stored, d.policy)
        assert again.json == d.json and again.stored == d.stored, name
        assert json.loads(d.json) == d.data and "format" not in d.data
        assert d.reasons(family="credit.check") == [r for r in d.data["reasons"] if r["family"] == "credit.check"]


def test_every_decision_reads_in_chinese(decisions):
    for name, d in decisions:
        zh = d.render("zh")
        en = d.data
        assert [(r["rule"], r["family"]) for r in zh["reasons"]] == [(r["rule"], r["family"]) for r in en["reasons"]]
        assert {k: v for k, v in zh.items() if k not in ("reasons", "alerts")} == \
               {k: v for k, v in en.items() if k not in ("reasons", "alerts")}, name
        assert [a["id"] for a in zh["alerts"]] == [a["id"] for a in en["alerts"]]
        for r in zh["reasons"] + zh["alerts"]:
            assert r["message"] and not re.search(r"\{[a-z_]+\}", r["message"]), (name, r)
            assert _CJK.search(r["message"]), (name, r)
        engine_reasons = [(x, y) for x, y, raw in zip(zh["reasons"], en["reasons"], d.body["reasons"])
                          if "key" in raw]
        assert all(x["message"] != y["message"] for x, y in engine_reasons), name


def test_chinese_texts_of_a_few_reasons(policy, decisions):
    name, d = next((n, d) for n, d in decisions if d.outcome == "approve")
    zh = {r["rule"]: r["message"] for r in d.render("zh")["reasons"]}
    en = {r["rule"]: r["message"] for r in d.data["reasons"]}
    assert en["credit.check.within_limit"].startswith("within the limit: exposure ")
    assert zh["credit.check.within_limit"].startswith("在额度内：占用 ")
    figures = re.findall(r"[\d,]+\.\d\d", en["credit.check.within_limit"])
    assert figures and figures == re.findall(r"[\d,]+\.\d\d", zh["credit.check.within_limit"])
    assert zh["credit.check.overdue"] in ("无逾期",) or zh["credit.check.overdue"].startswith("逾期 ")
    limit_rule = next(r for r in d.body["reasons"] if r["family"] == "credit.limit" and "key" not in r)
    assert message(limit_rule, policy, "zh").startswith("信誉")


def test_reader_locales():
    assert [normal_locale(v) for v in ("zh", "zh-CN", "zh_CN", "ZH-tw", None, "", "en-GB", "fr")] == \
           ["zh", "zh", "zh", "zh", "en", "en", "en", "en"]


def test_render_leaves_the_body_as_it_was(decisions):
    name, d = decisions[0]
    before = json.dumps(d.body, sort_keys=True)
    render(d.body, d.policy, "zh")
    d.render("en")
    assert json.dumps(d.body, sort_keys=True) == before


ALERT = [{"id": "alert.odd", "severity": "info", "when": {"field": "credit_score", "gte": 0},
          "message": "score {credit_score}", "message_zh": "评分 {credit_scor}"}]


def _with_alerts(policy_text, alerts):
    return replace_section(policy_text, "alerts", alerts, block=True)


def test_message_zh_is_checked_at_compile_time_with_its_position(policy_text):
    text = _with_alerts(policy_text, ALERT)
    with pytest.raises(PolicyInvalid) as exc:
        compile_policy(text, "zh.yaml")
    (err,) = exc.value.errors
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "message_zh:" in ln and "{credit_scor}" in ln)
    assert err.code == "E_MESSAGE" and (err.line, err.path) == (line, "alerts[0].message_zh")
    assert "message_zh uses unknown placeholder '{credit_scor}'; did you mean 'credit_score'?" in err.format()
    with pytest.raises(PolicyInvalid) as exc:
        compile_policy(text.replace("{credit_scor}", "{credit_score"), "zh.yaml")
    assert [e.code for e in exc.value.errors] == ["E_MESSAGE"]
    assert "message_zh template" in exc.value.errors[0].message
    with compiled(text.replace("{credit_scor}", "{credit_score}"), "zh.yaml") as ok:
        assert ok.messages_zh["alert.odd"].text == "评分 {credit_score}"
    with pytest.raises(PolicyInvalid) as exc:
        compile_policy(text.replace("message_zh:", "message_cn:"), "zh.yaml")
    assert exc.value.errors[0].code == "E_UNKNOWN_KEY"


def test_the_cli_prints_the_reasons_in_the_locale_asked(policy, tmp_path, capsys, make_case):
    from engine.cli import main
    from helpers import AS_OF, customer, invoice
    case = make_case(customer(), invoices=[invoice("INV-1", "5000.00", due=-40)])
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case, ensure_ascii=False), encoding="utf-8")
    args = ["evaluate", "--policy", policy.source, "--input", str(path), "--as-of", AS_OF.isoformat(), "--compact"]
    assert main(args) == 0
    en = capsys.readouterr().out.strip()
    assert main([*args, "--locale", "zh"]) == 0
    zh = json.loads(capsys.readouterr().out)
    assert en == evaluate(policy, case, AS_OF).json
    assert zh == evaluate(policy, case, AS_OF).render("zh")
    assert zh["reasons"] != json.loads(en)["reasons"] and all(_CJK.search(r["message"]) for r in zh["reasons"])
