"""The policy language's per-action repetition, per-action owners and segment effects, on variants of the shipped
policy (docs/policy-language.md: `dunning.stages[].actions[].repeat`, `from_days_overdue`, `dunning.owners[].stages`,
`segments`)."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.evaluator import evaluate
from helpers import AS_OF, compiled, customer, edit, invoice, make_case, only_error

STAGE1_CALL = "        - {type: phone_call, channel: phone, repeat: until_done, when: always}"


def stage1_types(policy, days_overdue: int, **case) -> list[str]:
    c = make_case(customer(industry="trading"), invoices=[invoice("INV-1", "20000.00", due=-days_overdue)], **case)
    return [a["type"] for a in evaluate(policy, c, AS_OF).data["dunning"]["actions"]]


def test_every_days_repeats_on_its_own_interval_not_the_stages(policy_text):
    text = edit(
        policy_text, STAGE1_CALL, "        - {type: phone_call, channel: phone, repeat: {every_days: 3}, when: always}"
    )
    with compiled(text) as variant:
        calls = [n for n in range(1, 16) if "phone_call" in stage1_types(variant, n)]
        mails = [n for n in range(1, 16) if "email_reminder" in stage1_types(variant, n)]
    assert calls == [1, 4, 7, 10, 13] and mails == [1, 8, 15]  # 3-day calls; 7-day cadence for e-mail


def test_until_done_with_every_days_skips_while_the_previous_one_is_open(policy_text):
    text = edit(
        policy_text,
        STAGE1_CALL,
        "        - {type: phone_call, channel: phone, repeat: {every_days: 3, until_done: true}, when: always}",
    )
    state = {"dunning": {"stage": 1, "entered_on": (AS_OF - dt.timedelta(days=3)).isoformat()}}
    taken = lambda is_open: [  # noqa: E731
        {"type": "phone_call", "stage": 1, "open": is_open, "due_on": (AS_OF - dt.timedelta(days=3)).isoformat()}
    ]
    with compiled(text) as variant:
        assert "phone_call" not in stage1_types(variant, 4, actions_taken=taken(True), **state)
        assert "phone_call" in stage1_types(variant, 4, actions_taken=taken(False), **state)
        assert "phone_call" in stage1_types(variant, 4, **state)  # not known: on the interval


def test_once_without_history_is_due_on_its_first_day_only(policy):
    # the shipped lawyer's letter: once; a medium account entered stage 2 at 31 days
    days = [n for n in range(31, 90) if "lawyer_letter" in stage1_types(policy, n)]
    assert days == [31]


def test_from_days_overdue_starts_the_action_within_the_stage(policy):
    small = lambda n: [  # noqa: E731
        a["type"]
        for a in evaluate(
            policy, make_case(customer(industry="trading"), invoices=[invoice("INV-1", "5000.00", due=-n)]), AS_OF
        ).data["dunning"]["actions"]
    ]
    assert [n for n in range(31, 130) if "write_off_review" in small(n)] == [91]


def test_action_owners_appear_only_with_stage_actions(policy):
    quiet = evaluate(policy, make_case(invoices=[invoice("INV-1", "5000.00", due=-2)]), AS_OF).data["dunning"]
    assert quiet["actions"] == [] and "action_owners" not in quiet
    busy = evaluate(policy, make_case(invoices=[invoice("INV-1", "5000.00", due=-1)]), AS_OF).data["dunning"]
    assert [o["action"] for o in busy["action_owners"]] == [a["id"] for a in busy["actions"]]


@pytest.mark.parametrize(
    "old, new, code, path",
    [
        (
            STAGE1_CALL,
            "        - {type: phone_call, channel: phone, repeat: twice, when: always}",
            "E_SHAPE",
            "dunning.stages[0].actions[0].repeat",
        ),
        (
            STAGE1_CALL,
            "        - {type: phone_call, channel: phone, repeat: {every_days: 0}, when: always}",
            None,
            "dunning.stages[0].actions[0].repeat.every_days",
        ),
        (
            "      when: always             # the catch-all: every action no rule above owns\n",
            "      when: always\n      stages: [1]\n",
            "E_MISSING",
            "dunning.owners[4].stages",
        ),
        ("    instead: {visit: phone}\n", "    instead: {visit: visit}\n", None, "segments[2].instead"),
    ],
)
def test_bad_repeat_owner_stages_and_instead_are_refused_at_their_line(policy_text, old, new, code, path):
    error = only_error(edit(policy_text, old, new))
    assert error.path == path and (code is None or error.code == code), error


def test_a_segment_cadence_and_owner_take_effect_with_a_reason(policy_text):
    text = edit(
        policy_text,
        "    instead: {visit: phone}\n",
        "    instead: {visit: phone}\n    cadence_days: {1: 3}\n"
        "    owners: [{owner: 'team:remote', channels: [phone]}]\n",
    )
    with compiled(text) as variant:
        remote = customer(industry="trading", region="remote")
        data = evaluate(variant, make_case(remote, invoices=[invoice("INV-1", "20000.00", due=-4)]), AS_OF).data
        local = evaluate(
            variant, make_case(customer(industry="trading"), invoices=[invoice("INV-1", "20000.00", due=-4)]), AS_OF
        ).data
    assert data["dunning"]["stage_detail"]["cadence_days"] == 3
    assert [(a["type"], a["owner"]) for a in data["dunning"]["actions"]] == [
        ("phone_call", "team:remote"),
        ("email_reminder", "automated"),
        ("sms_reminder", "automated"),
    ]
    assert {
        "rule": "segment.remote",
        "family": "segments",
        "message": "segment segment.remote: stage 1 actions every 3 days (policy: 7)",
    } in data["reasons"]
    assert local["dunning"]["actions"] == [] and local["dunning"]["stage_detail"]["cadence_days"] == 7


def test_each_segment_figure_is_a_reason_naming_it(policy):
    data = evaluate(policy, make_case(customer(industry="services", credit_score=70)), AS_OF).data
    segment_reasons = [r for r in data["reasons"] if r["family"] == "segments"]
    assert segment_reasons == [  # the matching segments, then the figures they changed
        {"rule": "segment.services", "family": "segments", "message": "services: automated reminders and tight limits"},
        {
            "rule": "segment.services_deposit",
            "family": "segments",
            "message": "services, medium reputation: 20% deposit on new orders",
        },
        {
            "rule": "segment.services",
            "family": "segments",
            "message": "segment segment.services: limit capped at 100,000.00 (limit rules: 200,000.00)",
        },
        {
            "rule": "segment.services_deposit",
            "family": "segments",
            "message": "segment segment.services_deposit: deposit 20% on new orders (limit rules: 0%)",
        },
    ]
    assert (data["credit"]["limit"], data["credit"]["deposit_pct"]) == ("100000.00", "20.00")
