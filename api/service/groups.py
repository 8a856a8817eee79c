"""集团客户: customer groups (a parent company and its subsidiaries) with a group limit.

A group's exposure is the sum of its members' exposures (open balances and held reservations, as the engine
counts them for each member). A credit check of a member tests the customer's own limit (the policy, as ever)
and then the group's: if the group's exposure after the order exceeds the group limit the check rejects, the
reason (rule `credit.group_limit`) naming the group and both figures; within it the reasons say so too (rule
`credit.group`). As with a credit hold, the engine's decision is the record's result (replayable) and the
record's outcome is the service's. Checks of members of one group serialise on the group's row (locked before
the customer's), so parallel reservations across members never jointly exceed the group limit.

Setting a group (name, limit) is a record in the group's chain (`group:<id>`, kind `group_set`); joining or
leaving is a record in the customer's (`group_member`), each with before/after, actor and reason.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from engine.errors import EngineFailure
from engine.evaluator import evaluate_loaded
from rules.money import minor_display, minor_str, to_minor

from ..errors import engine_failed, invalid, not_found
from ..store import trail
from ..store.ledger import load_cases
from ..store.tables import Customer, CustomerGroup, GroupMember
from .decide import lock_customer
from .validation import canonical, money_minor

GROUP_RULE, GROUP_LIMIT_RULE = "credit.group", "credit.group_limit"


def _reason(req: dict) -> str:
    reason = (req.get("reason") or "").strip()
    if not reason:
        raise invalid({"reason": ["a reason is required"]})
    return reason


def group_dict(g: CustomerGroup | None, exp: int = 2) -> dict | None:
    if g is None:
        return None
    return {"id": g.id, "name": g.name, "limit": minor_str(g.limit_minor, exp), "updated_by": g.updated_by,
            "updated_at": g.updated_at.isoformat(), "decision_id": g.decision_id}


def _record(ctx, s, subject, kind, outcome, actor, request_id, body):
    return trail.append(s, subject=subject, kind=kind, actor=actor, request_id=request_id, as_of=ctx.today(),
                        facts=canonical(body), policy_version=ctx.registry.active(s).version,
                        result=canonical(body), outcome=outcome, created_at=ctx.clock())


def lock_group_of(s, customer_id: str) -> CustomerGroup | None:
    """The customer's group, its row locked (before the customer's: the one lock order of a member's check)."""
    group_id = s.execute(select(GroupMember.group_id).where(GroupMember.customer_id == customer_id)).scalar()
    if group_id is None:
        return None
    return s.execute(select(CustomerGroup).where(CustomerGroup.id == group_id).with_for_update()).scalar_one()


def members(s, group_id: str) -> list[str]:
    return list(s.execute(select(GroupMember.customer_id).where(GroupMember.group_id == group_id)
                          .order_by(GroupMember.customer_id)).scalars())


def exposure(ctx, s, policy, group_id: str, as_of: dt.date, exclude: str | None = None) -> int:
    """The members' exposures summed (minor units), each as the engine counts it as of `as_of`."""
    ids = [m for m in members(s, group_id) if m != exclude]
    if not ids:
        return 0
    customers = s.execute(select(Customer).where(Customer.id.in_(ids))).scalars().all()
    return exposure_of(policy, load_cases(s, customers, policy.exponent, as_of).values(), as_of)


def exposure_of(policy, cases, as_of: dt.date) -> int:
    """The exposures of these members' cases (ledger.LedgerCase) summed, in minor units."""
    total = 0
    for case in cases:
        try:
            total += to_minor(evaluate_loaded(policy, case.typed, as_of).data["credit"]["exposure"], policy.exponent)
        except EngineFailure as exc:
            raise engine_failed(exc) from None
    return total


class GroupTest:
    """A member's credit check against its group's limit: the others' exposure is read before the decision."""

    def __init__(self, ctx, s, policy, group: CustomerGroup, customer_id: str, as_of: dt.date, others=None):
        """`others`: the other members' exposure when the caller has summed it (exposure_of)."""
        self.group, self.exp = group, policy.exponent
        self.others = exposure(ctx, s, policy, group.id, as_of, exclude=customer_id) if others is None else others

    def after(self, data: dict) -> int:
        return self.others + to_minor(data["credit"]["check"]["exposure_after_order"], self.exp)

    def exceeded(self, data: dict) -> bool:
        return self.after(data) > self.group.limit_minor

    def apply(self, data: dict, check: dict, reasons: list[dict]) -> tuple[dict, list[dict], dict]:
        """(check, reasons, the answer's `group`) with the group's test added."""
        g, exp = self.group, self.exp
        after = self.after(data)
        own = to_minor(data["credit"]["exposure"], exp)
        view = {"id": g.id, "name": g.name, "limit": minor_str(g.limit_minor, exp),
                "exposure": minor_str(self.others + own, exp), "exposure_after_order": minor_str(after, exp),
                "available": minor_str(max(0, g.limit_minor - self.others - own), exp)}
        figures = (f"集团 group {g.id} ({g.name}): exposure {minor_display(self.others + own, exp)} + order "
                   f"{data['credit']['check']['order_amount']} = {minor_display(after, exp)}")
        if after > g.limit_minor:
            why = {"rule": GROUP_LIMIT_RULE, "family": "credit.check",
                   "message": f"{figures} > group limit {minor_display(g.limit_minor, exp)}"}
            return dict(check, outcome="reject", conditions=[]), [why, *reasons], view
        why = {"rule": GROUP_RULE, "family": "credit.check",
               "message": f"{figures} ≤ group limit {minor_display(g.limit_minor, exp)}"}
        return check, [*reasons, why], view


def put_group(ctx, group_id: str, req: dict, key, request_id: str) -> dict:
    reason = _reason(req)
    name = (req.get("name") or "").strip()
    if not name:
        raise invalid({"name": ["a name is required"]})
    with ctx.tx() as s:
        policy = ctx.registry.active(s)
        limit = money_minor(req["limit"], policy.exponent, "limit")
        g = s.execute(select(CustomerGroup).where(CustomerGroup.id == group_id).with_for_update()).scalar_one_or_none()
        before = group_dict(g, policy.exponent)
        after = {"id": group_id, "name": name, "limit": minor_str(limit, policy.exponent)}
        rec = _record(ctx, s, f"group:{group_id}", "group_set", "set", key.name, request_id,
                      {"before": before, "after": after, "reason": reason, "person": key.person or key.name})
        if g is None:
            g = CustomerGroup(id=group_id)
            s.add(g)
        g.name, g.limit_minor, g.updated_at, g.updated_by, g.decision_id = name, limit, ctx.clock(), key.name, rec.id
        return {"group": group_dict(g, policy.exponent), "before": before, "decision_id": rec.id}


def set_member(ctx, customer_id: str, req: dict, key, request_id: str) -> dict:
    """Join a group (`group_id`) or leave it (`group_id` null)."""
    reason = _reason(req)
    group_id = req.get("group_id")
    with ctx.tx() as s:
        if group_id is not None:
            g = s.execute(select(CustomerGroup).where(CustomerGroup.id == group_id).with_for_update()).scalar()
            if g is None:
                raise not_found("customer group", group_id)
        lock_customer(s, customer_id)
        m = s.get(GroupMember, customer_id)
        before = m.group_id if m else None
        rec = _record(ctx, s, customer_id, "group_member", "joined" if group_id else "left", key.name, request_id,
                      {"customer_id": customer_id, "before": before, "after": group_id, "reason": reason,
                       "person": key.person or key.name})
        if group_id is None and m is not None:
            s.delete(m)
        elif group_id is not None:
            if m is None:
                s.add(GroupMember(customer_id=customer_id, group_id=group_id))
            else:
                m.group_id = group_id
        return {"customer_id": customer_id, "group_id": group_id, "before": before, "decision_id": rec.id}


def get_group(ctx, group_id: str) -> dict:
    with ctx.read_tx() as s:
        g = s.get(CustomerGroup, group_id)
        if g is None:
            raise not_found("customer group", group_id)
        policy = ctx.registry.active(s)
        total = exposure(ctx, s, policy, group_id, ctx.today())
        return {**group_dict(g, policy.exponent), "members": members(s, group_id),
                "exposure": minor_str(total, policy.exponent),
                "available": minor_str(max(0, g.limit_minor - total), policy.exponent), "as_of": ctx.today().isoformat()}
