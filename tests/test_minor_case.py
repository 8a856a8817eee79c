"""check_case's fast path (engine/facts.py MinorCase): a typed case that carries its minor units in the
policy's exponent keeps them, and every result and every refusal is what the full conversion gives.

The MinorCases here carry what a ledger would: each amount's minor units where to_minor accepts the amount
(a ledger row holds only such), none where it refuses it. tests/api/test_minor_case_ledger.py does the
same on cases the ledger builds from a database."""
from __future__ import annotations

import copy
import pickle
from decimal import Decimal

from marshmallow import ValidationError

from engine import InputInvalid, evaluate_loaded
from engine.facts import CaseSchema, MinorCase, check_case
from rules.money import minor_str, to_minor

from test_fast_paths import outcome, policy_inputs

MONEY_LISTS = ("invoices", "payments", "credit_notes", "promises", "reservations")


def _items(case):
    for key in MONEY_LISTS:
        for item in case[key]:
            yield item, "amount"
    for plan in case["instalment_plans"]:
        for inst in plan["instalments"]:
            yield inst, "amount"
    if case.get("grant") is not None:
        yield case["grant"], "limit"


def carrying(typed: dict, exponent: int) -> MinorCase:
    """`typed` as a MinorCase in `exponent`: the minor units of every amount to_minor accepts."""
    case = MinorCase(copy.deepcopy(typed), exponent)
    for item, key in _items(case):
        try:
            item[key + "_minor"] = to_minor(item[key], exponent)
        except ValueError:
            item.pop(key + "_minor", None)
    return case


def checked(policy, case):
    try:
        return check_case(case, policy)
    except InputInvalid as exc:
        return [(e.field, e.code, e.message) for e in exc.errors]


def _typed_policy_inputs():
    out = []
    for name, data, as_of, order in policy_inputs():
        try:
            out.append((name, CaseSchema().load(copy.deepcopy(data)), as_of, order))
        except ValidationError:
            continue
    return out


def test_the_fast_path_equals_the_full_path_on_every_policy_test_input(policy):
    inputs = _typed_policy_inputs()
    assert len(inputs) >= 100
    refused = amount_refusals = kept = 0
    for name, typed, as_of, order in inputs:
        full = checked(policy, copy.deepcopy(typed))
        fast_case = carrying(typed, policy.exponent)
        kept += sum(1 for item, key in _items(fast_case) if key + "_minor" in item)
        assert checked(policy, fast_case) == full, name
        assert outcome(lambda: evaluate_loaded(policy, carrying(typed, policy.exponent), as_of, order=order)) \
            == outcome(lambda: evaluate_loaded(policy, copy.deepcopy(typed), as_of, order=order)), name
        if isinstance(full, list):
            refused += 1
            amount_refusals += any(code == "E_AMOUNT" for _, code, _ in full)
    # refusals of every kind are among them, amounts too, and most amounts were carried
    assert refused >= 5 and amount_refusals >= 1 and kept >= 100, (refused, amount_refusals, kept)


def test_minor_units_of_another_exponent_are_converted_again(policy):
    """A case built in another exponent than the policy's (a ledger of a 0- or 3-decimal currency) is checked
    in full: refused or converted exactly as a plain dict. Without the guard on the exponent, the case in 3
    decimals would be accepted with minor units 10 × too large and the one in 0 decimals with 100 × too small."""
    assert policy.exponent == 2
    differs = 0
    for name, typed, as_of, order in _typed_policy_inputs()[:60]:
        for exponent in (0, 3):
            other = carrying(typed, exponent)
            plain = dict(copy.deepcopy(other))             # the same items, not a MinorCase: the full path
            full = checked(policy, plain)
            differs += other != carrying(typed, 2)
            assert checked(policy, other) == full, (name, exponent)
            assert other.minor_exponent == (None if isinstance(full, list) and any(
                code == "E_AMOUNT" for _, code, _ in full) else 2), (name, exponent)
    assert differs >= 60
    # a ledger's rows in 3 decimals: "100.500" is refused by a 2-decimal policy; in 0 decimals "10050" is
    # 1005000 fen, not the 10050 the case carries
    typed = _typed_policy_inputs()[0][1]
    in3 = MinorCase(copy.deepcopy(typed), 3)
    in3["invoices"][0].update(amount=to_minor_decimal(100500, 3), amount_minor=100500)
    refusal = checked(policy, in3)
    assert isinstance(refusal, list)
    assert ("invoices[0].amount", "E_AMOUNT", "100.500 has more than 2 decimal places") in refusal
    assert in3.minor_exponent is None
    in0 = MinorCase(copy.deepcopy(typed), 0)
    in0["invoices"][0].update(amount=to_minor_decimal(10050, 0), amount_minor=10050)
    result = checked(policy, in0)
    assert not isinstance(result, list), result
    assert result["invoices"][0]["amount_minor"] == 1005000 and in0.minor_exponent == 2


def to_minor_decimal(minor: int, exponent: int) -> Decimal:
    """The amount as the ledger makes it from its row's minor units (api/store/ledger.py)."""
    return Decimal(minor_str(minor, exponent))


def test_a_refused_full_conversion_leaves_the_case_to_be_converted_again(policy):
    typed = _typed_policy_inputs()[0][1]
    case = MinorCase(copy.deepcopy(typed), 3)
    case["invoices"][0].update(amount=to_minor_decimal(100500, 3), amount_minor=100500)
    assert isinstance(checked(policy, case), list) and case.minor_exponent is None
    # corrected by whoever holds it (amount and minor units): the next check converts everything again
    case["invoices"][0].update(amount=to_minor_decimal(10050, 2), amount_minor=999)
    assert checked(policy, case)["invoices"][0]["amount_minor"] == 10050
    assert case.minor_exponent == 2


def test_missing_or_odd_minor_units_are_converted(policy):
    """The guard per amount: a carried value that is not a plain int in the ledger's range takes to_minor."""
    typed = _typed_policy_inputs()[0][1]
    expected = checked(policy, copy.deepcopy(typed))
    assert not isinstance(expected, list)
    for odd in (None, True, 10 ** 18, "10050", 100.5):
        case = carrying(typed, 2)
        if odd is None:
            del case["invoices"][0]["amount_minor"]
        else:
            case["invoices"][0]["amount_minor"] = odd
        assert checked(policy, case) == expected, odd


def test_copies_keep_the_exponent():
    case = MinorCase({"invoices": [{"amount_minor": 1}]}, 2)
    for copied in (copy.deepcopy(case), pickle.loads(pickle.dumps(case)), copy.copy(case)):
        assert type(copied) is MinorCase and copied.minor_exponent == 2 and copied == case
    assert type(dict(case)) is dict and case == {"invoices": [{"amount_minor": 1}]}
