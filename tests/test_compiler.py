"""The policy compiler, stage by stage: each bad policy is the shipped one with one visible edit."""

import hashlib
import json
import re
import subprocess
import sys

import pytest

from engine import EngineFailure, PolicyInvalid, compile_policy, evaluate
from engine.cli import main
from engine.compiler import MAX_ERRORS, STAGES, canonical_content
from engine.policy_schema import PolicySchema

from helpers import AS_OF, ROOT, compiled, customer, edit, invoice, make_case, only_error, policy_errors, position

HIGH_REVIEW = "when: {field: reputation, eq: high}\n    every_months: 6"


def test_the_shipped_policy_compiles_through_every_named_stage(policy):
    assert STAGES == ("parse", "shape", "resolve", "check", "build")
    assert policy.name == "default" and policy.currency == "CNY" and policy.exponent == 2
    assert {"credit.limit.high", "check.over_limit", "dunning.stage3", "alert.score_drop"} <= set(policy.rules_by_id)


def test_a_policy_error_formats_as_file_line_column_code_message():
    error = only_error("policy: [", "broken.yaml")
    assert re.fullmatch(r"broken\.yaml:\d+:\d+: E_YAML_SYNTAX: .+", error.format())


# ---------------------------------------------------------------- parse
def test_a_yaml_syntax_error_is_reported_at_its_line(policy_text):
    text = edit(policy_text, "  currency: CNY\n", "  currency: CNY\n   oops: 1\n")
    error = only_error(text)
    assert error.code == "E_YAML_SYNTAX"
    assert (error.file, error.line) == ("bad.yaml", position(text, "   oops: 1")[0])
    assert error.column == position(text, ": 1")[1]
    assert "mapping values are not allowed" in error.message


def test_a_tab_in_the_indentation_is_a_syntax_error_at_its_line(policy_text):
    text = edit(policy_text, "  currency: CNY\n", "\tcurrency: CNY\n")
    error = only_error(text)
    assert (error.code, error.line, error.column) == ("E_YAML_SYNTAX", position(text, "\tcurrency")[0], 1)


def test_a_duplicate_key_is_reported_at_its_second_occurrence(policy_text):
    text = edit(policy_text, "  currency: CNY\n", "  currency: CNY\n  currency: USD\n")
    error = only_error(text)
    assert error.code == "E_YAML_DUPLICATE_KEY"
    assert (error.line, error.column) == position(text, "currency: USD")
    assert error.path == "policy.currency"
    assert "'currency' appears twice" in error.message


def test_duplicate_keys_in_different_mappings_are_all_reported(policy_text):
    text = edit(policy_text, "  currency: CNY\n", "  currency: CNY\n  currency: USD\n")
    text = edit(text, "  grace_days: 5\n", "  grace_days: 5\n  grace_days: 7\n")
    errors = policy_errors(text)
    assert [(e.code, e.path) for e in errors] == [
        ("E_YAML_DUPLICATE_KEY", "policy.currency"),
        ("E_YAML_DUPLICATE_KEY", "interest.grace_days"),
    ]


def test_a_non_finite_number_is_refused_while_parsing(policy_text):
    text = edit(policy_text, 'daily_rate: "0.0005"', "daily_rate: .nan")
    error = only_error(text)
    assert error.code == "E_YAML_SYNTAX" and "not a finite number" in error.message
    assert error.line == position(text, ".nan")[0]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a list\n- of things\n", "just a string\n"])
def test_a_file_that_is_not_a_mapping_of_sections_is_refused(text):
    error = only_error(text)
    assert (error.code, error.line, error.column) == ("E_SHAPE", 1, 1)


# ---------------------------------------------------------------- shape
def test_an_unknown_key_is_reported_with_a_did_you_mean(policy_text):
    text = edit(policy_text, 'fixed_fee: "0"', 'fixed_fees: "0"')
    error = only_error(text)
    assert error.code == "E_UNKNOWN_KEY"
    assert error.path == "interest.fixed_fees"
    assert (error.line, error.column) == position(text, "fixed_fees")
    assert error.message == "unknown key 'fixed_fees'; did you mean 'fixed_fee'?"


def test_a_misspelt_optional_section_is_an_unknown_key_suggesting_the_section(policy_text):
    text = edit(policy_text, "alerts:  ", "alertz:  ")
    error = only_error(text)
    assert (error.code, error.path) == ("E_UNKNOWN_KEY", "alertz")
    assert (error.line, error.column) == (position(text, "alertz:")[0], 1)
    assert "did you mean 'alerts'?" in error.message


def test_an_unknown_key_without_a_close_match_has_no_suggestion(policy_text):
    text = edit(policy_text, 'fixed_fee: "0"', 'fixed_fee: "0"\n  colour: blue')
    error = only_error(text)
    assert error.code == "E_UNKNOWN_KEY" and error.message == "unknown key 'colour'"


def test_a_renamed_required_key_is_reported_as_missing_and_as_unknown(policy_text):
    text = edit(policy_text, "  grace_days: 5", "  grace_dayz: 5")
    errors = policy_errors(text)
    assert {(e.code, e.path) for e in errors} == {
        ("E_MISSING", "interest.grace_days"),
        ("E_UNKNOWN_KEY", "interest.grace_dayz"),
    }
    missing = next(e for e in errors if e.code == "E_MISSING")
    assert (missing.line, missing.column) == (position(text, "interest:  ")[0], 1)  # points at its parent


def test_a_missing_section_is_reported_at_the_top_of_the_file(policy_text):
    start, end = policy_text.index("interest:  "), policy_text.index("repayment:  ")
    text = policy_text[:start] + policy_text[end:]
    error = only_error(text)
    assert (error.code, error.path, error.message) == ("E_MISSING", "interest", "'interest' is required")
    assert (error.line, error.column) == (position(text, "policy:")[0], 1)


def test_a_missing_required_key_in_a_rule_points_at_the_rule(policy_text):
    text = edit(policy_text, '    severity: warning\n    message: "utilisation', '    message: "utilisation')
    error = only_error(text)
    assert (error.code, error.path) == ("E_MISSING", "alerts[0].severity")
    assert (error.line, error.column) == position(text, "id: alert.utilisation")


def test_an_unknown_condition_operator_suggests_the_right_one(policy_text):
    text = edit(
        policy_text, "{field: reputation, eq: high}\n      limit", "{field: reputation, eqq: high}\n      limit"
    )
    error = only_error(text)
    assert (error.code, error.path) == ("E_SHAPE", "credit.limits[0].when.eqq")
    assert (error.line, error.column) == position(text, "eqq")
    assert "did you mean 'eq'?" in error.message


# ---------------------------------------------------------------- resolve
def test_an_unknown_fact_field_is_reported_with_a_did_you_mean(policy_text):
    text = edit(policy_text, "{field: customer_age_days, lt: 180}", "{field: customer_age_dys, lt: 180}")
    error = only_error(text)
    assert error.code == "E_UNKNOWN_FIELD"
    assert error.path == "credit.limits[3].when.field"
    assert (error.line, error.column) == position(text, "field: customer_age_dys")
    assert error.message == "unknown fact field 'customer_age_dys'; did you mean 'customer_age_days'?"


def test_a_band_class_on_an_unknown_field_is_reported(policy_text):
    text = edit(policy_text, "field: credit_score", "field: credit_scroe")
    error = only_error(text)
    assert (error.code, error.path) == ("E_UNKNOWN_FIELD", "classification.reputation.field")
    assert "did you mean 'credit_score'?" in error.message


def test_an_enum_value_not_declared_in_categories_is_reported(policy_text):
    text = edit(policy_text, "{field: region, eq: remote}\n    strategy", "{field: region, eq: remot}\n    strategy")
    error = only_error(text)
    assert error.code == "E_UNKNOWN_VALUE"
    assert error.path == "segments[2].when.eq"
    assert (error.line, error.column) == position(text, "eq: remot}")
    assert "'remot' is not a value of 'region' (one of local, remote)" in error.message
    assert "did you mean 'remote'?" in error.message


def test_a_band_label_is_a_declared_value_only_of_its_own_class(policy_text):
    # "large" is an amount tier and a company size, but not a reputation
    text = edit(
        policy_text,
        "when: {field: reputation, eq: high}\n      limit",
        "when: {field: reputation, eq: large}\n      limit",
    )
    error = only_error(text)
    assert (error.code, error.path) == ("E_UNKNOWN_VALUE", "credit.limits[0].when.eq")


@pytest.mark.parametrize(
    "old, new, needle, message",
    [
        (
            "{field: customer_age_days, lt: 180}",
            "{field: customer_age_days, lt: soon}",
            "lt: soon",
            "'customer_age_days' compares with a number: 'soon' is not a number",
        ),
        (
            "{field: utilisation, gt: 90}",
            "{field: utilisation, gt: 90.001}",
            "gt: 90.001",
            "'utilisation' threshold 90.001 is finer than 0.01 %",
        ),
        (
            "{field: customer_age_days, lt: 180}",
            "{field: customer_age_days, lt: 180.5}",
            "lt: 180.5",
            "'customer_age_days' threshold 180.5 is finer than 1",
        ),
        (
            "{field: reputation, eq: high}\n      limit",
            "{field: reputation, gt: high}\n      limit",
            "gt: high",
            "'gt' needs numbers; 'reputation' is enum",
        ),
        (
            "{field: aging_worsened, eq: true}",
            "{field: aging_worsened, eq: yes_please}",
            "eq: yes_please",
            "'aging_worsened' is true/false, got 'yes_please'",
        ),
        (
            "{field: exposure_after_order, gt: {field: credit_limit}}",
            "{field: exposure_after_order, gt: {field: dunning_stage}}",
            "gt: {field: dunning_stage}",
            "cannot compare money field 'exposure_after_order' with int field 'dunning_stage'",
        ),
    ],
    ids=[
        "word-for-a-number",
        "finer-than-a-basis-point",
        "fraction-of-a-day",
        "ordering-an-enum",
        "non-boolean",
        "money-against-days",
    ],
)
def test_a_threshold_of_the_wrong_type_is_reported_at_the_value(policy_text, old, new, needle, message):
    text = edit(policy_text, old, new)
    error = only_error(text)
    assert error.code == "E_VALUE_TYPE"
    assert (error.line, error.column) == position(text, needle)
    assert error.message == message


def test_a_negative_threshold_on_a_field_that_is_never_negative_is_reported(policy_text):
    text = edit(policy_text, "{field: customer_age_days, lt: 180}", "{field: customer_age_days, lt: -180}")
    error = only_error(text)
    assert (error.code, error.path) == ("E_VALUE_SIGN", "credit.limits[3].when.lt")
    assert (error.line, error.column) == position(text, "lt: -180")
    assert "never negative" in error.message


def test_a_negative_threshold_is_fine_on_a_signed_field(policy_text):
    text = edit(policy_text, "{field: score_drop, gte: 10}", "{field: score_drop, lte: -10}")
    with compiled(text) as variant:
        assert variant.rules_by_id["alert.score_drop"].condition == ("cmp", "score_drop", "lte", -10, False)


def test_a_decision_stage_field_in_a_profile_rule_is_reported(policy_text):
    text = edit(policy_text, HIGH_REVIEW, "when: {field: utilisation, gt: 50}\n    every_months: 6")
    error = only_error(text)
    assert (error.code, error.path) == ("E_FIELD_STAGE", "review[2].when.field")
    assert (error.line, error.column) == position(text, "field: utilisation, gt: 50")
    assert "'utilisation' is only known after credit limits" in error.message


def test_a_decision_stage_field_is_allowed_in_an_alert(policy_text):
    text = edit(policy_text, "{field: score_drop, gte: 10}", "{field: dunning_stage, gte: 2}")
    with compiled(text) as variant:
        assert variant.rules_by_id["alert.score_drop"].phase == "decision"


@pytest.mark.parametrize(
    "old, new, code, path",
    [
        (
            '{label: medium, min: "10000", max: "99999.99"}',
            '{label: medium, min: "10001", max: "99999.99"}',
            "E_BAND_GAP",
            "classification.amount_tier.bands[1].min",
        ),
        (
            '{label: medium, min: "10000", max: "99999.99"}',
            '{label: medium, min: "9999", max: "99999.99"}',
            "E_BAND_OVERLAP",
            "classification.amount_tier.bands[1].min",
        ),
        (
            '{label: small, max: "9999.99"}',
            '{label: small, min: 0, max: "9999.99"}',
            "E_BAND_GAP",
            "classification.amount_tier.bands[0].min",
        ),
        (
            '{label: large, min: "100000"}',
            '{label: large, min: "100000", max: "1000000000"}',
            "E_BAND_GAP",
            "classification.amount_tier.bands[2].max",
        ),
    ],
    ids=["gap", "overlap", "first-band-has-a-min", "last-band-has-a-max"],
)
def test_bands_must_cover_every_value_exactly_once(policy_text, old, new, code, path):
    error = only_error(edit(policy_text, old, new))
    assert (error.code, error.path) == (code, path)


def test_a_band_gap_message_names_both_bands_and_their_bounds(policy_text):
    text = edit(
        policy_text, '{label: medium, min: "10000", max: "99999.99"}', '{label: medium, min: "10001", max: "99999.99"}'
    )
    error = only_error(text)
    assert error.message == "gap between 'small' (max 9999.99) and 'medium' (min 10001.00)"
    assert (error.line, error.column) == position(text, 'min: "10001"')


def test_an_overlap_in_a_scorecard_factor_is_reported(policy_text):
    text = edit(policy_text, "{min: 4, max: 10, points: 18}", "{min: 3, max: 10, points: 18}")
    error = only_error(text)
    assert (error.code, error.path) == ("E_BAND_OVERLAP", "scorecard.factors.avg_days_late.bands[1].min")


def test_a_scorecard_whose_best_total_falls_short_of_its_max_is_reported(policy_text):
    text = edit(policy_text, "{min: 95, points: 40}", "{min: 95, points: 5}")
    error = only_error(text)
    assert (error.code, error.path) == ("E_UNREACHABLE", "scorecard.max")
    assert error.message == "the best possible total is 90, so a score of 100 can never be reached"


def test_stages_numbered_out_of_order_are_reported(policy_text):
    text = edit(policy_text, "    - stage: 2\n", "    - stage: 3\n")
    error = only_error(text)
    assert (error.code, error.path) == ("E_STAGE_ORDER", "dunning.stages[1].stage")
    assert (error.line, error.column) == position(text, "stage: 3")
    assert "expected 2, got 3" in error.message


def test_a_stage_that_starts_no_later_than_the_previous_one_is_reported(policy_text):
    text = edit(
        policy_text,
        '          min_days_overdue: 31\n          message: "invoice {anchor_invoice} is',
        '          min_days_overdue: 1\n          message: "invoice {anchor_invoice} is',
    )
    error = only_error(text)
    assert (error.code, error.path) == ("E_STAGE_ORDER", "dunning.stages[1].entry")
    assert "stage 2 starts at 1 days overdue" in error.message


def test_an_unknown_currency_is_reported(policy_text):
    text = edit(policy_text, "currency: CNY", "currency: XYZ")
    error = only_error(text)
    assert (error.code, error.path) == ("E_UNKNOWN_CURRENCY", "policy.currency")
    assert error.message == "unknown currency 'XYZ'"
    assert (error.line, error.column) == position(text, "currency: XYZ")


def test_a_currency_without_two_decimals_is_refused_rather_than_misread(policy_text):
    # policy money is read with 2 decimals; JPY (0 decimals) would scale every limit by 100
    error = only_error(edit(policy_text, "currency: CNY", "currency: JPY"))
    assert (error.code, error.path) == ("E_UNKNOWN_CURRENCY", "policy.currency")
    assert "2 decimal places" in error.message


def test_another_two_decimal_currency_sets_its_exponent(policy_text):
    with compiled(edit(policy_text, "currency: CNY", "currency: EUR")) as variant:
        assert (variant.currency, variant.exponent) == ("EUR", 2)


# ---------------------------------------------------------------- check
def test_duplicate_rule_ids_are_reported_with_the_line_of_the_first(policy_text):
    text = edit(policy_text, "id: review.medium", "id: review.low")
    error = only_error(text)
    assert (error.code, error.path) == ("E_DUPLICATE_ID", "review[1]")
    assert (error.line, error.column) == position(text, "id: review.low", after="id: review.low")
    assert error.message == f"rule id 'review.low' is already used at line {position(text, 'id: review.low')[0]}"


def test_duplicate_rule_ids_across_sections_are_reported(policy_text):
    text = edit(policy_text, "id: segment.remote", "id: alert.utilisation")
    error = only_error(text)
    # alerts are built after segments, so the alert is the second use even though it comes first in the file
    assert (error.code, error.path) == ("E_DUPLICATE_ID", "alerts[0]")
    first_line = position(text, "id: alert.utilisation", after="segments:")[0]
    assert error.message.endswith(f"already used at line {first_line}")


@pytest.mark.parametrize(
    "when, shown",
    [
        (
            "{all: [{field: customer_age_days, gt: 10}, {field: customer_age_days, lt: 5}]}",
            "(customer_age_days > 10 and customer_age_days < 5)",
        ),
        ("{all: [{field: region, eq: local}, {field: region, eq: remote}]}", "(region = local and region = remote)"),
        (
            "{all: [{field: customer_age_days, gt: 10}, {field: customer_age_days, lt: 11}]}",
            "(customer_age_days > 10 and customer_age_days < 11)",
        ),
        (
            "{all: [{field: region, eq: local}, {not: {field: region, eq: local}}]}",
            "(region = local and region ≠ local)",
        ),
    ],
    ids=["empty-range", "two-equalities", "no-integer-between", "value-and-its-negation"],
)
def test_a_rule_that_can_never_match_is_reported(policy_text, when, shown):
    text = edit(policy_text, HIGH_REVIEW, f"when: {when}\n    every_months: 6")
    error = only_error(text)
    assert (error.code, error.path) == ("E_UNREACHABLE", "review[2].when")
    assert (error.line, error.column) == position(text, "when: {all", after="id: review.high")
    assert error.message == f"rule 'review.high' can never match: {shown}"


def test_a_single_point_range_is_reachable(policy_text):
    text = edit(
        policy_text,
        HIGH_REVIEW,
        "when: {all: [{field: customer_age_days, gte: 10}, {field: customer_age_days, lte: 10}]}\n    every_months: 6",
    )
    with compiled(text) as variant:
        assert "review.high" in variant.rules_by_id


def test_an_unknown_message_placeholder_is_reported_with_a_did_you_mean(policy_text):
    text = edit(policy_text, "high reputation: review every six months", "score {credit_scor}: review every six months")
    error = only_error(text)
    assert (error.code, error.path) == ("E_MESSAGE", "review[2].message")
    assert (error.line, error.column) == position(text, 'message: "score {credit_scor}')
    assert error.message == "message uses unknown placeholder '{credit_scor}'; did you mean 'credit_score'?"


def test_a_decision_field_in_a_profile_message_says_where_it_can_be_used(policy_text):
    text = edit(policy_text, "high reputation: review every six months", "review, limit {credit_limit}")
    error = only_error(text)
    assert error.code == "E_MESSAGE" and "usable in credit.check and alerts" in error.message


def test_a_malformed_message_template_is_reported(policy_text):
    error = only_error(edit(policy_text, "high reputation: review every six months", "review {oops"))
    assert (error.code, error.path) == ("E_MESSAGE", "review[2].message")
    assert "expected '}'" in error.message


def test_a_rule_may_use_its_own_parameters_in_its_message(policy, policy_text):
    assert "{every_months}" not in policy_text  # the shipped review rules don't yet
    text = edit(policy_text, "high reputation: review every six months", "high: every {every_months} months")
    with compiled(text) as variant:
        assert variant.rules_by_id["review.high"].message == "high: every {every_months} months"


def test_too_many_range_tests_for_the_engine_are_refused_at_compile_time(policy_text):
    alerts = "".join(
        f"  - id: alert.u{i}\n    when: {{field: utilisation, gt: {i}}}\n    severity: info\n" for i in range(70)
    )
    text = edit(policy_text, "alerts:                        # 风险预警\n", "alerts:\n" + alerts)
    error = only_error(text)
    assert error.code == "E_ENGINE_LIMIT"
    assert "more than 64 range tests in the decision rules could hold at once" in error.message
    # located at the rule that goes over the limit, not at the top of the file
    assert error.path.startswith("alerts[") and error.path.endswith("].when")
    assert error.line > 1


def test_many_range_tests_each_behind_an_equality_fit_the_engine(policy_text):
    alerts = "".join(
        f"  - id: alert.range{i}\n    when: {{all: [{{field: customer_age_days, eq: {i}}}, "
        f"{{field: utilisation, gt: {i}}}]}}\n    severity: info\n"
        for i in range(70)
    )
    text = edit(policy_text, "alerts:                        # 风险预警\n", "alerts:\n" + alerts)
    with compiled(text) as variant:
        assert len([r for r in variant.rules if r.id.startswith("alert.range")]) == 70


def test_more_than_256_distinct_tests_on_one_field_are_refused(policy_text):
    alerts = "".join(
        f"  - id: alert.d{i}\n    when: {{field: customer_age_days, eq: {i}}}\n    severity: info\n" for i in range(260)
    )
    error = only_error(edit(policy_text, "alerts:                        # 风险预警\n", "alerts:\n" + alerts))
    assert error.code == "E_ENGINE_LIMIT"
    assert "260 distinct tests on 'customer_age_days' in the decision rules" in error.message


def test_more_than_256_rules_with_one_condition_are_refused_at_the_first_one_too_many(policy_text):
    segments = "".join(
        f"  - id: segment.s{i}\n    when: {{field: industry, eq: services}}\n    strategy: [x]\n" for i in range(260)
    )
    text = edit(
        policy_text,
        "segments:                      # 分类策略 for combinations of classes; each figure a segment changes is a reason naming it\n",
        "segments:\n" + segments,
    )
    error = only_error(text)
    assert (error.code, error.path) == ("E_ENGINE_LIMIT", "segments[256].when")
    assert (error.line, error.column) == position(text, "when", after="id: segment.s256\n")
    assert error.message == (
        "more than 256 profile rules have this same condition (industry = services); the "
        "engine allows 256: merge them, or tell them apart"
    )


def test_a_ruleset_durable_rules_refuses_is_a_policy_error_not_an_exception(policy_text):
    # 250 rules sharing one branch of an `any`: past the checks above, durable_rules refuses (its error 107)
    segments = "".join(
        f"  - id: segment.s{i}\n    when: {{any: [{{field: industry, eq: services}}, "
        f"{{field: customer_age_days, eq: {i}}}]}}\n    strategy: [x]\n"
        for i in range(250)
    )
    text = edit(
        policy_text,
        "segments:                      # 分类策略 for combinations of classes; each figure a segment changes is a reason naming it\n",
        "segments:\n" + segments,
    )
    error = only_error(text)
    assert error.code == "E_ENGINE_LIMIT"
    assert error.message.startswith("durable_rules refused the profile rules as a whole (")
    assert (error.path, error.line) == ("credit.limits[0]", position(text, "id: credit.limit.high")[0])


# ---------------------------------------------------------------- accumulation and cap
def test_errors_of_one_stage_are_all_reported_together(policy_text):
    text = edit(policy_text, "{field: customer_age_days, lt: 180}", "{field: customer_age_dys, lt: 180}")
    text = edit(text, "{field: region, eq: remote}\n    strategy", "{field: region, eq: remot}\n    strategy")
    text = edit(text, "{field: score_drop, gte: 10}", "{field: broken_promises, gte: -1}")
    text = edit(text, "currency: CNY", "currency: XYZ")
    errors = policy_errors(text)
    assert sorted((e.code, e.path) for e in errors) == [
        ("E_UNKNOWN_CURRENCY", "policy.currency"),
        ("E_UNKNOWN_FIELD", "credit.limits[3].when.field"),
        ("E_UNKNOWN_VALUE", "segments[2].when.eq"),
        ("E_VALUE_SIGN", "alerts[5].when.gte"),
    ]


def test_shape_errors_in_several_sections_are_all_reported(policy_text):
    text = edit(policy_text, 'fixed_fee: "0"', 'fixed_fees: "0"')
    text = edit(text, "    severity: critical\n", "    severity: loud\n")
    text = edit(text, "  name: default", "  name: default policy")
    errors = policy_errors(text)
    assert [e.path for e in errors] == ["alerts[2].severity", "interest.fixed_fees", "policy.name"]
    assert [e.code for e in errors] == ["E_SHAPE", "E_UNKNOWN_KEY", "E_SHAPE"]


def test_a_stage_with_errors_stops_the_pipeline_before_the_next_stage(policy_text):
    # an unknown key (shape) and a duplicate id (check): only the earlier stage is reported
    text = edit(policy_text, 'fixed_fee: "0"', 'fixed_fees: "0"')
    text = edit(text, "id: review.medium", "id: review.low")
    assert [e.code for e in policy_errors(text)] == ["E_UNKNOWN_KEY"]


def test_the_number_of_reported_errors_is_capped(policy_text):
    alerts = "".join(
        f"  - id: alert.x{i}\n    when: {{field: nonsense_{i}, gt: 0}}\n    severity: info\n" for i in range(80)
    )
    errors = policy_errors(edit(policy_text, "alerts:                        # 风险预警\n", "alerts:\n" + alerts))
    assert len(errors) == MAX_ERRORS
    assert {e.code for e in errors} == {"E_UNKNOWN_FIELD"}
    assert errors[0].path == "alerts[0].when.field"


def test_the_number_of_reported_duplicate_keys_is_capped(policy_text):
    keys = "".join(f"  k{i}: 1\n  k{i}: 2\n" for i in range(80))
    errors = policy_errors(edit(policy_text, "  description:", keys + "  description:"))
    assert len(errors) == MAX_ERRORS
    assert {e.code for e in errors} == {"E_YAML_DUPLICATE_KEY"}


def test_policy_invalid_carries_its_own_code_and_the_first_errors_in_its_message(policy_text):
    with pytest.raises(PolicyInvalid) as info:
        compile_policy(edit(policy_text, "currency: CNY", "currency: XYZ"), "p.yaml")
    assert info.value.code == "E_POLICY_INVALID"
    assert str(info.value).startswith("p.yaml:")
    assert "E_UNKNOWN_CURRENCY" in str(info.value)


# ---------------------------------------------------------------- version
def test_the_version_is_the_sha256_of_the_canonical_content(policy):
    assert re.fullmatch(r"[0-9a-f]{64}", policy.version)
    assert policy.version == hashlib.sha256(canonical_content(policy.content).encode("utf-8")).hexdigest()
    assert policy.short_version == policy.version[:12]


def test_the_same_text_compiles_to_equal_versions(policy, policy_text):
    with compiled(policy_text, policy.source) as again:
        assert again.version == policy.version
        assert again == policy


def test_comments_and_whitespace_do_not_change_the_version(policy, policy_text):
    text = "# a new header comment\n\n" + policy_text.replace("  # 按欠款金额: total outstanding", "")
    text = edit(text, "  grace_days: 5", "  grace_days:    5      # five days' grace")
    text = edit(text, "{field: utilisation, gt: 90}", "{ field: utilisation,   gt: 90 }")
    text = text.replace("\n", "\n\n", 3)
    with compiled(text) as variant:
        assert variant.version == policy.version


def test_flow_and_block_style_and_section_order_do_not_change_the_version(policy, policy_text):
    text = edit(policy_text, '      - {label: small, max: "9999.99"}', '      - label: small\n        max: "9999.99"')
    start, end = text.index("segments:  "), len(text)
    text = text[start:end] + "\n" + text[:start]  # the segments section first
    with compiled(text) as variant:
        assert variant.version == policy.version


def test_a_changed_number_changes_the_version(policy, policy_text):
    with compiled(edit(policy_text, 'limit: "500000"', 'limit: "500001"')) as variant:
        assert variant.version != policy.version
        assert variant.rules_by_id["credit.limit.high"].param("limit") == 50_000_100


def test_reordering_rules_changes_the_version(policy, policy_text):
    low = policy_text[policy_text.index("  - id: review.low") : policy_text.index("  - id: review.medium")]
    text = edit(policy_text, low, "").replace("segments:  ", low + "\nsegments:  ", 1)
    with compiled(text) as variant:
        assert variant.version != policy.version


# ---------------------------------------------------------------- hot reload
def test_a_policy_can_be_disposed_and_a_new_version_compiled_in_the_same_process(policy_text):
    case = make_case(customer(credit_score=90), invoices=[invoice("INV-1", "1000.00", due=10)])
    first = compile_policy(policy_text)
    before = evaluate(first, case, AS_OF)
    first.dispose()
    with pytest.raises(EngineFailure):
        evaluate(first, case, AS_OF)
    with compiled(edit(policy_text, 'limit: "500000"', 'limit: "600000"')) as second:
        after = evaluate(second, case, AS_OF)
        assert second.version != first.version
    assert before.data["credit"]["limit"] == "500000.00"
    assert after.data["credit"]["limit"] == "600000.00"
    assert after.policy_version == second.version


def test_disposing_twice_is_harmless(policy_text):
    variant = compile_policy(policy_text)
    variant.dispose()
    variant.dispose()
    assert all(m.disposed for m in variant.matchers.values())


def test_two_compiled_copies_of_one_text_live_side_by_side(policy, policy_text):
    case = make_case(invoices=[invoice("INV-1", "25000.00", due=-40)])
    with compiled(policy_text) as copy:
        assert evaluate(copy, case, AS_OF).json == evaluate(policy, case, AS_OF).json


def test_many_reloads_keep_giving_the_same_answers(policy_text):
    case = make_case(invoices=[invoice("INV-1", "25000.00", due=-40)])
    answers = set()
    for _ in range(20):
        with compiled(policy_text) as variant:
            answers.add(evaluate(variant, case, AS_OF).json)
    assert len(answers) == 1


# ---------------------------------------------------------------- CLI
@pytest.fixture
def bad_policy_file(tmp_path, policy_text):
    text = edit(policy_text, "{field: customer_age_days, lt: 180}", "{field: customer_age_dys, lt: 180}")
    text = edit(text, "{field: region, eq: remote}\n    strategy", "{field: region, eq: remot}\n    strategy")
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    return path, text


def test_policy_check_prints_file_line_column_code_message_on_stderr_and_exits_1(bad_policy_file, capsys):
    path, text = bad_policy_file
    assert main(["policy", "check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    line, col = position(text, "field: customer_age_dys")
    assert f"{path}:{line}:{col}: E_UNKNOWN_FIELD: unknown fact field 'customer_age_dys'" in lines[0]
    assert all(re.match(rf"{re.escape(str(path))}:\d+:\d+: E_[A-Z_]+: ", ln) for ln in lines)
    assert [ln.split(": ")[1] for ln in lines] == ["E_UNKNOWN_FIELD", "E_UNKNOWN_VALUE"]


def test_policy_check_with_json_format_prints_a_json_list_of_errors(bad_policy_file, capsys):
    path, text = bad_policy_file
    assert main(["policy", "check", str(path), "--format", "json"]) == 1
    out, err = capsys.readouterr()
    errors = json.loads(err)
    assert isinstance(errors, list) and len(errors) == 2
    line, col = position(text, "eq: remot}")
    assert errors[1] == {
        "code": "E_UNKNOWN_VALUE",
        "path": "segments[2].when.eq",
        "file": str(path),
        "line": line,
        "column": col,
        "message": errors[1]["message"],
    }
    assert "remot" in errors[1]["message"]


def test_policy_check_of_the_shipped_policy_succeeds(policy, capsys):
    assert main(["policy", "check", policy.source, "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {"valid": True, "version": policy.version, "rules": len(policy.rules)}


def test_policy_check_of_a_missing_file_exits_2_with_one_line(tmp_path, capsys):
    # a file that cannot be read is bad input (exit 2), not an invalid policy (exit 1)
    assert main(["policy", "check", str(tmp_path / "nope.yaml")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"{tmp_path / 'nope.yaml'}: E_FILE: No such file or directory\n"


def test_the_creditctl_command_exits_1_for_an_invalid_policy(bad_policy_file):
    path, _ = bad_policy_file
    run = subprocess.run(
        [sys.executable, "-m", "engine.cli", "policy", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert run.returncode == 1
    assert run.stdout == ""
    assert "E_UNKNOWN_FIELD" in run.stderr


def test_policy_schema_lists_every_top_level_section(capsys, policy_text):
    import yaml

    assert main(["policy", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    sections = set(schema["properties"])
    assert sections == set(PolicySchema._declared_fields)
    assert set(yaml.safe_load(policy_text)) <= sections
    assert schema["additionalProperties"] is False


def test_policy_schema_has_no_dangling_references(capsys):
    assert main(["policy", "schema"]) == 0
    text = capsys.readouterr().out
    schema = json.loads(text)
    refs = set(re.findall(r'"#/definitions/([^"]+)"', text))
    assert refs and refs <= set(schema["definitions"])


def test_the_shipped_policy_validates_against_its_json_schema(policy_text, capsys):
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    assert main(["policy", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    validator = jsonschema.Draft7Validator(schema)
    data = yaml.safe_load(policy_text)
    assert [e.message for e in validator.iter_errors(data)] == []
    data["alerts"][0]["severity"] = "loud"
    data["interest"]["colour"] = "blue"
    assert len(list(validator.iter_errors(data))) == 2
