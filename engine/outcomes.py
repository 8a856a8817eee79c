"""Outcomes only: the figures `policy simulate` compares (classes, limit, terms, dunning stage, late
interest, exposure), computed from the facts without the decision around them.

A full evaluation (engine/evaluator.py `evaluate_facts`) also assembles ~30 reasons, the dunning
actions, repayment, review, alerts and the canonical JSON, and runs the decision rules (credit
check, alerts); none of that changes the figures above when no order is checked: the decision
rules run after the limit, terms and stage are set and only read them. So `base_outcomes` runs the
same steps as `evaluate_facts` up to there — score, band classes, the profile rules, the stage with
its tolerance, segment terms, the credit file's approved limit / terms and grant — with the
evaluator's own helpers, and late interest, and nothing else. A reservation's credit-check outcome
still comes from the full evaluation (the simulation asks for it per held order, and it depends on
the decision rules).

`tests/test_outcomes.py` checks `base_outcomes` against the full decision on every case of
tests/policy/ and on a generated book, under several policies: a change to the evaluator that
moves one of these figures and not the other fails there.

`facts_key(policy)` names everything of a policy that `check_case`'s amounts and `build_facts` read:
two policies with equal keys build the same facts from the same case, so the simulation builds
them once for both (the test also checks that build_facts reads nothing else of the policy).
"""
from __future__ import annotations

from rules import credit, dunning, interest
from rules.classification import BAND_CLASSES, OVERDUE_TIER, rank
from rules.common import find_band
from rules.fields import PROFILE
from rules.money import minor_str
from rules.scorecard import score as scorecard_score

from .evaluator import _match, _segment_terms, _tolerated_stage
from .facts import Facts

# what of a policy build_facts reads (attribute / key paths); facts_key gives their values
FACTS_INPUTS = (
    ("exponent",),
    ("currency",),
    ("dunning", "promise_tolerance_days"),
    ("dunning", "pause_disputed"),
    ("dunning", "pause_instalment_plans"),
    ("band_classes", "aging_bucket", "bands"),
    ("content", "categories", "arrears_reason"),
    ("content", "categories", "deal_type"),
)


def facts_key(policy) -> tuple:
    """What build_facts (and check_case's minor units) takes from `policy`: equal keys, equal facts.
    The category lists count whole (build_facts takes their first entry as the default)."""
    return (policy.exponent, policy.currency, policy.dunning.promise_tolerance_days, policy.dunning.pause_disputed,
            policy.dunning.pause_instalment_plans, tuple(policy.band_classes["aging_bucket"].bands),
            tuple(policy.content["categories"]["arrears_reason"]), tuple(policy.content["categories"]["deal_type"]))


def base_outcomes(policy, facts: Facts) -> dict:
    """The figures of `evaluate_facts(policy, facts).data` that the simulation compares, for facts
    without an order: {amount_tier, aging_bucket, reputation, limit, terms_days, dunning_stage,
    interest, exposure}, as the decision writes them (money as decimal strings)."""
    fact = dict(facts.fields)
    exp = policy.exponent
    dropped: list = []            # the reasons the evaluator's helpers append: not kept here

    # 1-2. score and band classes (evaluate_facts steps 1 and 2)
    if not fact["manual_score"]:
        fact["credit_score"] = scorecard_score(policy.scorecard, fact)[0]
    for name in BAND_CLASSES:
        bc = policy.band_classes[name]
        fact[name] = find_band(bc.bands, fact[bc.field]).value
    tier, bands_of, on = OVERDUE_TIER
    fact[tier] = find_band(policy.band_classes[bands_of].bands, fact[on]).value
    if facts.previous_bucket in policy.band_classes["aging_bucket"].labels:
        fact["aging_worsened"] = (rank(policy.band_classes, "aging_bucket", fact["aging_bucket"])
                                  > rank(policy.band_classes, "aging_bucket", facts.previous_bucket))
    if facts.previous_score is not None:
        fact["score_drop"] = facts.previous_score - fact["credit_score"]

    # 3. profile rules: terms and the dunning stage
    fired_profile = _match(policy, PROFILE, fact)
    terms = credit.resolve_terms([r for r in fired_profile if r.family == "credit.limit"])
    target, entry_day, entries = dunning.resolve_stage(fired_profile)
    target, entry_day, entries = _tolerated_stage(policy, fired_profile, fact, (target, entry_day, entries), dropped)
    skip = any(r.get("skip") for r in entries)
    state = facts.dunning_state
    if state is None:
        stage = target
    elif target == 0 and facts.anchor_invoice is None and fact["paused_invoice_count"] and state[0]:
        stage = state[0]          # held while every overdue invoice is paused
    else:
        stage = dunning.next_stage(target, skip, state[0])

    # 4. segment terms, then the credit file's approved limit / terms and a grant in force
    fired_segments = [r for r in fired_profile if r.family == "segments"]
    if any(r.params for r in fired_segments):
        terms = _segment_terms(terms, fired_segments, dropped)
    approved_limit, approved_terms = facts.approved
    limit = terms.limit if approved_limit is None else min(terms.limit, approved_limit)
    grant = facts.grant if facts.grant and (facts.grant[1] is None or facts.as_of <= facts.grant[1]) else None
    if grant is not None:
        limit = grant[0]
    terms_days = terms.terms_days
    if approved_terms is not None and approved_terms < terms_days:
        terms_days = approved_terms

    # 6. late interest (and fees) on the open invoices
    charges = interest.compute(policy.interest, [s for s in facts.invoices if s.open_minor > 0])
    return {"amount_tier": fact["amount_tier"], "aging_bucket": fact["aging_bucket"], "reputation": fact["reputation"],
            "limit": minor_str(limit, exp), "terms_days": terms_days, "dunning_stage": stage,
            "interest": minor_str(sum(c.interest + c.fee for c in charges), exp),
            "exposure": minor_str(fact["exposure"], exp)}
