"""Every rule states its `when`. A deleted condition is E_MISSING_CONDITION naming the rule and its line,
never a rule that silently applies to everybody (deleting the `when` of check.over_limit used to make
it reject every order). `when: always` is the explicit form where a section can mean it, and is refused
where it cannot (credit.check, alerts). Texts stored before this rule compile as they were accepted."""

from __future__ import annotations

import json
import re

import pytest

from engine import PolicyInvalid, compile_policy, evaluate
from engine.cli import main
from rules.conditions import ALWAYS
from engine.policy_schema import json_schema

from helpers import AS_OF, compiled, edit, only_error, policy_errors, position
from test_fast_paths import outcome, policy_inputs


def legacy_text(policy_text: str) -> str:
    """The shipped policy as it was before `when` was required: no `when: always` anywhere."""
    text, n = re.subn(r"\n *when: always *(#.*)?(?=\n)", "", policy_text)
    text, m = re.subn(r", when: always\}", "}", text)
    assert (n, m) == (4, 6), (n, m)
    return text


# (text the rule's `when` line is, the rule's id line, path, message start) for one rule of each kind
DELETIONS = [
    (
        "      when: {field: exposure_after_order, gt: {field: credit_limit}}\n",
        "- id: check.over_limit",
        "credit.check[0]",
        "credit check rule 'check.over_limit' has no 'when'; it needs one: a rule that always "
        "held would reject every order",
    ),
    (
        "      when: {field: reputation, eq: high}\n      limit",
        "- id: credit.limit.high",
        "credit.limits[0]",
        "limit rule 'credit.limit.high' has no 'when'; write its condition, or 'when: always' for a default",
    ),
    (
        "      when: {field: amount_tier, eq: large}\n      owner",
        "- id: owner.dedicated",
        "dunning.owners[0]",
        "owner rule 'owner.dedicated' has no 'when'",
    ),
    (
        "      when: always             # the catch-all: every action no rule above owns\n",
        "- id: owner.team",
        "dunning.owners[4]",
        "owner rule 'owner.team' has no 'when'",
    ),
    (
        "          when: {field: overdue_amount_tier, eq: large}    # the overdue amount, not the total outstanding\n"
        '          message: "large overdue amount',
        "- id: dunning.stage2.large",
        "dunning.stages[1].entry[1]",
        "entry rule 'dunning.stage2.large' has no 'when'; write its condition, or 'when: always' when "
        "min_days_overdue alone decides",
    ),
    (
        "          when: always         # the stage's floor: min_days_overdue alone decides\n",
        "- id: dunning.stage1",
        "dunning.stages[0].entry[0]",
        "entry rule 'dunning.stage1' has no 'when'",
    ),
    (
        "          when: {field: amount_tier, eq: small}\n",
        "- id: dunning.stage2.write_off",
        "dunning.stages[1].actions[4]",
        "action 'dunning.stage2.write_off' has no 'when'; write its condition, or 'when: always' for an action",
    ),
    (
        "      when: {all: [{field: reputation, in: [high, medium]}, {field: industry, eq: manufacturing}]}\n",
        "- id: repayment.instalments.manufacturing",
        "repayment.instalments[0]",
        "instalments rule 'repayment.instalments.manufacturing' has no 'when'",
    ),
    (
        "      when: {field: reputation, eq: high}\n      max_days",
        "- id: repayment.deferral.high",
        "repayment.deferral[0]",
        "deferral rule 'repayment.deferral.high' has no 'when'",
    ),
    (
        "    when: {field: reputation, eq: high}\n    every_months",
        "- id: review.high",
        "review[2]",
        "review rule 'review.high' has no 'when'",
    ),
    (
        "    when: {field: industry, eq: services}\n",
        "- id: segment.services",
        "segments[1]",
        "segment 'segment.services' has no 'when'",
    ),
    (
        "    when: {field: utilisation, gt: 90}\n",
        "- id: alert.utilisation",
        "alerts[0]",
        "alert 'alert.utilisation' has no 'when'; it needs one: an alert raised for every customer would tell nothing",
    ),
]


@pytest.mark.parametrize("when, rule, path, message", DELETIONS, ids=[d[2] for d in DELETIONS])
def test_a_deleted_when_is_an_error_naming_the_rule_and_its_line(policy_text, when, rule, path, message):
    text = edit(policy_text, when, when.split("\n", 1)[1])  # the `when` line goes, what follows it stays
    error = only_error(text)
    assert (error.code, error.path) == ("E_MISSING_CONDITION", path)
    assert (error.line, error.column) == position(text, rule[2:])  # the rule: its first key, `id`
    assert error.message.startswith(message), error.message


def test_an_action_without_id_or_when_is_named_by_its_default_id(policy_text):
    text = edit(
        policy_text,
        "{type: written_demand, channel: letter, repeat: once, when: always}",
        "{type: written_demand, channel: letter, repeat: once}",
    )
    error = only_error(text)
    assert (error.code, error.path) == ("E_MISSING_CONDITION", "dunning.stages[1].actions[2]")
    assert (error.line, error.column) == position(text, "{type: written_demand")
    assert error.message.startswith("action 'dunning.stage2.written_demand' has no 'when'")


def test_an_empty_when_is_a_missing_condition(policy_text):
    text = edit(policy_text, "      when: {field: exposure_after_order, gt: {field: credit_limit}}\n", "      when:\n")
    error = only_error(text)
    assert (error.code, error.path) == ("E_MISSING_CONDITION", "credit.check[0]")


def test_deleting_the_over_limit_condition_fails_policy_check(tmp_path, policy_text, capsys):
    path = tmp_path / "policies.yaml"
    path.write_text(
        edit(policy_text, "      when: {field: exposure_after_order, gt: {field: credit_limit}}\n", ""),
        encoding="utf-8",
    )
    assert main(["policy", "check", str(path)]) == 1
    out, err = capsys.readouterr()
    line, col = position(path.read_text(encoding="utf-8"), "id: check.over_limit")
    assert out == "" and err.startswith(
        f"{path}:{line}:{col}: E_MISSING_CONDITION: credit check rule 'check.over_limit'"
    )


@pytest.mark.parametrize(
    "old, rule, path",
    [
        ("{field: exposure_after_order, gt: {field: credit_limit}}", "check.over_limit", "credit.check[0].when"),
        ("{field: deposit_pct, gt: 0}", "check.deposit", "credit.check[5].when"),
        ("{field: utilisation, gt: 90}", "alert.utilisation", "alerts[0].when"),
    ],
    ids=["check-reject", "check-conditions", "alert"],
)
def test_always_is_refused_where_a_rule_for_everybody_cannot_be_meant(policy_text, old, rule, path):
    text = edit(policy_text, f"when: {old}", "when: always")
    error = only_error(text)
    assert (error.code, error.path) == ("E_MISSING_CONDITION", path)
    assert (error.line, error.column) == position(text, "when: always", after=f"id: {rule}")
    assert error.message.startswith(
        f"{'alert' if path.startswith('alerts') else 'credit check rule'} '{rule}' cannot be 'when: always': "
    )


def test_always_refused_in_a_check_rule_says_what_it_would_do(policy_text):
    text = edit(policy_text, "when: {field: deposit_pct, gt: 0}", "when: always")
    error = only_error(text)
    assert error.message == (
        "credit check rule 'check.deposit' cannot be 'when: always': a rule that always held "
        "would put its condition on every order"
    )
    assert (error.line, error.column) == position(text, "when: always", after="id: check.deposit")


def test_always_in_a_limit_rule_is_a_default_for_every_customer(policy_text):
    text = edit(policy_text, "when: {field: reputation, eq: high}\n      limit", "when: always\n      limit")
    with compiled(text) as variant:
        rule = variant.rules_by_id["credit.limit.high"]
        assert rule.condition == ALWAYS
        case = {
            "customer": {
                "id": "C-1",
                "type": "enterprise",
                "industry": "trading",
                "region": "local",
                "size": "medium",
                "since": "2019-01-01",
                "credit_score": 65,
            }
        }
        decision = evaluate(variant, case, AS_OF).data
        assert "credit.limit.high" in decision["credit"]["limit_rules"]  # matched a medium customer
        assert decision["credit"]["limit"] == "200000.00"  # the lower rule still wins


def test_always_in_a_segment_puts_every_customer_in_it(policy_text):
    text = edit(policy_text, "when: {field: industry, eq: services}", "when: always")
    with compiled(text) as variant:
        case = {
            "customer": {
                "id": "C-1",
                "type": "enterprise",
                "industry": "trading",
                "region": "local",
                "size": "medium",
                "since": "2019-01-01",
            }
        }
        decision = evaluate(variant, case, AS_OF).data
        assert [s["id"] for s in decision["classification"]["segments"]] == ["segment.services"]


def test_always_inside_all_any_or_not_is_a_shape_error(policy_text):
    text = edit(policy_text, "when: {field: region, eq: remote}}", "when: {not: always}}")
    error = only_error(text)
    assert (error.code, error.path) == ("E_SHAPE", "dunning.stages[1].actions[1].when.not")
    assert error.message == "'always' stands alone as a rule's whole condition ('when: always'), not inside all/any/not"
    text = edit(policy_text, "{field: industry, eq: services}", "{any: [always, {field: industry, eq: services}]}")
    assert (only_error(text).code, only_error(text).path) == ("E_SHAPE", "segments[1].when.any[0]")


def test_the_last_owner_rule_must_be_always_without_channels(policy_text):
    text = edit(
        policy_text,
        "      when: always             # the catch-all: every action no rule above owns\n",
        "      when: {field: region, eq: local}\n",
    )
    error = only_error(text)
    assert (error.code, error.path) == ("E_MISSING", "dunning.owners[4]")
    assert error.message == (
        "the last owner rule must be 'when: always' and have no 'channels', so every action has an owner"
    )
    text = edit(
        policy_text, "      owner: team:collections\n", "      owner: team:collections\n      channels: [phone]\n"
    )
    assert (only_error(text).code, only_error(text).path) == ("E_MISSING", "dunning.owners[4]")


def test_an_entry_with_always_is_the_stages_floor(policy_text):
    # stage 2's floor moves to 1 day: not after stage 1's floor
    text = edit(
        policy_text,
        '          min_days_overdue: 31\n          message: "invoice {anchor_invoice} is',
        '          min_days_overdue: 1\n          message: "invoice {anchor_invoice} is',
    )
    assert only_error(text).code == "E_STAGE_ORDER"
    # a conditional entry at 1 day is no floor, so the order of floors holds
    text = edit(policy_text, "          min_days_overdue: 15\n", "          min_days_overdue: 1\n")
    with compiled(text) as variant:
        assert variant.rules_by_id["dunning.stage2.large"].get("entry_day") == 1


def test_several_missing_conditions_are_all_reported(policy_text):
    errors = policy_errors(legacy_text(policy_text))
    assert {e.code for e in errors} == {"E_MISSING_CONDITION"}
    assert [e.path for e in errors] == [
        "dunning.owners[3]",
        "dunning.owners[4]",
        "dunning.stages[0].entry[0]",
        "dunning.stages[0].actions[0]",
        "dunning.stages[0].actions[1]",
        "dunning.stages[0].actions[2]",
        "dunning.stages[1].entry[0]",
        "dunning.stages[1].actions[2]",
        "dunning.stages[2].actions[0]",
        "dunning.stages[2].actions[1]",
    ]


# ---------------------------------------------------------------- stored versions
def test_a_stored_version_compiles_as_it_was_accepted_and_decides_alike(policy, policy_text):
    with compiled(legacy_text(policy_text), policy.source, legacy_when=True) as old:
        assert old.version != policy.version  # the text (its content) changed
        assert old.rules == policy.rules  # but not what it means
        assert old.dunning == policy.dunning
        for name, data, as_of, order in policy_inputs():
            before = outcome(lambda: evaluate(old, data, as_of, order=order))
            after = outcome(lambda: evaluate(policy, data, as_of, order=order))
            if isinstance(before, str):
                before = before.replace(old.version, policy.version)
            assert before == after, name


def test_a_stored_version_keeps_its_version(policy_text):
    text = legacy_text(policy_text)
    first = compile_policy(text, "a.yaml", legacy_when=True)
    second = compile_policy(text, "b.yaml", legacy_when=True)
    try:
        assert first.version == second.version
        assert '"when":null' in json.dumps(first.content, separators=(",", ":"))  # hashed as it was written
    finally:
        first.dispose()
        second.dispose()


def test_legacy_mode_still_refuses_an_alert_without_a_condition_and_always_in_a_check(policy_text):
    text = edit(legacy_text(policy_text), "    when: {field: utilisation, gt: 90}\n", "")
    with pytest.raises(PolicyInvalid) as info:
        compile_policy(text, "old.yaml", legacy_when=True)
    assert [(e.code, e.path) for e in info.value.errors] == [("E_MISSING_CONDITION", "alerts[0]")]
    text = edit(legacy_text(policy_text), "when: {field: deposit_pct, gt: 0}", "when: always")
    with pytest.raises(PolicyInvalid) as info:
        compile_policy(text, "old.yaml", legacy_when=True)
    assert [(e.code, e.path) for e in info.value.errors] == [("E_MISSING_CONDITION", "credit.check[5].when")]


# ---------------------------------------------------------------- the JSON Schema agrees
def test_the_json_schema_requires_when_and_allows_always_exactly_where_the_compiler_does():
    definitions = json_schema()["definitions"]
    with_when = {name: d for name, d in definitions.items() if "when" in d.get("properties", {})}
    assert set(with_when) == {
        "LimitRule",
        "CheckRule",
        "OwnerRule",
        "Entry",
        "Action",
        "InstalmentRule",
        "DeferralRule",
        "ReviewRule",
        "SegmentRule",
        "AlertRule",
    }
    allows = {name for name, d in with_when.items() if {"const": "always"} in d["properties"]["when"].get("anyOf", [])}
    assert allows == set(with_when) - {"CheckRule", "AlertRule"}
    assert all("when" in d["required"] for d in with_when.values())
