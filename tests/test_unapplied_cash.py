"""Money applied right (issue 11): unapplied cash (a prepayment, a deposit, an overpayment) pays later invoices,
oldest open first, the day they are issued; a promise to pay is kept by the cash received, whatever invoice it
went to. Exposure, aging, stage, interest and reminders all follow the same balances."""

import datetime as dt

from engine import evaluate

from helpers import AS_OF, customer, facts_for, invoice, make_case, payment, promise


def _decide(policy, case, as_of=AS_OF, order=None):
    return evaluate(policy, case, as_of, order=order).data


def test_a_prepayment_pays_the_invoice_issued_after_it(policy):
    # the case: 30,000 prepaid, a 30,000 invoice issued later and now 50 days overdue
    case = make_case(
        customer(id="PRE", size="large"),
        payments=[payment("30000.00", on=-90, id="PAY-1")],
        invoices=[invoice("INV-1", "30000.00", due=-50, issued=-80)],
    )
    d = _decide(policy, case)
    assert (d["credit"]["outstanding"], d["credit"]["overdue"], d["credit"]["exposure"]) == ("0.00", "0.00", "0.00")
    assert d["credit"]["unapplied_cash"] == "0.00"
    assert d["credit"]["cash_applied"] == [
        {
            "source": "payment",
            "source_id": "PAY-1",
            "source_date": "2026-08-24",
            "invoice_id": "INV-1",
            "amount": "30000.00",
            "applied_on": "2026-09-03",
        }
    ]
    assert d["dunning"]["stage"] == 0 and d["dunning"]["actions"] == [] and d["dunning"]["open_invoices"] == []
    assert d["interest"] == {"total": "0.00", "invoices": []}
    assert d["classification"]["aging_bucket"] == "current"
    why = [r["message"] for r in d["reasons"] if r["rule"] == "credit.unapplied_cash"]
    assert why == [
        "unapplied payment PAY-1 of 2026-08-24: 30,000.00 applied to invoice INV-1 on its issue "
        "2026-09-03 (oldest open invoice first)"
    ]
    # settled on its issue day: paid on time, the payment history says so
    facts = facts_for(policy, case)
    assert facts.fields["has_payment_history"] and facts.fields["on_time_ratio"] == 10000


def test_unapplied_cash_pays_the_oldest_open_invoice_first_and_the_rest_stays_open(policy):
    case = make_case(
        payments=[payment("25000.00", on=-100, id="DEP")],
        invoices=[
            invoice("B", "20000.00", due=-20, issued=-60),  # issued later, due first
            invoice("A", "20000.00", due=-10, issued=-70),
        ],
    )
    d = _decide(policy, case)
    assert [(a["invoice_id"], a["amount"], a["applied_on"]) for a in d["credit"]["cash_applied"]] == [
        ("A", "20000.00", "2026-09-13"),
        ("B", "5000.00", "2026-09-23"),
    ]
    assert d["dunning"]["open_invoices"] == [
        {"invoice_id": "B", "open": "15000.00", "due_on": "2026-11-02", "days_overdue": 20, "paused": None}
    ]
    assert d["credit"]["outstanding"] == "15000.00"
    # the interest runs on the open balance, not on the invoice's face value
    assert [(i["invoice_id"], i["base"]) for i in d["interest"]["invoices"]] == [("B", "15000.00")]


def test_two_invoices_issued_after_the_cash_are_paid_in_due_date_order(policy):
    case = make_case(
        payments=[payment("30000.00", on=-100, id="PRE")],
        invoices=[invoice("LATE", "20000.00", due=20, issued=-10), invoice("EARLY", "20000.00", due=10, issued=-10)],
    )
    d = _decide(policy, case)
    assert [(a["invoice_id"], a["amount"]) for a in d["credit"]["cash_applied"]] == [
        ("EARLY", "20000.00"),
        ("LATE", "10000.00"),
    ]
    assert d["credit"]["outstanding"] == "10000.00" and d["credit"]["unapplied_cash"] == "0.00"


def test_an_overpayment_pays_the_next_invoice(policy):
    case = make_case(
        invoices=[invoice("A", "10000.00", due=-60, issued=-90), invoice("B", "10000.00", due=-30, issued=-60)],
        payments=[payment("15000.00", on=-80, invoice_id="A", id="OVER")],
    )
    d = _decide(policy, case)
    assert [(o["invoice_id"], o["open"]) for o in d["dunning"]["open_invoices"]] == [("B", "5000.00")]
    assert d["credit"]["cash_applied"][0]["amount"] == "5000.00"


def test_cash_with_no_invoice_after_it_stays_unapplied_and_the_decision_says_so(policy):
    # an invoice issued after as_of does not exist yet on as_of
    case = make_case(
        payments=[payment("30000.00", on=-5, id="PRE")], invoices=[invoice("FUTURE", "30000.00", due=40, issued=10)]
    )
    d = _decide(policy, case)
    assert d["credit"]["unapplied_cash"] == "30000.00" and "cash_applied" not in d["credit"]
    assert not [r for r in d["reasons"] if r["rule"] == "credit.unapplied_cash"]
    later = _decide(policy, case, AS_OF + dt.timedelta(days=10))
    assert later["credit"]["unapplied_cash"] == "0.00" and later["credit"]["outstanding"] == "0.00"


def test_a_deposit_paid_for_an_order_pays_the_order_s_invoice(policy):
    # the credit check demanded a deposit; it was paid before the order was invoiced
    case = make_case(
        payments=[payment("10000.00", on=-40, id="DEPOSIT")],
        invoices=[invoice("ORDER", "40000.00", due=-5, issued=-35)],
    )
    d = _decide(policy, case, order="5000.00")
    assert d["credit"]["outstanding"] == "30000.00" and d["credit"]["check"]["exposure_after_order"] == "35000.00"
    assert d["dunning"]["open_invoices"][0]["open"] == "30000.00"


# ---------------------------------------------------------------- promises: judged by the cash received
def test_a_promise_is_kept_by_cash_that_went_to_an_older_invoice(policy):
    # promised 10,000 for invoice NEW, paid 10,000 on the promised date without naming an invoice: the cash
    # went to the older invoice, and the promise was kept
    case = make_case(
        invoices=[invoice("OLD", "10000.00", due=-60), invoice("NEW", "10000.00", due=-30)],
        payments=[payment("10000.00", on=-10)],
        promises=[promise("10000.00", made=-20, promised=-10, invoice_id="NEW", id="P-1")],
    )
    facts = facts_for(policy, case)
    assert {s.id: s.open_minor for s in facts.invoices} == {"OLD": 0, "NEW": 1000000}
    assert facts.fields["broken_promises"] == 0 and facts.breaches == ()


def test_a_promise_paid_short_or_late_is_still_broken(policy):
    def broken(amount, on):
        case = make_case(
            invoices=[invoice("OLD", "10000.00", due=-60), invoice("NEW", "10000.00", due=-30)],
            payments=[payment(amount, on=on)],
            promises=[promise("10000.00", made=-20, promised=-10, invoice_id="NEW", id="P-1")],
        )
        return facts_for(policy, case).fields["broken_promises"]

    assert broken("9999.99", -10) == 1  # short
    assert broken("10000.00", -7) == 0  # the last day of the tolerance (3 days)
    assert broken("10000.00", -6) == 1  # a day after it
    assert broken("10000.00", -21) == 1  # before the promise was made
