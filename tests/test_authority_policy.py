"""The policy's `authority:` section (rules/authority.py): validated with positions, evaluates nothing."""

from __future__ import annotations

import pytest

from engine import PolicyInvalid, compile_policy, evaluate
from helpers import AS_OF, customer, invoice, make_case

SECTION = "\nauthority:"


def _without_authority(text: str) -> str:
    head, _ = text.split(SECTION, 1)
    return head


def test_the_shipped_matrix(policy):
    a = policy.authority
    assert a.referral_expiry_days == 7
    assert [(lv.name, lv.over_limit_up_to) for lv in a.levels] == [
        ("team_lead", 10_000_000),
        ("credit_manager", 100_000_000),
        ("cfo", None),
    ]
    assert a.needed(0).name == "team_lead" and a.needed(10_000_000).name == "team_lead"
    assert a.needed(10_000_001).name == "credit_manager" and a.needed(100_000_001).name == "cfo"
    assert a.rank("cfo") > a.rank("credit_manager") > a.rank("team_lead") and a.rank("intern") is None


def test_the_section_changes_no_decision(policy, policy_text):
    """Same case and date under the policy with and without `authority:`: identical but for the version."""
    plain = compile_policy(_without_authority(policy_text))
    try:
        assert plain.authority.levels == () and plain.authority.referral_expiry_days == 7
        case = make_case(customer(), invoices=[invoice("INV-1", "80000.00", due=-40)])
        for order in (None, "30000.00", "460000.00"):
            with_it, without = evaluate(policy, case, AS_OF, order=order), evaluate(plain, case, AS_OF, order=order)
            assert with_it.json.replace(policy.version, plain.version) == without.json
            assert with_it.data["policy_version"] != without.data["policy_version"]
    finally:
        plain.dispose()


@pytest.mark.parametrize(
    "section, code, where",
    [
        (
            "  levels:\n    - {level: lead, over_limit_up_to: '200'}\n    - {level: boss, over_limit_up_to: '100'}\n"
            "    - {level: cfo}\n",
            "E_VALUE_TYPE",
            "authority.levels[1].over_limit_up_to",
        ),
        ("  levels:\n    - {level: lead}\n    - {level: cfo}\n", "E_VALUE_TYPE", "authority.levels[0]"),
        ("  levels:\n    - {level: lead, over_limit_up_to: '100'}\n", "E_MISSING", "authority.levels[0]"),
        (
            "  levels:\n    - {level: lead, over_limit_up_to: '1'}\n    - {level: lead}\n",
            "E_DUPLICATE_ID",
            "authority.levels[1].level",
        ),
        ("  referral_expiry_days: 0\n", "E_SHAPE", "authority.referral_expiry_days"),
        ("  levels:\n    - {level: Team Lead}\n", "E_SHAPE", "authority.levels[0].level"),
    ],
)
def test_a_bad_matrix_is_refused_with_its_position(policy_text, section, code, where):
    with pytest.raises(PolicyInvalid) as exc:
        compile_policy(_without_authority(policy_text) + SECTION + "\n" + section)
    found = [(e.code, e.path) for e in exc.value.errors]
    assert any(c == code and p == where for c, p in found), found
