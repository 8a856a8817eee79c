"""Facts: validating a customer case, and the flat fact derived from its ledger on an as-of date."""

import copy
import datetime as dt
from decimal import Decimal

import pytest

from engine import InputInvalid, build_facts, load_case

from helpers import (
    AS_OF,
    credit_note,
    customer,
    dispute,
    facts_for,
    instalment_plan,
    invoice,
    make_case,
    payment,
    promise,
)


def open_balances(facts) -> dict:
    return {s.id: s.open_minor for s in facts.invoices}


# ---------------------------------------------------------------- payment allocation
def test_a_payment_for_an_invoice_reduces_that_invoice_only(policy):
    case = make_case(
        invoices=[invoice("OLD", "1000.00", due=-40), invoice("NEW", "1000.00", due=-10)],
        payments=[payment("300.00", on=-5, invoice_id="NEW")],
    )
    facts = facts_for(policy, case)
    assert open_balances(facts) == {"OLD": 100000, "NEW": 70000}
    assert facts.fields["outstanding"] == 170000


def test_an_unallocated_payment_settles_the_oldest_invoice_first(policy):
    case = make_case(
        invoices=[invoice("NEW", "1000.00", due=-10), invoice("OLD", "1000.00", due=-40)],
        payments=[payment("1200.00", on=-5)],
    )
    facts = facts_for(policy, case)
    assert open_balances(facts) == {"OLD": 0, "NEW": 80000}
    assert facts.unapplied_minor == 0


def test_a_payment_larger_than_its_invoice_spills_over_to_the_oldest_other_invoice(policy):
    case = make_case(
        invoices=[invoice("A", "1000.00", due=-40), invoice("B", "1000.00", due=-20), invoice("C", "1000.00", due=-10)],
        payments=[payment("1500.00", on=-5, invoice_id="C")],
    )
    assert open_balances(facts_for(policy, case)) == {"A": 50000, "B": 100000, "C": 0}


def test_an_unallocated_payment_left_over_applies_to_an_invoice_issued_after_it(policy):
    # issue 11: cash received before its invoice is applied once the invoice exists (it used to stay unapplied)
    case = make_case(
        invoices=[invoice("EARLY", "100.00", due=10, issued=-20), invoice("LATE", "100.00", due=20, issued=-2)],
        payments=[payment("150.00", on=-5)],
    )
    facts = facts_for(policy, case)
    assert open_balances(facts) == {"EARLY": 0, "LATE": 5000}
    assert facts.unapplied_minor == 0
    assert facts.applied_later == (
        (("payment", "payment0", dt.date(2026, 11, 17)), "LATE", 5000, dt.date(2026, 11, 20)),
    )


def test_an_overpayment_becomes_unapplied_cash(policy):
    case = make_case(invoices=[invoice("INV-1", "1000.00", due=-10)], payments=[payment("1500.50", on=-5)])
    facts = facts_for(policy, case)
    assert facts.fields["outstanding"] == 0
    assert facts.unapplied_minor == 50050


def test_a_payment_for_a_settled_invoice_goes_to_the_next_open_one(policy):
    case = make_case(
        invoices=[invoice("A", "100.00", due=-40), invoice("B", "100.00", due=-20)],
        payments=[payment("100.00", on=-30, invoice_id="A"), payment("60.00", on=-5, invoice_id="A")],
    )
    facts = facts_for(policy, case)
    assert open_balances(facts) == {"A": 0, "B": 4000}
    assert facts.unapplied_minor == 0


def test_a_credit_note_reduces_its_invoice_but_is_not_a_payment(policy):
    case = make_case(
        invoices=[invoice("INV-1", "1000.00", due=-10)], credit_notes=[credit_note("INV-1", "1000.00", on=-12)]
    )
    facts = facts_for(policy, case)
    assert open_balances(facts) == {"INV-1": 0}
    assert facts.fields["outstanding"] == 0
    assert facts.fields["has_payment_history"] is False


def test_a_credit_note_larger_than_its_invoice_spills_to_the_oldest_invoice(policy):
    case = make_case(
        invoices=[invoice("A", "100.00", due=-40), invoice("B", "100.00", due=-20)],
        credit_notes=[credit_note("B", "150.00", on=-10)],
    )
    assert open_balances(facts_for(policy, case)) == {"A": 5000, "B": 0}


def test_a_credit_note_and_a_payment_on_one_day_apply_credit_note_first(policy):
    case = make_case(
        invoices=[invoice("INV-1", "100.00", due=-10)],
        payments=[payment("100.00", on=-5, invoice_id="INV-1")],
        credit_notes=[credit_note("INV-1", "30.00", on=-5)],
    )
    facts = facts_for(policy, case)
    assert facts.fields["outstanding"] == 0
    assert facts.unapplied_minor == 3000


# ---------------------------------------------------------------- days overdue and as-of
@pytest.mark.parametrize(
    "due, days_overdue, overdue_count",
    [(0, 0, 0), (-1, 1, 1), (1, -1, 0), (-91, 91, 1)],
    ids=["due-today", "due-yesterday", "due-tomorrow", "due-91-days-ago"],
)
def test_days_overdue_is_as_of_minus_due_date(policy, due, days_overdue, overdue_count):
    facts = facts_for(policy, make_case(invoices=[invoice("INV-1", "100.00", due=due)]))
    assert facts.invoices[0].days_overdue == days_overdue
    assert facts.fields["overdue_invoice_count"] == overdue_count
    assert facts.fields["max_days_overdue"] == max(0, days_overdue)
    assert facts.fields["overdue_amount"] == (10000 if overdue_count else 0)


def test_an_invoice_due_today_is_not_overdue_and_starts_no_collection(policy):
    facts = facts_for(policy, make_case(invoices=[invoice("INV-1", "100.00", due=0)]))
    assert facts.fields["collectable_days_overdue"] == 0
    assert facts.anchor_invoice is None


def test_the_dunning_anchor_is_the_most_overdue_collectable_invoice(policy):
    case = make_case(
        invoices=[invoice("A", "100.00", due=-5), invoice("B", "100.00", due=-50), invoice("C", "100.00", due=-20)]
    )
    facts = facts_for(policy, case)
    assert facts.anchor_invoice == "B"
    assert facts.fields["collectable_days_overdue"] == 50


def test_invoices_payments_and_credit_notes_dated_after_as_of_are_ignored(policy):
    case = make_case(
        invoices=[invoice("NOW", "100.00", due=-10), invoice("LATER", "500.00", due=30, issued=1)],
        payments=[payment("100.00", on=1, invoice_id="NOW")],
        credit_notes=[credit_note("NOW", "50.00", on=2)],
    )
    facts = facts_for(policy, case)
    assert [s.id for s in facts.invoices] == ["NOW"]
    assert facts.fields["outstanding"] == 10000
    assert facts.fields["open_invoice_count"] == 1


def test_the_same_case_read_a_day_later_sees_the_later_payment(policy):
    case = make_case(invoices=[invoice("NOW", "100.00", due=-10)], payments=[payment("100.00", on=1, invoice_id="NOW")])
    assert facts_for(policy, case).fields["outstanding"] == 10000
    assert facts_for(policy, case, AS_OF + dt.timedelta(days=1)).fields["outstanding"] == 0


def test_reservations_add_to_exposure_except_the_order_being_checked(policy):
    case = make_case(
        invoices=[invoice("INV-1", "1000.00", due=10)],
        reservations=[{"order_id": "SO-1", "amount": "200.00"}, {"order_id": "SO-2", "amount": "300.00"}],
    )
    loaded = load_case(case, policy)
    all_reserved = build_facts(loaded, policy, AS_OF).fields
    assert (all_reserved["reserved"], all_reserved["exposure"]) == (50000, 150000)
    rechecked = build_facts(loaded, policy, AS_OF, 20000, order_id="SO-1").fields
    assert (rechecked["reserved"], rechecked["exposure"], rechecked["order_amount"]) == (30000, 130000, 20000)


def test_building_facts_does_not_change_the_validated_case(policy):
    case = make_case(
        invoices=[invoice("INV-1", "1000.00", due=-10)],
        payments=[payment("300.00", on=-5)],
        promises=[promise("700.00", made=-3, promised=2)],
    )
    loaded = load_case(case, policy)
    snapshot = copy.deepcopy(loaded)
    first = build_facts(loaded, policy, AS_OF)
    assert loaded == snapshot
    assert build_facts(loaded, policy, AS_OF) == first


# ---------------------------------------------------------------- disputes
def test_an_open_dispute_pauses_collection_of_its_invoice(policy):
    case = make_case(
        invoices=[invoice("A", "100.00", due=-40), invoice("B", "100.00", due=-10)], disputes=[dispute("A", opened=-20)]
    )
    facts = facts_for(policy, case)
    assert facts.fields["disputed_invoice_count"] == 1
    assert facts.pauses == (("A", "dispute"),)
    assert facts.fields["paused_invoice_count"] == 1
    assert facts.anchor_invoice == "B" and facts.fields["collectable_days_overdue"] == 10
    assert facts.fields["max_days_overdue"] == 40  # aging still sees the disputed invoice


def test_a_resolved_dispute_no_longer_pauses_collection(policy):
    case = make_case(invoices=[invoice("A", "100.00", due=-40)], disputes=[dispute("A", opened=-20, resolved=-1)])
    facts = facts_for(policy, case)
    assert facts.fields["disputed_invoice_count"] == 0
    assert facts.pauses == ()
    assert facts.anchor_invoice == "A"


def test_a_dispute_resolved_after_as_of_is_still_open_on_as_of(policy):
    case = make_case(invoices=[invoice("A", "100.00", due=-40)], disputes=[dispute("A", opened=-20, resolved=3)])
    assert facts_for(policy, case).pauses == (("A", "dispute"),)


def test_a_dispute_opened_after_as_of_is_ignored(policy):
    case = make_case(invoices=[invoice("A", "100.00", due=-40)], disputes=[dispute("A", opened=1)])
    facts = facts_for(policy, case)
    assert facts.fields["disputed_invoice_count"] == 0 and facts.pauses == ()


def test_a_dispute_on_an_invoice_not_yet_due_pauses_nothing(policy):
    case = make_case(invoices=[invoice("A", "100.00", due=5)], disputes=[dispute("A", opened=-2)])
    facts = facts_for(policy, case)
    assert facts.fields["disputed_invoice_count"] == 1
    assert facts.fields["paused_invoice_count"] == 0


# ---------------------------------------------------------------- promises to pay (tolerance 3 days)
def test_the_shipped_policy_gives_promises_three_days_of_tolerance(policy):
    assert policy.dunning.promise_tolerance_days == 3


def test_an_open_promise_pauses_collection_until_its_date_plus_tolerance(policy):
    case = make_case(
        invoices=[invoice("A", "100.00", due=-40)], promises=[promise("100.00", made=-10, promised=-3, invoice_id="A")]
    )
    facts = facts_for(policy, case)  # deadline = promised + 3 = as_of: still open
    assert facts.fields["open_promise_count"] == 1
    assert facts.pauses == (("A", "promise"),)
    assert facts.fields["broken_promises"] == 0
    assert facts.anchor_invoice is None


def test_a_promise_past_its_tolerance_without_payment_is_broken_and_collection_resumes(policy):
    case = make_case(
        invoices=[invoice("A", "100.00", due=-40)],
        promises=[promise("100.00", made=-10, promised=-4, invoice_id="A", id="P-1")],
    )
    facts = facts_for(policy, case)
    assert facts.fields["broken_promises"] == 1
    assert facts.fields["new_broken_promises"] == 1  # broken on as_of, after the day before
    assert facts.breaches == (("promise", "P-1", AS_OF),)
    assert facts.pauses == ()
    assert facts.anchor_invoice == "A"


def test_a_promise_paid_within_tolerance_is_kept(policy):
    case = make_case(
        invoices=[invoice("A", "100.00", due=-40), invoice("B", "100.00", due=-30)],
        payments=[payment("100.00", on=-6, invoice_id="A")],
        promises=[promise("100.00", made=-10, promised=-8, invoice_id="A")],
    )
    facts = facts_for(policy, case)
    assert facts.fields["broken_promises"] == 0
    assert facts.fields["open_promise_count"] == 0
    assert facts.breaches == ()


def test_a_promise_paid_only_in_part_is_broken(policy):
    case = make_case(
        invoices=[invoice("A", "100.00", due=-40)],
        payments=[payment("99.99", on=-6, invoice_id="A")],
        promises=[promise("100.00", made=-10, promised=-8, invoice_id="A")],
    )
    assert facts_for(policy, case).fields["broken_promises"] == 1


def test_a_payment_made_before_the_promise_does_not_keep_it(policy):
    case = make_case(
        invoices=[invoice("A", "200.00", due=-40)],
        payments=[payment("100.00", on=-20, invoice_id="A")],
        promises=[promise("100.00", made=-10, promised=-8, invoice_id="A")],
    )
    assert facts_for(policy, case).fields["broken_promises"] == 1


def test_a_promise_without_an_invoice_pauses_every_overdue_invoice(policy):
    case = make_case(
        invoices=[invoice("A", "100.00", due=-40), invoice("B", "100.00", due=-10), invoice("C", "100.00", due=5)],
        promises=[promise("200.00", made=-2, promised=5)],
    )
    facts = facts_for(policy, case)
    assert facts.pauses == (("A", "promise"), ("B", "promise"))
    assert facts.fields["open_promise_count"] == 2


def test_a_promise_made_after_as_of_is_ignored(policy):
    case = make_case(
        invoices=[invoice("A", "100.00", due=-40)], promises=[promise("100.00", made=1, promised=5, invoice_id="A")]
    )
    facts = facts_for(policy, case)
    assert facts.pauses == () and facts.fields["open_promise_count"] == 0


def test_a_promise_broken_before_the_previous_evaluation_is_not_new(policy):
    case = make_case(
        invoices=[invoice("A", "100.00", due=-40)],
        promises=[promise("100.00", made=-30, promised=-20, invoice_id="A")],
        previous={"as_of": (AS_OF - dt.timedelta(days=7)).isoformat()},
    )
    facts = facts_for(policy, case)
    assert facts.fields["broken_promises"] == 1
    assert facts.fields["new_broken_promises"] == 0


# ---------------------------------------------------------------- instalment plans
def plan_case(*payments):
    return make_case(
        invoices=[invoice("A", "1000.00", due=-60), invoice("B", "1000.00", due=-20)],
        instalment_plans=[instalment_plan("PLAN-1", ["A"], agreed=-30, instalments=[(-10, "500.00"), (20, "500.00")])],
        payments=list(payments),
    )


def test_an_instalment_plan_paid_on_schedule_is_kept_and_pauses_its_invoices(policy):
    facts = facts_for(policy, plan_case(payment("500.00", on=-12, invoice_id="A")))
    assert facts.fields["kept_instalment_plans"] == 1
    assert ("A", "instalment_plan") in facts.pauses
    assert facts.anchor_invoice == "B"
    assert facts.fields["broken_promises"] == 0


def test_a_missed_instalment_breaks_the_plan_and_collection_resumes(policy):
    facts = facts_for(policy, plan_case(payment("499.99", on=-12, invoice_id="A")))
    assert facts.fields["kept_instalment_plans"] == 0
    assert facts.fields["broken_promises"] == 1
    assert facts.breaches == (("instalment_plan", "PLAN-1", AS_OF - dt.timedelta(days=9)),)
    assert facts.pauses == ()
    assert facts.anchor_invoice == "A"


def test_an_instalment_paid_late_still_counts_as_missed(policy):
    facts = facts_for(policy, plan_case(payment("500.00", on=-9, invoice_id="A")))
    assert facts.fields["broken_promises"] == 1


def test_an_instalment_due_today_is_not_yet_missed(policy):
    case = make_case(
        invoices=[invoice("A", "1000.00", due=-60)],
        instalment_plans=[instalment_plan("PLAN-1", ["A"], agreed=-30, instalments=[(0, "500.00")])],
    )
    facts = facts_for(policy, case)
    assert facts.fields["kept_instalment_plans"] == 1 and facts.fields["broken_promises"] == 0


# ---------------------------------------------------------------- payment history
def test_on_time_ratio_and_average_days_late_come_from_settled_invoices(policy):
    case = make_case(
        invoices=[
            invoice("ON", "100.00", due=-60),
            invoice("LATE10", "100.00", due=-50),
            invoice("LATE5", "100.00", due=-40),
            invoice("OPEN", "100.00", due=-30),
        ],
        payments=[
            payment("100.00", on=-60, invoice_id="ON"),
            payment("100.00", on=-40, invoice_id="LATE10"),
            payment("100.00", on=-35, invoice_id="LATE5"),
        ],
    )
    fields = facts_for(policy, case).fields
    assert fields["has_payment_history"] is True
    assert fields["on_time_ratio"] == 3333  # 1 of 3, in basis points, rounded down
    assert fields["avg_days_late"] == 5  # (0 + 10 + 5) / 3


def test_average_days_late_rounds_half_up_and_early_payment_counts_as_zero(policy):
    case = make_case(
        invoices=[invoice("EARLY", "100.00", due=-20), invoice("LATE1", "100.00", due=-10)],
        payments=[payment("100.00", on=-25, invoice_id="EARLY"), payment("100.00", on=-9, invoice_id="LATE1")],
    )
    fields = facts_for(policy, case).fields
    assert fields["on_time_ratio"] == 5000
    assert fields["avg_days_late"] == 1  # (0 + 1) / 2 = 0.5 → 1


def test_an_invoice_paid_in_instalments_is_settled_on_its_last_payment(policy):
    case = make_case(
        invoices=[invoice("INV-1", "100.00", due=-20)],
        payments=[payment("50.00", on=-25, invoice_id="INV-1"), payment("50.00", on=-8, invoice_id="INV-1")],
    )
    facts = facts_for(policy, case)
    assert facts.invoices[0].settled_on == AS_OF - dt.timedelta(days=8)
    assert facts.fields["avg_days_late"] == 12 and facts.fields["on_time_ratio"] == 0


def test_without_settled_invoices_there_is_no_payment_history(policy):
    fields = facts_for(policy, make_case(invoices=[invoice("INV-1", "100.00", due=-20)])).fields
    assert fields["has_payment_history"] is False
    assert (fields["on_time_ratio"], fields["avg_days_late"]) == (0, 0)


@pytest.mark.parametrize(
    "since, as_of, years",
    [
        ("2020-11-22", dt.date(2026, 11, 22), 6),
        ("2020-11-23", dt.date(2026, 11, 22), 5),
        ("2020-02-29", dt.date(2021, 2, 28), 0),
        ("2020-02-29", dt.date(2021, 3, 1), 1),
        ("2026-11-22", dt.date(2026, 11, 22), 0),
    ],
    ids=["anniversary", "day-before-anniversary", "leap-day-not-yet", "leap-day-passed", "first-day"],
)
def test_years_as_customer_counts_whole_years(policy, since, as_of, years):
    fields = facts_for(policy, make_case(customer(since=since)), as_of).fields
    assert fields["years_as_customer"] == years
    assert fields["customer_age_days"] == (as_of - dt.date.fromisoformat(since)).days


def test_a_score_on_the_credit_file_is_a_manual_assessment(policy):
    manual = facts_for(policy, make_case(customer(credit_score=72))).fields
    scored = facts_for(policy, make_case(customer())).fields
    assert (manual["credit_score"], manual["manual_score"]) == (72, True)
    assert scored["manual_score"] is False


def test_unset_optional_categories_take_the_first_declared_value(policy):
    fields = facts_for(policy, make_case()).fields
    assert (fields["arrears_reason"], fields["deal_type"]) == ("none", "standard")


def test_a_case_level_arrears_reason_wins_over_the_credit_file(policy):
    case = make_case(customer(arrears_reason="operating_pressure"), arrears_reason="malicious_delay")
    assert facts_for(policy, case).fields["arrears_reason"] == "malicious_delay"


# ---------------------------------------------------------------- input validation
def refused(policy, case) -> dict:
    """{field: code} of every error in a refused case."""
    with pytest.raises(InputInvalid) as info:
        load_case(case, policy)
    assert info.value.code == "E_INPUT_INVALID"
    return {e.field: e.code for e in info.value.errors}


def with_invoice(**changes):
    inv = invoice("INV-1", "100.00", due=-10)
    inv.update(changes)
    return make_case(invoices=[inv])


@pytest.mark.parametrize("amount", ["100.001", "0.005", "1e-3"])
def test_an_amount_with_more_decimals_than_the_currency_is_refused(policy, amount):
    assert refused(policy, with_invoice(amount=amount)) == {"invoices[0].amount": "E_AMOUNT"}


@pytest.mark.parametrize("amount", ["-100.00", -1, "-0.01"])
def test_a_negative_amount_is_refused(policy, amount):
    assert refused(policy, with_invoice(amount=amount)) == {"invoices[0].amount": "E_AMOUNT"}


@pytest.mark.parametrize(
    "amount",
    ["abc", "", "NaN", "Infinity", None, True, [100]],
    ids=["word", "empty", "nan", "infinity", "null", "bool", "list"],
)
def test_a_value_that_is_not_an_amount_is_refused(policy, amount):
    errors = refused(policy, with_invoice(amount=amount))
    assert list(errors) == ["invoices[0].amount"]


def test_a_float_amount_is_refused_because_it_is_not_exact(policy):
    with pytest.raises(InputInvalid) as info:
        load_case(with_invoice(amount=100.5), policy)
    [error] = info.value.errors
    assert (error.field, error.code) == ("invoices[0].amount", "E_AMOUNT")
    assert "not a float" in error.message


def test_an_exact_decimal_from_a_json_parser_is_accepted(policy):
    case = load_case(with_invoice(amount=Decimal("100.50")), policy)
    assert case["invoices"][0]["amount_minor"] == 10050


def test_a_zero_invoice_amount_is_refused(policy):
    assert refused(policy, with_invoice(amount="0")) == {"invoices[0].amount": "E_AMOUNT"}


def test_an_invoice_in_another_currency_is_refused(policy):
    errors = refused(
        policy,
        make_case(
            invoices=[invoice("INV-1", "100.00", due=-10, currency="USD")],
            payments=[payment("10.00", on=-1, currency="EUR")],
        ),
    )
    assert errors == {"invoices[0].currency": "E_CURRENCY", "payments[0].currency": "E_CURRENCY"}


def test_references_to_unknown_invoices_are_refused(policy):
    case = make_case(
        invoices=[invoice("INV-1", "100.00", due=-10)],
        payments=[payment("10.00", on=-1, invoice_id="INV-9")],
        disputes=[dispute("INV-8", opened=-3)],
        instalment_plans=[instalment_plan("PLAN-1", ["INV-1", "INV-7"], agreed=-5, instalments=[(5, "50.00")])],
    )
    assert refused(policy, case) == {
        "payments[0].invoice_id": "E_UNKNOWN_INVOICE",
        "disputes[0].invoice_id": "E_UNKNOWN_INVOICE",
        "instalment_plans[0].invoice_ids[1]": "E_UNKNOWN_INVOICE",
    }


@pytest.mark.parametrize(
    "value",
    ["2026-02-30", "22/11/2026", "yesterday", "", 20261122],
    ids=["no-such-day", "not-iso", "word", "empty", "number"],
)
def test_a_date_that_cannot_be_read_is_refused(policy, value):
    assert refused(policy, with_invoice(due_on=value)) == {"invoices[0].due_on": "E_INVALID"}


def test_a_due_date_before_the_issue_date_is_refused(policy):
    errors = refused(policy, with_invoice(issued_on="2026-11-01", due_on="2026-10-01"))
    assert errors == {"invoices[0].due_on": "E_INVALID"}


def test_a_promise_due_before_it_was_made_is_refused(policy):
    case = make_case(invoices=[invoice("INV-1", "100.00", due=-10)], promises=[promise("10.00", made=-1, promised=-3)])
    assert refused(policy, case) == {"promises[0].promised_on": "E_INVALID"}


def test_unknown_keys_are_refused_where_they_appear(policy):
    case = make_case(
        customer(colour="blue"), invoices=[dict(invoice("INV-1", "100.00", due=-10), vat="13%")], invoice=[]
    )
    assert refused(policy, case) == {
        "customer.colour": "E_UNKNOWN_FIELD",
        "invoices[0].vat": "E_UNKNOWN_FIELD",
        "invoice": "E_UNKNOWN_FIELD",
    }


def test_missing_required_fields_are_named(policy):
    cust = customer()
    del cust["id"], cust["since"]
    inv = invoice("INV-1", "100.00", due=-10)
    del inv["amount"]
    assert refused(policy, make_case(cust, invoices=[inv])) == {
        "customer.id": "E_REQUIRED",
        "customer.since": "E_REQUIRED",
        "invoices[0].amount": "E_REQUIRED",
    }


def test_a_case_without_a_customer_is_refused(policy):
    assert refused(policy, {"invoices": []}) == {"customer": "E_REQUIRED"}


@pytest.mark.parametrize("data", [[], "customer", None, 42])
def test_input_that_is_not_an_object_is_refused(policy, data):
    assert refused(policy, data) == {"_": "E_INVALID"}


def test_a_category_value_the_policy_does_not_declare_is_refused(policy):
    errors = refused(policy, make_case(customer(region="moon", type="robot")))
    assert errors == {"customer.region": "E_UNKNOWN_VALUE", "customer.type": "E_UNKNOWN_VALUE"}


def test_an_integer_credit_score_written_as_a_float_is_refused(policy):
    assert refused(policy, make_case(customer(credit_score=70.0))) == {"customer.credit_score": "E_INVALID"}


def test_a_credit_score_above_100_is_refused(policy):
    assert refused(policy, make_case(customer(credit_score=101))) == {"customer.credit_score": "E_INVALID"}


def test_a_duplicate_invoice_id_is_refused(policy):
    case = make_case(invoices=[invoice("INV-1", "100.00", due=-10), invoice("INV-1", "200.00", due=-5)])
    assert refused(policy, case) == {"invoices[1].id": "E_DUPLICATE"}


def test_every_problem_of_a_case_is_reported_at_once(policy):
    case = make_case(
        customer(region="moon"),
        invoices=[invoice("INV-1", "100.001", due=-10), invoice("INV-2", "5.00", due=-5, currency="USD")],
        payments=[payment("1.00", on=-1, invoice_id="NOPE")],
    )
    assert refused(policy, case) == {
        "customer.region": "E_UNKNOWN_VALUE",
        "invoices[0].amount": "E_AMOUNT",
        "invoices[1].currency": "E_CURRENCY",
        "payments[0].invoice_id": "E_UNKNOWN_INVOICE",
    }
