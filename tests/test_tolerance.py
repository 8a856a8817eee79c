"""The tolerance (minimum balance, issue 11): per stage (`dunning.stages[].min_balance`) and for the credit check
(`credit.min_overdue_balance`); DOMAIN.md's default 100.00 in the shipped policy. Boundaries are policy cases
(tests/policy/money.yaml); these tests cover a policy without it, the reasons, a stage per its own minimum and
the workflow's step down."""

import datetime as dt

from engine import evaluate

from helpers import AS_OF, compiled, customer, edit, invoice, make_case, payment


def _tiny_balance_case(**kw):
    # 0.01 left open on an invoice 31 days overdue
    return make_case(
        customer(id="TINY"),
        invoices=[invoice("INV-1", "30000.00", due=-31)],
        payments=[payment("29999.99", on=-20, invoice_id="INV-1")],
        **kw,
    )


def _without_tolerance(text):
    text = edit(text, '  min_overdue_balance: "100.00"', "  # (no tolerance)")
    return edit(text, '      min_balance: "100.00"', "      # (no tolerance)", 3)


def test_without_a_tolerance_0_01_is_collected_and_blocks_orders(policy_text):
    # the behaviour before issue 11, still what a policy without the settings gets
    with compiled(_without_tolerance(policy_text)) as bare:
        d = evaluate(bare, _tiny_balance_case(), AS_OF, order="1000.00").data
    assert d["dunning"]["stage"] == 2
    assert {a["type"] for a in d["dunning"]["actions"]} >= {"visit", "written_demand"}
    assert d["credit"]["check"]["outcome"] == "refer"
    assert not [r for r in d["reasons"] if r["rule"] in ("dunning.tolerance", "credit.tolerance")]


def test_the_shipped_tolerance_says_it_applied(policy):
    d = evaluate(policy, _tiny_balance_case(), AS_OF, order="1000.00").data
    assert d["dunning"]["stage"] == 0 and d["dunning"]["actions"] == []
    assert d["credit"]["check"]["outcome"] == "approve"
    why = [r["message"] for r in d["reasons"] if r["rule"] == "dunning.tolerance"]
    assert why == [
        "collectable overdue 0.01 is below stage 2's minimum balance 100.00 (tolerance): stage 2 not entered",
        "collectable overdue 0.01 is below stage 1's minimum balance 100.00 (tolerance): stage 1 not entered",
    ]
    # the overdue balance still shows in aging
    assert d["classification"]["aging_bucket"] == "medium" and d["credit"]["overdue"] == "0.01"


def test_the_credit_check_tolerance_sets_aside_only_rules_on_overdue_fields(policy):
    case = make_case(customer(id="LONG", credit_score=85), invoices=[invoice("INV-1", "50.00", due=-95)])
    d = evaluate(policy, case, AS_OF, order="1000.00").data
    assert d["credit"]["check"]["outcome"] == "approve" and d["credit"]["check"]["rules"] == []
    set_aside = [r["message"] for r in d["reasons"] if r["rule"] == "credit.tolerance"]
    assert set_aside == ["check.long_overdue set aside: overdue 50.00 is below the credit check's tolerance 100.00"]


def test_each_stage_has_its_own_minimum(policy_text):
    # stage 3 only from 5,000.00 overdue: 4,000 overdue 95 days on a medium account stays in stage 2
    text = edit(
        policy_text,
        '      cadence_days: 30\n      min_balance: "100.00"',
        '      cadence_days: 30\n      min_balance: "5000.00"',
    )
    case = make_case(
        customer(id="MED"), invoices=[invoice("OLD", "4000.00", due=-95), invoice("NEW", "20000.00", due=10)]
    )
    with compiled(text) as variant:
        d = evaluate(variant, case, AS_OF).data
        assert d["classification"]["amount_tier"] == "medium" and d["dunning"]["stage"] == 2
        assert [r["message"] for r in d["reasons"] if r["rule"] == "dunning.tolerance"] == [
            "collectable overdue 4,000.00 is below stage 3's minimum balance 5,000.00 (tolerance): stage 3 not entered"
        ]
        more = make_case(
            customer(id="MED"), invoices=[invoice("OLD", "5000.00", due=-95), invoice("NEW", "20000.00", due=10)]
        )
        assert evaluate(variant, more, AS_OF).data["dunning"]["stage"] == 3


def test_a_customer_in_stage_2_paid_down_below_the_tolerance_leaves_collection_at_once(policy):
    case = _tiny_balance_case(dunning={"stage": 2, "entered_on": (AS_OF - dt.timedelta(days=5)).isoformat()})
    d = evaluate(policy, case, AS_OF).data
    assert d["dunning"]["stage"] == 0 and d["dunning"]["actions"] == []


def test_min_balance_is_money_in_the_policy(policy_text):
    from helpers import only_error

    err = only_error(
        edit(
            policy_text,
            '      cadence_days: 7\n      min_balance: "100.00"',
            '      cadence_days: 7\n      min_balance: "1.001"',
        )
    )
    assert "min_balance" in err.format() and "decimal places" in err.format()
