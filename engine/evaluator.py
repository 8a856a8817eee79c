"""evaluate(policy, case, as_of, order) → Decision.

Pipeline: facts → scorecard → bands → profile rules (durable_rules) → credit terms and
dunning stage → decision rules (durable_rules: credit check, alerts) → interest → the
decision with every reason in a fixed order. Python applies the effects of matched rules;
which rules match is decided by the engine alone.
"""
from __future__ import annotations

import datetime as dt

from rules import conditions, credit, dunning, interest, repayment, review, segments as segment_rules
from rules.classification import BAND_CLASSES, OVERDUE_TIER, rank
from rules.common import find_band
from rules.scorecard import score as scorecard_score

from .decision import Decision
from .errors import InputError, InputInvalid
from .facts import MAX_AMOUNT, Facts, build_facts, check_case, load_case
from rules.fields import DECISION, OVERDUE_FIELDS, PROFILE
from rules.money import minor_str, to_minor

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
TERMS_FIELDS = {"invoice_terms_exceeded", "invoices_beyond_terms"}


def parse_order(order, policy) -> tuple[int | None, str | None]:
    """order: None, an amount (Decimal/str/int), or {"amount": ..., "order_id": ...}."""
    if order is None:
        return None, None
    order_id = None
    if isinstance(order, dict):
        order_id, order = order.get("order_id"), order.get("amount")
    try:
        minor = to_minor(order, policy.exponent)
    except ValueError as exc:
        raise InputInvalid([InputError("order_amount", "E_AMOUNT", str(exc))]) from None
    if minor <= 0:
        raise InputInvalid([InputError("order_amount", "E_AMOUNT", "an order amount must be positive")])
    if minor > MAX_AMOUNT.scaleb(policy.exponent):
        raise InputInvalid([InputError("order_amount", "E_AMOUNT", f"above the maximum {MAX_AMOUNT:,}")])
    return minor, order_id


def evaluate(policy, case: dict, as_of: dt.date, order=None) -> Decision:
    if isinstance(as_of, dt.datetime) or not isinstance(as_of, dt.date):
        raise InputInvalid([InputError("as_of", "E_INVALID", "as_of must be a date")])
    order_minor, order_id = parse_order(order, policy)
    loaded = load_case(case, policy)
    return evaluate_facts(policy, build_facts(loaded, policy, as_of, order_minor, order_id))


def evaluate_loaded(policy, loaded: dict, as_of: dt.date, order=None) -> Decision:
    """evaluate() for a case that is already typed: what `load_case` (or `CaseSchema().load`)
    returns, with dates as `date`, amounts as `Decimal` and defaults filled in. It skips the
    marshmallow validation, the larger part of an evaluation, for cases that were validated
    when they were written (e.g. built from the ledger's typed rows). The policy checks still
    run (`check_case`), since the policy may have changed since, so the decision, or the
    refusal, is exactly what evaluate() gives for the input that loads to `loaded`
    (tests/test_fast_paths.py checks this on every policy test case).
    """
    return evaluate_loaded_with_facts(policy, loaded, as_of, order)[0]


def evaluate_loaded_with_facts(policy, loaded: dict, as_of: dt.date, order=None) -> tuple[Decision, Facts]:
    """evaluate_loaded, and the facts it evaluated (the sweep sums the book's figures from them)."""
    if isinstance(as_of, dt.datetime) or not isinstance(as_of, dt.date):
        raise InputInvalid([InputError("as_of", "E_INVALID", "as_of must be a date")])
    order_minor, order_id = parse_order(order, policy)
    case = check_case(loaded, policy)
    facts = build_facts(case, policy, as_of, order_minor, order_id)
    return evaluate_facts(policy, facts), facts


def _reason(rule_id, family, key, values):
    """An engine reason: `key` names its message in engine/reasons.py's catalogue (rendered when read)."""
    return {"rule": rule_id, "family": family, "key": key, "values": values}


def _rule_reason(policy, rule, fact, anchor):
    """A policy rule's reason: the fact fields its condition and its message templates use (compile time:
    policy.reason_fields), the anchor invoice where a template shows it; rendered from the templates when read."""
    names, wants_anchor = policy.reason_fields[rule.id]
    values = {n: fact[n] for n in names if n in fact}
    if wants_anchor:
        values["anchor_invoice"] = anchor
    return {"rule": rule.id, "family": rule.family, "values": values}


def evaluate_facts(policy, facts: Facts) -> Decision:
    fact = dict(facts.fields)
    exp = policy.exponent
    reasons: list[dict] = []

    # 1. credit score: a controller's manual assessment wins over the scorecard
    points = {}
    if fact["manual_score"]:
        score_source = "manual"
        reasons.append(_reason("score.manual", "score", "score.manual", {"score": fact["credit_score"]}))
    else:
        score_source = "scorecard"
        total, parts = scorecard_score(policy.scorecard, fact)
        fact["credit_score"] = total
        for name, pts, why in parts:
            points[name] = pts
            reasons.append(_reason(f"scorecard.{name}", "score", "score.factor", {
                "factor": name, "value": fact[name], "points": pts}) if why == "band" else
                _reason(f"scorecard.{name}", "score", "score.factor_missing", {"factor": name, "points": pts}))
        reasons.append(_reason("scorecard.total", "score", "score.total", {
            "total": total, "low": policy.scorecard.low, "high": policy.scorecard.high}))

    # 2. band classes
    for name in BAND_CLASSES:
        bc = policy.band_classes[name]
        band = find_band(bc.bands, fact[bc.field])
        fact[name] = band.value
        reasons.append(_reason(f"classification.{name}", "classification", "classification.band", {
            "class": name, "band": band.value, "field": bc.field, "value": fact[bc.field],
            "low": band.low, "high": band.high}))
    tier, bands_of, on = OVERDUE_TIER        # no reason of its own: a rule using it says so in its message
    fact[tier] = find_band(policy.band_classes[bands_of].bands, fact[on]).value
    if facts.previous_bucket in policy.band_classes["aging_bucket"].labels:
        fact["aging_worsened"] = (rank(policy.band_classes, "aging_bucket", fact["aging_bucket"])
                                  > rank(policy.band_classes, "aging_bucket", facts.previous_bucket))
    if facts.previous_score is not None:
        fact["score_drop"] = facts.previous_score - fact["credit_score"]
    for (kind, ident, dated), invoice_id, amount, day in facts.applied_later:
        reasons.append(_reason("credit.unapplied_cash", "credit.limit", "credit.unapplied_cash", {
            "source": kind, "source_id": ident, "source_date": dated.isoformat(), "amount": amount,
            "invoice_id": invoice_id, "applied_on": day.isoformat()}))
    for invoice_id, why in facts.pauses:
        if why == "legal_case":       # with the legal team: no stage action while its case is open
            case_id, status = facts.legal[invoice_id]
            reasons.append(_reason("dunning.pause", "dunning", "dunning.pause_legal", {
                "invoice_id": invoice_id, "case_id": case_id, "status": status}))
        else:
            reasons.append(_reason("dunning.pause", "dunning", "dunning.pause", {"invoice_id": invoice_id, "pause": why}))
    for kind, ident, day in facts.breaches:
        reasons.append(_reason("dunning.breach", "dunning", "dunning.breach",
                               {"kind": kind, "id": ident, "on": day.isoformat()}))

    # 3. profile rules
    anchor = facts.anchor_invoice or "-"
    fired_profile = _match(policy, PROFILE, fact)
    terms = credit.resolve_terms([r for r in fired_profile if r.family == "credit.limit"])
    target, entry_day, entries = dunning.resolve_stage(fired_profile)
    target, entry_day, entries = _tolerated_stage(policy, fired_profile, fact, (target, entry_day, entries), reasons)
    skip = any(r.get("skip") for r in entries)
    state = facts.dunning_state
    if state is None:
        # stateless: the stage is the target, entered the day its threshold was reached
        stage = target
        entered_on = (facts.as_of - dt.timedelta(days=fact["collectable_days_overdue"] - entry_day)) if stage else None
    elif target == 0 and facts.anchor_invoice is None and fact["paused_invoice_count"] and state[0]:
        # every overdue invoice is paused: the stage is held (no actions) and resumes where it
        # stood, re-entered on the day collection resumes (entered_on None marks the pause)
        stage, entered_on = state[0], None
    else:
        stage = dunning.next_stage(target, skip, state[0])
        entered_on = (state[1] if stage == state[0] and stage and state[1] else facts.as_of) if stage else None
    owner_rules = [r for r in fired_profile if r.family == "dunning.owner"]
    fired_actions = {r.id for r in fired_profile if r.family == "dunning.action"}
    for r in fired_profile:
        if r.family == "dunning.owner" and r is not owner_rules[0] and not r.get("channels"):
            continue   # only the first catch-all owner rule applies
        if r.family == "dunning.action" and r.get("stage") != stage:
            continue   # an action condition matters only in its own stage
        reasons.append(_rule_reason(policy, r, fact, anchor))

    # 4. decision-stage facts; a segment's figures, then an approved limit / terms on the credit file cap the policy's
    fired_segments = [r for r in fired_profile if r.family == "segments"]
    if any(r.params for r in fired_segments):
        terms = _segment_terms(terms, fired_segments, reasons)
    approved_limit, approved_terms = facts.approved
    policy_terms_days = terms.terms_days
    limit = terms.limit if approved_limit is None else min(terms.limit, approved_limit)
    grant = facts.grant if facts.grant and (facts.grant[1] is None or facts.as_of <= facts.grant[1]) else None
    if grant is not None:          # a controller's grant replaces the policy's limit (and the approved cap)
        limit = grant[0]
        reasons.append(_reason("credit.granted_limit", "credit.limit", "credit.granted_limit", {
            "limit": grant[0], "policy_limit": terms.limit, "granted_by": grant[2] or None,
            "until": grant[1].isoformat() if grant[1] else None}))
    elif approved_limit is not None:
        reasons.append(_reason("credit.approved_limit", "credit.limit", "credit.approved_limit", {
            "approved_limit": approved_limit, "policy_limit": terms.limit}))
    if approved_terms is not None and approved_terms < terms.terms_days:
        terms = credit.Terms(terms.limit, approved_terms, terms.deposit_pct, terms.limit_rules)
        reasons.append(_reason("credit.approved_terms", "credit.limit", "credit.approved_terms",
                               {"terms_days": approved_terms}))
    fact.update({
        "credit_limit": limit, "terms_days": terms.terms_days, "deposit_pct": terms.deposit_pct,
        "dunning_stage": stage,
        "exposure_after_order": fact["exposure"] + fact["order_amount"],
        "available_credit": max(0, limit - fact["exposure"]),
        "utilisation": _ratio_bp(fact["exposure"], limit),
        "utilisation_after_order": _ratio_bp(fact["exposure"] + fact["order_amount"], limit),
    })
    # terms enforcement: an open invoice due later after its issue than the customer's terms allow. Its reasons
    # only where the policy reads the fields, so a stored version without them replays byte-identically.
    beyond = [s for s in facts.invoices if s.open_minor > 0 and (s.due_on - s.issued_on).days > terms.terms_days]
    fact["invoices_beyond_terms"], fact["invoice_terms_exceeded"] = len(beyond), bool(beyond)
    for s in beyond if TERMS_FIELDS & set(policy.phase_fields.get(DECISION, ())) else ():
        reasons.append(_reason("credit.terms_exceeded", "credit.limit", "credit.terms_exceeded", {
            "invoice_id": s.id, "days": (s.due_on - s.issued_on).days, "issued_on": s.issued_on.isoformat(),
            "due_on": s.due_on.isoformat(), "terms_days": terms.terms_days}))
    fired_decision = _match(policy, DECISION, fact)
    fired_decision = _tolerated_checks(policy, fired_decision, fact, reasons)
    checks = [r for r in fired_decision if r.family == "credit.check"]
    alerts = [r for r in fired_decision if r.family == "alerts"]
    for r in fired_decision:      # an alert's message is its reason's, rendered when read (engine/reasons.py)
        if r.family == "credit.check" and not fact["has_order"]:
            continue
        reasons.append(_rule_reason(policy, r, fact, anchor))

    credit_out = {
        "limit": minor_str(limit, exp), "terms_days": terms.terms_days,
        "policy_limit": minor_str(terms.limit, exp), "policy_terms_days": policy_terms_days,
        "approved_limit": None if approved_limit is None else minor_str(approved_limit, exp),
        "deposit_pct": _pct(terms.deposit_pct), "outstanding": minor_str(fact["outstanding"], exp),
        "overdue": minor_str(fact["overdue_amount"], exp), "reserved": minor_str(fact["reserved"], exp),
        "exposure": minor_str(fact["exposure"], exp),
        "available": minor_str(fact["available_credit"], exp), "utilisation_pct": _pct(fact["utilisation"]),
        "unapplied_cash": minor_str(facts.unapplied_minor, exp), "limit_rules": list(terms.limit_rules),
    }
    if grant is not None:          # only with a grant in force: every other decision stays byte-identical
        credit_out["granted"] = {"limit": minor_str(grant[0], exp), "until": grant[1].isoformat() if grant[1] else None,
                                 "granted_by": grant[2]}
    if facts.applied_later:         # where unapplied cash went (absent when none was applied later)
        credit_out["cash_applied"] = [{"source": kind, "source_id": ident, "source_date": dated.isoformat(),
                                       "invoice_id": invoice_id, "amount": minor_str(amount, exp),
                                       "applied_on": day.isoformat()}
                                      for (kind, ident, dated), invoice_id, amount, day in facts.applied_later]
    if fact["has_order"]:
        outcome, conditions = credit.check_outcome(checks)
        if outcome == "reject":
            # a condition (a deposit) is what an approval would ask for: a rejected order has none to meet
            moot = {r.id for r in checks if r.get("condition") and r.get("outcome") != "reject"}
            checks = [r for r in checks if r.id not in moot]
            reasons = [x for x in reasons if x["rule"] not in moot]
        elif outcome in ("approve", "approve_with_conditions"):
            reasons.extend(_approval_reasons(fact, limit))
        credit_out["check"] = {
            "order_amount": minor_str(fact["order_amount"], exp), "outcome": outcome,
            "exposure_after_order": minor_str(fact["exposure_after_order"], exp),
            "utilisation_after_order_pct": _pct(fact["utilisation_after_order"]),
            "conditions": [_condition(c, terms, fact, exp) for c in conditions],
            "rules": [r.id for r in checks],
        }

    # 5. dunning actions due on as_of
    actions = _reminders(policy, facts, exp)
    stage_info = None
    action_owners: list[dict] = []
    if stage and entered_on is None:
        stage_info = {"name": policy.dunning.stages[stage - 1].name, "target_stage": target, "skip": skip,
                      "paused": True, "entered_at_days_overdue": None, "entered_on": None, "days_in_stage": None,
                      "cadence_days": policy.dunning.stages[stage - 1].cadence_days, "next_action_on": None}
        reasons.append(_reason("dunning.held", "dunning", "dunning.held", {"stage": stage}))
    elif stage:
        stage_def = policy.dunning.stages[stage - 1]
        cadence_days, cadence_by = segment_rules.cadence(fired_segments, stage, stage_def.cadence_days)
        if cadence_by is not None:
            reasons.append(_reason(cadence_by, "segments", "segments.cadence", {
                "stage": stage, "cadence_days": cadence_days, "policy_days": stage_def.cadence_days}))
        days_in_stage = (facts.as_of - entered_on).days
        wait = (-days_in_stage) % cadence_days
        action_owner_rules = segment_rules.owner_rules(fired_segments) + owner_rules
        anchor = next(s for s in facts.invoices if s.id == facts.anchor_invoice)
        taken = None if facts.actions_taken is None else tuple(
            (kind, is_open) for kind, in_stage, due_on, is_open in facts.actions_taken
            if in_stage == stage and entered_on <= due_on < facts.as_of)
        action_owners = []
        for action in stage_def.actions:
            if action.conditional and action.id not in fired_actions:
                continue
            kind, channel, replaced = action.type, action.channel, []
            for by, new in segment_rules.instead(fired_segments, channel):
                replaced.append(_reason(by, "segments", "segments.channel",
                                        {"action": action.id, "channel": new, "instead_of": channel}))
                kind, channel = segment_rules.CHANNEL_TYPE[new], new
            # the actions already created are stored under the type they were created with
            if not dunning.action_due(action, days_in_stage, cadence_days, fact["collectable_days_overdue"], taken,
                                      kind):
                continue
            reasons.extend(replaced)
            owner, owner_rule = dunning.owner_of(action_owner_rules, channel, action.owner, facts.collector, stage)
            actions.append({
                "id": action.id, "type": kind, "channel": channel, "stage": stage,
                "owner": owner, "invoice_id": anchor.id, "amount": minor_str(anchor.open_minor, exp),
                "due_on": facts.as_of.isoformat()})
            action_owners.append({"action": action.id, "owner": owner, "rule": owner_rule or action.id,
                                  "automated": owner == "automated"})
        stage_info = {"name": stage_def.name, "target_stage": target, "skip": skip, "paused": False,
                      "entered_at_days_overdue": entry_day, "entered_on": entered_on.isoformat(),
                      "days_in_stage": days_in_stage, "cadence_days": cadence_days,
                      "next_action_on": (facts.as_of + dt.timedelta(days=wait)).isoformat()}
        if stage != target:
            reasons.append(_reason("dunning.step", "dunning", "dunning.step",
                                   {"target": target, "previous": state[0], "stage": stage}))
    dunning_out = {"stage": stage, "anchor_invoice_id": facts.anchor_invoice, "stage_detail": stage_info,
                   "open_invoices": [{"invoice_id": s.id, "open": minor_str(s.open_minor, exp),
                                      "due_on": s.due_on.isoformat(), "days_overdue": s.days_overdue,
                                      "paused": s.paused} for s in facts.invoices if s.open_minor > 0],
                   "paused": [{"invoice_id": i, "reason": why} for i, why in facts.pauses],
                   "actions": actions}
    if action_owners:
        # who works each stage action and which rule said so (an action naming its owner: the action)
        dunning_out["action_owners"] = action_owners

    # 6. interest, repayment, review, segments, alerts
    open_invoices = [s for s in facts.invoices if s.open_minor > 0]
    charges = interest.compute(policy.interest, open_invoices)
    for c in charges:
        reasons.append(_reason("interest.late", "interest", "interest.late", {
            "invoice_id": c.invoice_id, "base": c.base, "daily_rate": str(policy.interest.daily_rate),
            "chargeable_days": c.chargeable_days, "days_overdue": c.days_overdue,
            "grace_days": policy.interest.grace_days, "interest": c.interest}))
    interest_out = {
        "total": minor_str(sum(c.interest + c.fee for c in charges), exp),
        "invoices": [{"invoice_id": c.invoice_id, "days_overdue": c.days_overdue,
                      "chargeable_days": c.chargeable_days, "base": minor_str(c.base, exp),
                      "daily_rate": str(policy.interest.daily_rate), "interest": minor_str(c.interest, exp),
                      "fee": minor_str(c.fee, exp)} for c in charges]}

    classification = {name: fact[name] for name in BAND_CLASSES}
    classification.update({k: fact[k] for k in ("customer_type", "industry", "region", "company_size",
                                                  "arrears_reason", "deal_type")})
    segments = [{"id": r.id, "strategy": list(r.get("strategy"))} for r in fired_profile if r.family == "segments"]
    classification["segments"] = segments
    # without their message: engine/reasons.render gives each its rule's reason's
    alert_out = sorted(({"id": r.id, "severity": r.get("severity")} for r in alerts),
                       key=lambda a: SEVERITY_ORDER[a["severity"]])
    body = {
        "customer_id": facts.customer_id, "as_of": facts.as_of.isoformat(),
        "policy_version": policy.version, "policy_name": policy.name, "currency": policy.currency,
        "classification": classification,
        "score": {"value": fact["credit_score"], "source": score_source, "points": points},
        "credit": credit_out, "dunning": dunning_out, "interest": interest_out,
        "repayment": _segment_repayment(repayment.options(fired_profile, policy.waiver_mode), fired_segments,
                                        reasons),
        "alerts": alert_out,
        "review": review.schedule(fired_profile, facts.last_reviewed_on, facts.as_of),
        "reasons": reasons,
    }
    return Decision(body, policy)


def _tolerated_stage(policy, fired_profile, fact, resolved, reasons):
    """The stage after the tolerance: a stage whose `min_balance` the collectable overdue amount does not
    reach is not entered; the customer stays in the highest lower stage whose entry matched (or 0)."""
    target, entry_day, entries = resolved
    stages = policy.content["dunning"]["stages"]
    amount = fact["collectable_overdue_amount"]
    skipped = []
    while target and amount < stages[target - 1].get("min_balance", 0):
        skipped.append((target, stages[target - 1]["min_balance"]))
        lower = [r for r in fired_profile if r.family == "dunning.stage" and r.get("stage") < target]
        target, entry_day, entries = dunning.resolve_stage(lower)
    for stage, minimum in skipped:
        reasons.append(_reason("dunning.tolerance", "dunning", "dunning.tolerance",
                               {"amount": amount, "stage": stage, "min_balance": minimum}))
    return target, entry_day, entries


def _tolerated_checks(policy, fired_decision, fact, reasons):
    """Set aside the credit check rules that read an overdue field while the overdue amount is above 0 and
    below the policy's `credit.min_overdue_balance` (tolerance): such a balance blocks no order."""
    minimum = policy.content["credit"].get("min_overdue_balance")
    if minimum is None or not fact["has_order"] or not 0 < fact["overdue_amount"] < minimum:
        return fired_decision
    kept = []
    for r in fired_decision:
        if r.family == "credit.check" and conditions.fields_used(r.condition) & OVERDUE_FIELDS:
            reasons.append(_reason("credit.tolerance", "credit.check", "credit.tolerance", {
                "set_aside": r.id, "overdue_amount": fact["overdue_amount"], "tolerance": minimum}))
            continue
        kept.append(r)
    return kept


def _segment_terms(terms, fired_segments, reasons):
    """A matching segment's limit cap, deposit floor and terms, each change a reason naming the segment."""
    limit, deposit, days, rules_used = terms.limit, terms.deposit_pct, terms.terms_days, list(terms.limit_rules)
    caps = [(r.param("limit"), r.id) for r in fired_segments if r.param("limit") is not None]
    if caps:
        cap, by = min(caps)
        if cap < limit:
            reasons.append(_reason(by, "segments", "segments.limit", {"limit": cap, "was": limit}))
            limit, rules_used = cap, rules_used + [by]
    floors = [(r.param("deposit_pct"), r.id) for r in fired_segments if r.param("deposit_pct") is not None]
    if floors:
        floor, by = max(floors, key=lambda f: f[0])
        if floor > deposit:
            reasons.append(_reason(by, "segments", "segments.deposit", {"deposit_pct": floor, "was": deposit}))
            deposit, rules_used = floor, rules_used + [by]
    set_terms = [(r.param("terms_days"), r.id) for r in fired_segments if r.param("terms_days") is not None]
    if set_terms:
        new, by = min(set_terms)
        if new != days:
            reasons.append(_reason(by, "segments", "segments.terms", {"terms_days": new, "was": days}))
            days, rules_used = new, rules_used + [by]
    return credit.Terms(limit, days, deposit, tuple(rules_used))


def _segment_repayment(options: dict, fired_segments, reasons) -> dict:
    """The repayment options a matching segment offers on top of the repayment rules' (the most generous)."""
    for option, key, param in (("instalments", "max_count", "instalments"), ("deferral", "max_days", "deferral_days")):
        offers = [(r.param(param), r.id) for r in fired_segments if r.param(param) is not None]
        if offers:
            best, by = max(offers, key=lambda o: o[0])
            if best > options[option][key]:
                reasons.append(_reason(by, "segments", "segments.repayment",
                                       {"option": option, "up_to": best, "was": options[option][key]}))
                options[option] = {"allowed": True, key: best}
    return options


def _approval_reasons(fact, limit) -> list[dict]:
    """Why an order is approved: the limit holds it, the utilisation it leaves, nothing overdue that blocks."""
    if fact["overdue_amount"] > 0:
        overdue = _reason("credit.check.overdue", "credit.check", "credit.overdue_allowed", {
            "overdue_amount": fact["overdue_amount"], "max_days_overdue": fact["max_days_overdue"],
            "aging_bucket": fact["aging_bucket"], "dunning_stage": fact["dunning_stage"]})
    else:
        overdue = _reason("credit.check.overdue", "credit.check", "credit.nothing_overdue", {})
    figures = {"exposure": fact["exposure"], "order_amount": fact["order_amount"],
               "exposure_after_order": fact["exposure_after_order"], "credit_limit": limit}
    return [
        _reason("credit.check.within_limit", "credit.check",
                "credit.within_limit" if fact["exposure_after_order"] <= limit else "credit.over_limit_allowed",
                figures),
        _reason("credit.check.utilisation", "credit.check", "credit.utilisation",
                {"utilisation_after_order": fact["utilisation_after_order"]}),
        overdue,
    ]


def _match(policy, phase, fact):
    by_id = policy.rules_by_id
    # the whole fact: the matcher picks out the fields its rules use (policy.phase_fields)
    return [by_id[n] for n in policy.matchers[phase].match(fact)]


def _ratio_bp(part: int, whole: int) -> int:
    """part / whole in basis points, rounded up (so 90.004 % counts as above 90 %)."""
    if whole <= 0:
        return 0 if part <= 0 else 1_000_000
    return -((-part * 10000) // whole)


def _pct(bp: int) -> str:
    return minor_str(bp, 2)          # basis points → '90.05': the same digits as an amount in fen


def _condition(kind, terms, fact, exp):
    if kind == "deposit":
        amount = -((-fact["order_amount"] * terms.deposit_pct) // 10000)     # rounded up to the fen
        return {"type": "deposit", "pct": _pct(terms.deposit_pct), "amount": minor_str(amount, exp)}
    return {"type": kind, "amount": minor_str(fact["order_amount"], exp)}


def _reminders(policy, facts: Facts, exp) -> list[dict]:
    days = set(policy.dunning.reminder_days)
    out = []
    for inv in facts.invoices:
        before = -inv.days_overdue
        if inv.open_minor > 0 and before in days and not inv.disputed:
            out.append({"id": "dunning.reminder", "type": "payment_reminder", "channel": policy.dunning.reminder_channel,
                        "stage": 0, "owner": dunning.resolve_owner([], policy.dunning.reminder_channel,
                                                                   policy.dunning.reminder_owner, facts.collector),
                        "invoice_id": inv.id, "amount": minor_str(inv.open_minor, exp),
                        "due_on": facts.as_of.isoformat(), "days_before_due": before})
    return out
