"""Evaluation end to end on the real durable_rules engine: determinism, reasons, labels, failing closed, CLI."""

import datetime as dt
import json
import re
import subprocess
import sys

import pytest

import engine.compiler
from engine import EngineFailure, InputInvalid, canonical_json, compile_policy, evaluate
from engine.cli import main

from helpers import AS_OF, ROOT, compiled, customer, dispute, edit, invoice, make_case, payment, promise


@pytest.fixture
def busy_case():
    """A case that exercises most of the pipeline: overdue invoices, a payment, a dispute, a promise, an order."""
    return make_case(
        customer(external_rating=72, collector="王芳", size="large"),
        invoices=[
            invoice("INV-1", "80000.00", due=-83),
            invoice("INV-2", "45000.00", due=-22),
            invoice("INV-3", "30000.00", due=9),
            invoice("INV-4", "12000.00", due=-40),
        ],
        payments=[payment("20000.00", on=-63, invoice_id="INV-1"), payment("1000.00", on=-100)],
        disputes=[dispute("INV-4", opened=-30)],
        promises=[promise("5000.00", made=-20, promised=-10, invoice_id="INV-2")],
        reservations=[{"order_id": "SO-7", "amount": "2500.00"}],
        previous={"as_of": "2026-11-01", "aging_bucket": "short", "credit_score": 80},
    )


# ---------------------------------------------------------------- determinism
def test_the_same_policy_case_and_date_give_byte_identical_decisions(policy, busy_case):
    first = evaluate(policy, busy_case, AS_OF, order="10000")
    second = evaluate(policy, busy_case, AS_OF, order="10000")
    assert first.json.encode("utf-8") == second.json.encode("utf-8")
    assert first.data["credit"]["check"]["outcome"] in ("approve", "approve_with_conditions", "refer", "reject")


def test_two_separately_compiled_copies_give_byte_identical_decisions(policy, policy_text, busy_case):
    with compiled(policy_text, "copy.yaml") as copy:
        assert copy.matchers["profile"] is not policy.matchers["profile"]
        ours = evaluate(copy, busy_case, AS_OF, order="10000")
        assert ours.json == evaluate(policy, busy_case, AS_OF, order="10000").json


def test_a_thousand_repeats_give_one_decision(policy, busy_case):
    decisions = {evaluate(policy, busy_case, AS_OF, order="10000").json for _ in range(1000)}
    assert len(decisions) == 1


def test_interleaved_customers_do_not_leak_into_each_other(policy, busy_case):
    quiet = make_case(customer(id="C-2", credit_score=95), invoices=[invoice("Q-1", "10.00", due=20)])
    alone = evaluate(policy, quiet, AS_OF).json
    for _ in range(50):
        evaluate(policy, busy_case, AS_OF, order="10000")
        assert evaluate(policy, quiet, AS_OF).json == alone


def test_the_decision_is_canonical_json_without_floats(policy, busy_case):
    decision = evaluate(policy, busy_case, AS_OF, order="10000")
    assert decision.json == canonical_json(decision.data)
    floats = []
    json.loads(decision.json, parse_float=lambda s: floats.append(s))
    assert floats == []
    assert decision.data["policy_version"] == policy.version
    assert decision.data["as_of"] == AS_OF.isoformat()


def test_the_decision_depends_on_as_of_and_not_on_the_clock(policy, busy_case):
    today = evaluate(policy, busy_case, AS_OF)
    tomorrow = evaluate(policy, busy_case, AS_OF + dt.timedelta(days=1))
    assert today.data["as_of"] != tomorrow.data["as_of"]
    assert today.data["interest"]["total"] != tomorrow.data["interest"]["total"]
    assert evaluate(policy, busy_case, AS_OF).json == today.json


def test_the_input_case_is_not_changed_by_evaluation(policy, busy_case):
    before = json.dumps(busy_case, sort_keys=True)
    evaluate(policy, busy_case, AS_OF, order="10000")
    assert json.dumps(busy_case, sort_keys=True) == before


# ---------------------------------------------------------------- reasons
def reason(decision, rule_id) -> str:
    messages = [r["message"] for r in decision.data["reasons"] if r["rule"] == rule_id]
    assert messages, f"no reason from {rule_id}: {[r['rule'] for r in decision.data['reasons']]}"
    return messages[0]


@pytest.fixture
def over_limit(policy):
    """Medium reputation (limit 200,000), 120,500.00 on account, an order of 100,000."""
    case = make_case(
        customer(credit_score=70), invoices=[invoice("INV-1", "100000.00", due=5), invoice("INV-2", "20500.00", due=10)]
    )
    return evaluate(policy, case, AS_OF, order="100000")


def test_an_order_over_the_limit_is_rejected_with_the_amounts_in_the_reason(over_limit):
    assert over_limit.outcome == "reject"
    assert (
        reason(over_limit, "check.over_limit")
        == "exposure 120,500.00 + order 100,000.00 = 220,500.00 > limit 200,000.00"
    )


def test_reasons_show_percentages_and_thresholds_as_people_write_them(over_limit):
    assert (
        reason(over_limit, "check.high_utilisation") == "utilisation after the order 110.25% > 90% of limit 200,000.00"
    )
    assert (
        reason(over_limit, "credit.limit.medium")
        == "信誉中 medium reputation (score 70): limit 200,000.00, terms 30 days"
    )
    assert (
        reason(over_limit, "classification.amount_tier") == "amount_tier = large: outstanding 120,500.00 (≥ 100,000.00)"
    )


def test_a_manual_score_is_the_reason_instead_of_the_scorecard(over_limit):
    assert reason(over_limit, "score.manual") == "credit score 70 set on the credit file (manual assessment)"
    assert not [r for r in over_limit.data["reasons"] if r["rule"].startswith("scorecard.")]
    assert over_limit.data["score"] == {"value": 70, "source": "manual", "points": {}}


def test_scorecard_reasons_give_each_factor_its_value_and_points(policy):
    case = make_case(
        customer(external_rating=85),
        invoices=[invoice("INV-1", "100.00", due=-20)],
        payments=[payment("100.00", on=-20, invoice_id="INV-1")],
    )
    decision = evaluate(policy, case, AS_OF)
    assert reason(decision, "scorecard.on_time_ratio") == "on_time_ratio 100%: 40 points"
    assert reason(decision, "scorecard.external_rating") == "external_rating 85: 10 points"
    assert reason(decision, "scorecard.total") == "scorecard total 100 (clamped to 0–100)"
    assert decision.data["score"]["source"] == "scorecard"
    assert sum(decision.data["score"]["points"].values()) == decision.data["score"]["value"]


def test_late_interest_reason_shows_the_calculation(policy):
    case = make_case(invoices=[invoice("INV-1", "100000.00", due=-15)])
    decision = evaluate(policy, case, AS_OF)
    assert (
        reason(decision, "interest.late")
        == "invoice INV-1: 100,000.00 × 0.0005 × 10 days (15 overdue − 5 grace) = 500.00"
    )
    assert decision.data["interest"]["total"] == "500.00"


def test_a_dunning_reason_names_the_anchor_invoice_and_its_days_overdue(policy):
    case = make_case(invoices=[invoice("INV-7", "5000.00", due=-3)])
    decision = evaluate(policy, case, AS_OF)
    assert reason(decision, "dunning.stage1") == "invoice INV-7 is 3 days overdue (≥ 1): stage 1"
    assert decision.data["dunning"]["stage"] == 1


def test_alert_messages_carry_their_values(policy):
    case = make_case(
        customer(credit_score=30),
        invoices=[invoice("INV-1", "46000.00", due=5)],
        previous={"as_of": "2026-11-15", "credit_score": 45},
    )
    decision = evaluate(policy, case, AS_OF)
    messages = {a["id"]: a["message"] for a in decision.data["alerts"]}
    assert messages["alert.utilisation"] == "utilisation 92% of limit 50,000.00 is above 90%"
    assert messages["alert.score_drop"] == "credit score dropped 15 points to 30"


def test_no_reason_keeps_an_unfilled_placeholder(policy, busy_case):
    decision = evaluate(policy, busy_case, AS_OF, order="10000")
    texts = [r["message"] for r in decision.data["reasons"]] + [a["message"] for a in decision.data["alerts"]]
    assert texts
    assert [t for t in texts if re.search(r"\{[a-z_]+\}", t)] == []


def test_a_rule_whose_any_branches_all_hold_gives_one_reason_and_one_alert(policy_text):
    text = edit(
        policy_text,
        "{field: score_drop, gte: 10}",
        "{any: [{field: utilisation, gt: 50}, {field: dunning_stage, gte: 1}, {field: region, in: [local]}]}",
    )
    case = make_case(customer(credit_score=70), invoices=[invoice("INV-1", "150000.00", due=-3)])
    with compiled(text) as variant:
        decision = evaluate(variant, case, AS_OF)
    assert [a["id"] for a in decision.data["alerts"]].count("alert.score_drop") == 1
    assert [r["rule"] for r in decision.data["reasons"]].count("alert.score_drop") == 1


# ---------------------------------------------------------------- Chinese labels
@pytest.fixture
def chinese_regions(policy_text):
    text = edit(policy_text, "region: [local, remote]", "region: [本地, 外地]")
    text = edit(text, "{field: region, eq: local}", "{field: region, eq: 本地}")
    text = edit(text, "{field: region, eq: remote}", "{field: region, eq: 外地}", count=2)
    with compiled(text, "中文.yaml") as variant:
        yield variant


def test_chinese_category_labels_match_end_to_end(chinese_regions):
    # a large account 15 days overdue is in stage 2, where a local (本地) customer gets a visit
    case = make_case(customer(region="本地", size="large"), invoices=[invoice("INV-1", "150000.00", due=-15)])
    decision = evaluate(chinese_regions, case, AS_OF)
    assert decision.data["classification"]["region"] == "本地"
    assert decision.data["dunning"]["stage"] == 2
    assert [a["type"] for a in decision.data["dunning"]["actions"]][0] == "visit"
    assert "dunning.stage2.visit" in [r["rule"] for r in decision.data["reasons"]]
    assert "本地" in decision.json  # UTF-8 in the JSON, not \\u escapes
    assert "\\u" not in decision.json


def test_a_remote_customer_under_chinese_labels_gets_a_call_and_its_segment(chinese_regions):
    case = make_case(customer(region="外地", size="large"), invoices=[invoice("INV-1", "150000.00", due=-15)])
    decision = evaluate(chinese_regions, case, AS_OF)
    assert [a["type"] for a in decision.data["dunning"]["actions"]][0] == "phone_call"
    assert [s["id"] for s in decision.data["classification"]["segments"]] == [
        "segment.manufacturing_large",
        "segment.remote",
    ]


def test_an_english_label_is_refused_by_a_policy_with_chinese_labels(chinese_regions):
    with pytest.raises(InputInvalid) as info:
        evaluate(chinese_regions, make_case(customer(region="local")), AS_OF)
    assert [(e.field, e.code) for e in info.value.errors] == [("customer.region", "E_UNKNOWN_VALUE")]


def test_chinese_labels_in_a_band_class_match_end_to_end(policy_text):
    text = policy_text
    for en, zh in (("small", "小额"), ("medium", "中额"), ("large", "大额")):
        text = text.replace(f"{{label: {en}, ", f"{{label: {zh}, ", 1)
    text = text.replace("{field: amount_tier, eq: large}", "{field: amount_tier, eq: 大额}")
    text = text.replace("{field: amount_tier, eq: small}", "{field: amount_tier, eq: 小额}")
    text = text.replace("{field: overdue_amount_tier, eq: large}", "{field: overdue_amount_tier, eq: 大额}")
    text = text.replace("{field: amount_tier, in: [medium, large]}", "{field: amount_tier, in: [中额, 大额]}")
    with compiled(text) as variant:
        case = make_case(customer(collector="王芳"), invoices=[invoice("INV-1", "150000.00", due=-15)])
        decision = evaluate(variant, case, AS_OF)
    assert decision.data["classification"]["amount_tier"] == "大额"
    assert "owner.dedicated" in [r["rule"] for r in decision.data["reasons"]]
    assert decision.data["dunning"]["actions"][0]["owner"] == "collector:王芳"


# ---------------------------------------------------------------- failing closed
def test_evaluating_with_a_disposed_policy_raises_instead_of_deciding(policy_text, busy_case):
    variant = compile_policy(policy_text)
    variant.dispose()
    with pytest.raises(EngineFailure) as info:
        evaluate(variant, busy_case, AS_OF)
    assert info.value.code == "E_ENGINE"


@pytest.fixture
def too_many_range_tests(policy_text, monkeypatch):
    """A policy that slipped past the compile-time engine limit: 70 alerts `utilisation > N`."""
    alerts = "".join(
        f"  - id: alert.u{i}\n    when: {{field: utilisation, gt: {i}}}\n    severity: info\n" for i in range(70)
    )
    text = edit(policy_text, "alerts:                        # 风险预警\n", "alerts:\n" + alerts)
    monkeypatch.setattr(engine.compiler, "MAX_LEADING_RANGE_TESTS", 10_000)
    with compiled(text) as variant:
        yield variant


def test_an_engine_error_raises_engine_failure_instead_of_returning_a_decision(too_many_range_tests):
    case = make_case(customer(credit_score=70), invoices=[invoice("INV-1", "150000.00", due=5)])  # 75 % used
    with pytest.raises(EngineFailure, match="error code: 303"):
        evaluate(too_many_range_tests, case, AS_OF)


def test_the_engine_keeps_working_after_a_refused_fact(too_many_range_tests):
    heavy = make_case(customer(credit_score=70), invoices=[invoice("INV-1", "150000.00", due=5)])
    light = make_case(customer(credit_score=70), invoices=[invoice("INV-1", "20000.00", due=5)])  # 10 % used
    before = evaluate(too_many_range_tests, light, AS_OF).json
    for _ in range(3):
        with pytest.raises(EngineFailure):
            evaluate(too_many_range_tests, heavy, AS_OF)
    after = evaluate(too_many_range_tests, light, AS_OF)
    assert after.json == before
    assert [a["id"] for a in after.data["alerts"]] == [f"alert.u{i}" for i in range(10)]


def test_invalid_input_raises_before_the_engine_is_asked(policy):
    with pytest.raises(InputInvalid):
        evaluate(policy, make_case(invoices=[invoice("INV-1", "-5", due=1)]), AS_OF)
    with pytest.raises(InputInvalid) as info:
        evaluate(policy, make_case(), "2026-11-22")
    assert info.value.errors[0].field == "as_of"


@pytest.mark.parametrize("order", ["0", "-100", "abc", "100.001", 100.5])
def test_a_bad_order_amount_is_refused_naming_the_order(policy, order):
    with pytest.raises(InputInvalid) as info:
        evaluate(policy, make_case(), AS_OF, order=order)
    assert [(e.field, e.code) for e in info.value.errors] == [("order_amount", "E_AMOUNT")]


@pytest.mark.parametrize("amount", ["1e26", "100000000000000000000"])
def test_an_absurdly_large_amount_is_refused_as_input(policy, amount):
    with pytest.raises(InputInvalid) as info:
        evaluate(policy, make_case(invoices=[invoice("INV-1", amount, due=5)]), AS_OF)
    assert info.value.errors[0].code == "E_AMOUNT"


# ---------------------------------------------------------------- CLI: creditctl evaluate
@pytest.fixture
def case_file(tmp_path):
    def write(data, name="case.json"):
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else json.dumps(data, ensure_ascii=False), encoding="utf-8")
        return str(path)

    return write


@pytest.fixture
def cli(policy):
    """Runs `creditctl evaluate` in-process against the shipped policy; returns (exit code, stdout, stderr)."""

    def run(capsys, *args):
        code = main(["evaluate", "--policy", policy.source, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_evaluate_prints_the_decision_as_json_and_exits_0(cli, case_file, capsys, busy_case):
    code, out, err = cli(
        capsys, "--input", case_file(busy_case), "--as-of", AS_OF.isoformat(), "--order-amount", "10000"
    )
    assert code == 0
    decision = json.loads(out)
    assert decision["customer_id"] == "C-1" and decision["as_of"] == "2026-11-22"
    assert decision["credit"]["check"]["order_amount"] == "10000.00"


def test_cli_evaluate_compact_output_is_the_canonical_decision(cli, case_file, capsys, policy, busy_case):
    code, out, _ = cli(capsys, "--input", case_file(busy_case), "--as-of", "2026-11-22", "--compact")
    assert code == 0
    assert out.rstrip("\n") == evaluate(policy, busy_case, AS_OF).json


def test_cli_evaluate_reads_json_integers_as_amounts_and_refuses_json_floats(cli, case_file, capsys):
    # the one money rule (docs/money.md): decimal strings or integers; a number with a fraction is a float
    case = json.dumps(make_case(invoices=[invoice("INV-1", "0", due=-10)]))
    code, out, _ = cli(
        capsys, "--input", case_file(case.replace('"amount": "0"', '"amount": 1234')), "--as-of", "2026-11-22"
    )
    assert code == 0
    assert json.loads(out)["credit"]["outstanding"] == "1234.00"
    code, out, err = cli(
        capsys, "--input", case_file(case.replace('"amount": "0"', '"amount": 1234.5')), "--as-of", "2026-11-22"
    )
    assert code == 2 and out == ""
    assert "not a float" in json.loads(err)["errors"]["invoices[0].amount"][0]


def assert_refused(result, field):
    code, out, err = result
    assert code == 2
    assert out == ""
    body = json.loads(err)
    assert body["code"] == "E_INPUT_INVALID"
    assert field in body["errors"], body
    return body


def test_cli_evaluate_refuses_malformed_json_with_exit_2(cli, case_file, capsys):
    body = assert_refused(
        cli(capsys, "--input", case_file('{"customer": {"id": "C-1",}'), "--as-of", "2026-11-22"), "input"
    )
    assert "malformed JSON" in body["message"]


def test_cli_evaluate_refuses_a_missing_input_file_with_exit_2(cli, capsys, tmp_path):
    assert_refused(cli(capsys, "--input", str(tmp_path / "nope.json"), "--as-of", "2026-11-22"), "input")


def test_cli_evaluate_refuses_missing_fields_with_exit_2(cli, case_file, capsys):
    case = make_case()
    del case["customer"]["since"]
    body = assert_refused(cli(capsys, "--input", case_file(case), "--as-of", "2026-11-22"), "customer.since")
    assert body["errors"]["customer.since"] == ["Missing data for required field."]


@pytest.mark.parametrize(
    "amount, message",
    [("-100.00", "must not be negative"), ("lots", "not an amount"), ("100.001", "more than 2 decimal places")],
)
def test_cli_evaluate_refuses_bad_amounts_with_exit_2(cli, case_file, capsys, amount, message):
    case = make_case(invoices=[invoice("INV-1", amount, due=-10)])
    body = assert_refused(cli(capsys, "--input", case_file(case), "--as-of", "2026-11-22"), "invoices[0].amount")
    assert message in body["errors"]["invoices[0].amount"][0]


def test_cli_evaluate_refuses_an_unparseable_date_in_the_input_with_exit_2(cli, case_file, capsys):
    case = make_case(invoices=[invoice("INV-1", "100.00", due="2026-13-01", issued="2026-11-01")])
    assert_refused(cli(capsys, "--input", case_file(case), "--as-of", "2026-11-22"), "invoices[0].due_on")


def test_cli_evaluate_refuses_an_unparseable_as_of_with_exit_2(cli, case_file, capsys):
    assert_refused(cli(capsys, "--input", case_file(make_case()), "--as-of", "22/11/2026"), "as_of")


def test_cli_evaluate_refuses_an_unknown_currency_with_exit_2(cli, case_file, capsys):
    case = make_case(invoices=[invoice("INV-1", "100.00", due=-10, currency="XYZ")])
    body = assert_refused(cli(capsys, "--input", case_file(case), "--as-of", "2026-11-22"), "invoices[0].currency")
    assert "'XYZ'" in body["errors"]["invoices[0].currency"][0]


@pytest.mark.parametrize("order", ["-5", "five", "0"])
def test_cli_evaluate_refuses_a_bad_order_amount_with_exit_2(cli, case_file, capsys, order):
    assert_refused(
        cli(capsys, "--input", case_file(make_case()), "--as-of", "2026-11-22", "--order-amount", order), "order_amount"
    )


def test_the_creditctl_command_exits_2_and_prints_nothing_on_bad_input(case_file, policy):
    path = case_file(make_case(invoices=[invoice("INV-1", "-1", due=-10)]))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "evaluate",
            "--policy",
            policy.source,
            "--input",
            path,
            "--as-of",
            "2026-11-22",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert run.returncode == 2
    assert run.stdout == ""
    assert "invoices[0].amount" in run.stderr


def test_the_creditctl_command_prints_the_same_decision_as_the_library(case_file, policy, busy_case):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "evaluate",
            "--policy",
            policy.source,
            "--input",
            case_file(busy_case),
            "--as-of",
            "2026-11-22",
            "--order-amount",
            "10000",
            "--compact",
        ],
        capture_output=True,
        timeout=120,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode("utf-8").rstrip("\n") == evaluate(policy, busy_case, AS_OF, order="10000").json
