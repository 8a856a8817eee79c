"""Terms enforcement (issue 11): an open invoice due later after its issue than the customer's terms raises
alert.terms_exceeded and a credit.terms_exceeded reason, and the policy decides what happens to an order
(shipped: refer; a policy may reject) through the decision fields invoice_terms_exceeded / invoices_beyond_terms."""

from engine import evaluate

from helpers import AS_OF, compiled, customer, edit, invoice, make_case, payment

NEW = customer(id="NEW", since="2026-08-01", credit_score=85)  # < 180 days: terms 15 days


def _case(terms_days, customer_=NEW, **kw):
    return make_case(customer_, invoices=[invoice("INV-1", "20000.00", issued=-5, due=terms_days - 5)], **kw)


def test_an_invoice_due_85_days_after_issue_for_a_15_day_customer_is_flagged_and_the_order_referred(policy):
    d = evaluate(policy, _case(85), AS_OF, order="1000.00").data
    assert d["credit"]["terms_days"] == 15
    assert d["alerts"] == [
        {
            "id": "alert.terms_exceeded",
            "severity": "warning",
            "message": "1 open invoice(s) with terms up to 85 days, beyond the approved 15 days",
        }
    ]
    assert [r["message"] for r in d["reasons"] if r["rule"] == "credit.terms_exceeded"] == [
        "invoice INV-1 is due 85 days after its issue (2026-11-17 → 2027-02-10), beyond the customer's terms of 15 days"
    ]
    assert d["credit"]["check"]["outcome"] == "refer" and d["credit"]["check"]["rules"] == ["check.terms_exceeded"]


def test_terms_boundary_15_is_within_and_16_is_beyond(policy):
    within = evaluate(policy, _case(15), AS_OF, order="1000.00").data
    assert within["alerts"] == [] and within["credit"]["check"]["outcome"] == "approve"
    assert not [r for r in within["reasons"] if r["rule"] == "credit.terms_exceeded"]
    beyond = evaluate(policy, _case(16), AS_OF, order="1000.00").data
    assert [a["id"] for a in beyond["alerts"]] == ["alert.terms_exceeded"]
    assert beyond["credit"]["check"]["outcome"] == "refer"


def test_approved_terms_on_the_credit_file_are_the_customer_s_terms(policy):
    file = customer(id="APPR", credit_score=85, approved_terms_days=20)
    assert evaluate(policy, _case(20, file), AS_OF).data["alerts"] == []
    d = evaluate(policy, _case(25, file), AS_OF).data
    assert d["credit"]["terms_days"] == 20 and [a["id"] for a in d["alerts"]] == ["alert.terms_exceeded"]


def test_a_paid_invoice_is_not_held_against_the_customer(policy):
    d = evaluate(
        policy, _case(85, payments=[payment("20000.00", on=-1, invoice_id="INV-1")]), AS_OF, order="1000.00"
    ).data
    assert d["alerts"] == [] and d["credit"]["check"]["outcome"] == "approve"


def test_a_policy_may_reject_such_an_order(policy_text):
    text = edit(
        policy_text,
        "      when: {field: invoice_terms_exceeded, eq: true}\n      outcome: refer",
        "      when: {field: invoice_terms_exceeded, eq: true}\n      outcome: reject",
    )
    with compiled(text) as strict:
        d = evaluate(strict, _case(85), AS_OF, order="1000.00").data
    assert d["credit"]["check"]["outcome"] == "reject" and d["credit"]["check"]["rules"] == ["check.terms_exceeded"]


def test_the_count_of_invoices_beyond_terms_is_a_decision_field(policy_text):
    text = edit(
        policy_text,
        "      when: {field: invoice_terms_exceeded, eq: true}\n      outcome: refer",
        "      when: {field: invoices_beyond_terms, gte: 2}\n      outcome: reject",
    )
    case = make_case(
        NEW, invoices=[invoice("A", "1000.00", issued=-5, due=55), invoice("B", "1000.00", issued=-5, due=45)]
    )
    with compiled(text) as variant:
        d = evaluate(variant, case, AS_OF, order="100.00").data
        assert d["credit"]["check"]["outcome"] == "reject"
        one = make_case(NEW, invoices=[invoice("A", "1000.00", issued=-5, due=55)])
        assert evaluate(variant, one, AS_OF, order="100.00").data["credit"]["check"]["outcome"] == "approve"


def test_a_policy_that_does_not_read_the_terms_fields_gets_no_terms_reason(policy_text):
    # a stored policy version from before terms enforcement replays byte-identically
    text = edit(
        policy_text,
        "      when: {field: invoice_terms_exceeded, eq: true}\n      outcome: refer",
        "      when: {field: order_amount, gt: 100000000}\n      outcome: refer",
    )
    text = edit(
        text,
        "    when: {field: invoice_terms_exceeded, eq: true}\n    severity: warning",
        "    when: {field: order_amount, gt: 100000000}\n    severity: warning",
    )
    with compiled(text) as old:
        d = evaluate(old, _case(85), AS_OF, order="1000.00").data
    assert not [r for r in d["reasons"] if "terms_exceeded" in r["rule"]] and d["alerts"] == []
