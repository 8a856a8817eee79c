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

A group hold (停止赊销 of the whole group) works as a customer's credit hold for every member: while it is in
force (placed_on ≤ as_of ≤ until) each member's credit check rejects, the hold's reason (rule
`credit.group_hold`, naming the group) among its reasons. Membership is read at the check, so a customer joining
a held group inherits the hold and one leaving is released. Placing, replacing and lifting it is a record in the
group's chain and one in each member's (kinds `group_hold_set`, `group_hold_lift`: a change that moves the
member's decisions is in the member's own chain); the join or leave record names the hold it inherits or
leaves; and each check it rejects keeps the hold in its facts (`group_hold`) beside the case, so the record says
why its outcome is `reject` while its result stays the engine's decision (a replay is identical).
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import bindparam, select

from engine.errors import EngineFailure
from engine.evaluator import evaluate_loaded
from rules.money import minor_display, minor_str, to_minor

from ..errors import conflict, engine_failed, invalid, not_found
from ..store import trail
from ..store.ledger import load_cases
from ..store.tables import Customer, CustomerGroup, GroupHold, GroupMember
from .decide import lock_customer
from .validation import canonical, money_minor

GROUP_RULE, GROUP_LIMIT_RULE, GROUP_HOLD_RULE = "credit.group", "credit.group_limit", "credit.group_hold"
log = logging.getLogger("creditctl.alerts")


def _reason(req: dict) -> str:
    reason = (req.get("reason") or "").strip()
    if not reason:
        raise invalid({"reason": ["a reason is required"]})
    return reason


def group_dict(g: CustomerGroup | None, exp: int = 2) -> dict | None:
    if g is None:
        return None
    return {
        "id": g.id,
        "name": g.name,
        "limit": minor_str(g.limit_minor, exp),
        "updated_by": g.updated_by,
        "updated_at": g.updated_at.isoformat(),
        "decision_id": g.decision_id,
    }


def _record(ctx, s, subject, kind, outcome, actor, request_id, body):
    return trail.append(
        s,
        subject=subject,
        kind=kind,
        actor=actor,
        request_id=request_id,
        as_of=ctx.today(),
        facts=canonical(body),
        policy_version=ctx.registry.active(s).version,
        result=canonical(body),
        outcome=outcome,
        created_at=ctx.clock(),
    )


def lock_group_of(s, customer_id: str) -> CustomerGroup | None:
    """The customer's group, its row locked (before the customer's: the one lock order of a member's check)."""
    group_id = s.execute(select(GroupMember.group_id).where(GroupMember.customer_id == customer_id)).scalar()
    if group_id is None:
        return None
    return s.execute(select(CustomerGroup).where(CustomerGroup.id == group_id).with_for_update()).scalar_one()


_LOCK_GROUP_ID_OF = (
    select(CustomerGroup.id)
    .where(
        CustomerGroup.id.in_(select(GroupMember.group_id).where(GroupMember.customer_id == bindparam("customer_id")))
    )
    .with_for_update()
)  # built once; FOR UPDATE locks customer_groups' row only


def lock_group_id_of(s, customer_id: str) -> str | None:
    """lock_group_of in one statement, the group's id only (its row the caller reads with the rest)."""
    return s.execute(_LOCK_GROUP_ID_OF, {"customer_id": customer_id}).scalar()


def members(s, group_id: str) -> list[str]:
    return list(
        s.execute(
            select(GroupMember.customer_id).where(GroupMember.group_id == group_id).order_by(GroupMember.customer_id)
        ).scalars()
    )


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
            total += to_minor(evaluate_loaded(policy, case.typed, as_of).body["credit"]["exposure"], policy.exponent)
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
        view = {
            "id": g.id,
            "name": g.name,
            "limit": minor_str(g.limit_minor, exp),
            "exposure": minor_str(self.others + own, exp),
            "exposure_after_order": minor_str(after, exp),
            "available": minor_str(max(0, g.limit_minor - self.others - own), exp),
        }
        figures = (
            f"集团 group {g.id} ({g.name}): exposure {minor_display(self.others + own, exp)} + order "
            f"{data['credit']['check']['order_amount']} = {minor_display(after, exp)}"
        )
        if after > g.limit_minor:
            why = {
                "rule": GROUP_LIMIT_RULE,
                "family": "credit.check",
                "message": f"{figures} > group limit {minor_display(g.limit_minor, exp)}",
            }
            return dict(check, outcome="reject", conditions=[]), [why, *reasons], view
        why = {
            "rule": GROUP_RULE,
            "family": "credit.check",
            "message": f"{figures} ≤ group limit {minor_display(g.limit_minor, exp)}",
        }
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
        rec = _record(
            ctx,
            s,
            f"group:{group_id}",
            "group_set",
            "set",
            key.name,
            request_id,
            {"before": before, "after": after, "reason": reason, "person": key.person or key.name},
        )
        if g is None:
            g = CustomerGroup(id=group_id)
            s.add(g)
        g.name, g.limit_minor, g.updated_at, g.updated_by, g.decision_id = name, limit, ctx.clock(), key.name, rec.id
        return {"group": group_dict(g, policy.exponent), "before": before, "decision_id": rec.id}


def _lock_groups(s, group_ids) -> dict[str, CustomerGroup]:
    """Lock groups' rows in id order (every writer's order; a member's check locks one): {id: group}."""
    ids = sorted({g for g in group_ids if g is not None})
    if not ids:
        return {}
    return {
        g.id: g
        for g in s.execute(
            select(CustomerGroup).where(CustomerGroup.id.in_(ids)).order_by(CustomerGroup.id).with_for_update()
        ).scalars()
    }


def set_member(ctx, customer_id: str, req: dict, key, request_id: str) -> dict:
    """Join a group (`group_id`) or leave it (`group_id` null). The group left and the group joined are
    locked (a hold placed on either meanwhile sees the membership before or after, never between); the
    record names the hold the customer inherits or leaves."""
    reason = _reason(req)
    group_id = req.get("group_id")
    with ctx.tx() as s:
        while True:
            seen = s.execute(select(GroupMember.group_id).where(GroupMember.customer_id == customer_id)).scalar()
            locked = _lock_groups(s, (seen, group_id))
            if group_id is not None and group_id not in locked:
                raise not_found("customer group", group_id)
            lock_customer(s, customer_id)
            m = s.get(GroupMember, customer_id)
            before = m.group_id if m else None
            if before == seen:  # else it moved before our locks: lock its group now
                break
        today = ctx.today()
        body = {
            "customer_id": customer_id,
            "before": before,
            "after": group_id,
            "reason": reason,
            "person": key.person or key.name,
        }
        alerts = []
        if before != group_id:
            left = s.get(GroupHold, before) if before is not None else None
            joined = s.get(GroupHold, group_id) if group_id is not None else None
            for field, gid, h, verb in (
                ("hold_left", before, left, "released from"),
                ("hold_inherited", group_id, joined, "inherits"),
            ):
                if h is None:
                    continue
                forced = in_force(h, today)
                body[field] = {"group_id": gid, **hold_dict(h), "in_force": forced}
                if forced:
                    alerts.append(
                        {
                            "severity": "critical",
                            "customer_id": customer_id,
                            "group_id": gid,
                            "message": f"customer {customer_id} {verb} the credit hold of 集团 group {gid}: {h.reason}",
                        }
                    )
        if alerts:
            body["alerts"] = alerts
        rec = _record(ctx, s, customer_id, "group_member", "joined" if group_id else "left", key.name, request_id, body)
        for a in alerts:
            log.warning("customer %s: %s (by %s)", customer_id, a["message"], key.name)
        if group_id is None and m is not None:
            s.delete(m)
        elif group_id is not None:
            if m is None:
                s.add(GroupMember(customer_id=customer_id, group_id=group_id))
            else:
                m.group_id = group_id
        return {
            "customer_id": customer_id,
            "group_id": group_id,
            "before": before,
            "decision_id": rec.id,
            "hold_inherited": body.get("hold_inherited"),
            "hold_left": body.get("hold_left"),
            "alerts": alerts,
        }


def get_group(ctx, group_id: str) -> dict:
    with ctx.read_tx() as s:
        g = s.get(CustomerGroup, group_id)
        if g is None:
            raise not_found("customer group", group_id)
        policy = ctx.registry.active(s)
        total = exposure(ctx, s, policy, group_id, ctx.today())
        h = s.get(GroupHold, group_id)
        return {
            **group_dict(g, policy.exponent),
            "members": members(s, group_id),
            "hold": hold_dict(h),
            "hold_in_force": h is not None and in_force(h, ctx.today()),
            "exposure": minor_str(total, policy.exponent),
            "available": minor_str(max(0, g.limit_minor - total), policy.exponent),
            "as_of": ctx.today().isoformat(),
        }


# ------------------------------------------------------------------------------------------ group holds
def hold_dict(h) -> dict | None:
    """A hold's row (a group's or a customer's) as the API and the trail show it."""
    if h is None:
        return None
    return {
        "reason": h.reason,
        "placed_on": h.placed_on.isoformat(),
        "until": h.until.isoformat() if h.until else None,
        "placed_by": h.placed_by,
        "decision_id": h.decision_id,
    }


def in_force(h, as_of: dt.date) -> bool:
    """Whether a hold (a group's or a customer's: placed_on, until) is in force on as_of."""
    return h.placed_on <= as_of and (h.until is None or as_of <= h.until)


def hold_in_force(s, group_id: str, as_of: dt.date) -> GroupHold | None:
    h = s.get(GroupHold, group_id)
    return h if h is not None and in_force(h, as_of) else None


def hold_context(group: CustomerGroup | None, hold: GroupHold | None) -> dict | None:
    """What a member's check keeps in its facts when its group's hold rejects it (decide's `context`)."""
    if group is None or hold is None:
        return None
    return {"group_hold": {"group_id": group.id, "name": group.name, **hold_dict(hold)}}


def held_check(
    check: dict, reasons: list[dict], group: CustomerGroup | None, hold: GroupHold | None
) -> tuple[dict, list[dict]]:
    """A member's credit check under its group's hold in force (unchanged without one)."""
    if group is None or hold is None:
        return check, reasons
    until = f" until {hold.until.isoformat()}" if hold.until else ""
    why = {
        "rule": GROUP_HOLD_RULE,
        "family": "credit.check",
        "message": f"停止赊销 credit hold of 集团 group {group.id} ({group.name}) since "
        f"{hold.placed_on.isoformat()}{until} by {hold.placed_by}: {hold.reason}",
    }
    return dict(check, outcome="reject", conditions=[]), [why, *reasons]


def _hold_change(
    ctx, s, g: CustomerGroup, kind: str, outcome: str, actor: str, request_id: str, before, after, reason: str
) -> tuple:
    """The group's record, then one in each member's chain (ids in order: the heads' one lock order)."""
    ids = members(s, g.id)
    verb = "lifted" if after is None else "placed"
    message = f"credit hold of 集团 group {g.id} ({g.name}) {verb}: {reason}"
    alert = {"severity": "critical", "group_id": g.id, "customer_ids": ids, "message": message}

    def alert_of(cid):
        return {"severity": "critical", "customer_id": cid, "group_id": g.id, "message": message}

    policy = ctx.registry.active(s)
    today, now = ctx.today(), ctx.clock()
    body = {"group_id": g.id, "before": before, "after": after, "reason": reason, "members": ids, "alerts": [alert]}
    rec = trail.append(
        s,
        subject=f"group:{g.id}",
        kind=kind,
        actor=actor,
        request_id=request_id,
        as_of=today,
        facts=canonical({"before": before, "reason": reason, "members": ids}),
        policy_version=policy.version,
        result=canonical(body),
        outcome=outcome,
        created_at=now,
    )
    # the members' records in one batch: their heads locked in id order (as the sweep locks them)
    heads = trail.lock_heads(s, ids, now)
    rows = trail.chain(
        [
            dict(
                subject=cid,
                kind=kind,
                actor=actor,
                request_id=request_id,
                as_of=today,
                facts=canonical({"group_id": g.id, "before": before, "reason": reason}),
                policy_version=policy.version,
                outcome=outcome,
                created_at=now,
                result=canonical(
                    {
                        "customer_id": cid,
                        "group_id": g.id,
                        "before": before,
                        "after": after,
                        "reason": reason,
                        "group_decision_id": rec.id,
                        "alerts": [alert_of(cid)],
                    }
                ),
            )
            for cid in ids
        ],
        heads,
    )
    trail.insert_chained(s, rows)
    member_records = {row["subject"]: row["id"] for row in rows}
    log.warning("group %s (%d members): %s (by %s)", g.id, len(ids), alert["message"], actor)
    return rec, member_records, alert


def _locked_group(s, group_id: str) -> CustomerGroup:
    g = s.execute(select(CustomerGroup).where(CustomerGroup.id == group_id).with_for_update()).scalar_one_or_none()
    if g is None:
        raise not_found("customer group", group_id)
    return g


def place_hold(ctx, group_id: str, req: dict, actor: str, request_id: str) -> dict:
    reason = _reason(req)
    today = ctx.today()
    until = req.get("until")
    if until is not None and until < today:
        raise invalid({"until": [f"the last day of the hold may not be before today ({today.isoformat()})"]})
    with ctx.tx() as s:
        g = _locked_group(s, group_id)  # members' checks and joins wait on it
        h = s.get(GroupHold, group_id)
        before = hold_dict(h)
        after = {
            "reason": reason,
            "placed_on": today.isoformat(),
            "until": until.isoformat() if until else None,
            "placed_by": actor,
        }
        rec, member_records, alert = _hold_change(
            ctx,
            s,
            g,
            kind="group_hold_set",
            outcome="on_hold",
            actor=actor,
            request_id=request_id,
            before=before,
            after=after,
            reason=reason,
        )
        if h is None:
            h = GroupHold(group_id=group_id)
            s.add(h)
        h.reason, h.placed_on, h.until, h.placed_by = reason, today, until, actor
        h.placed_at, h.decision_id = ctx.clock(), rec.id
        return {
            "group_id": group_id,
            "hold": hold_dict(h),
            "before": before,
            "decision_id": rec.id,
            "member_decisions": member_records,
            "alerts": [alert],
        }


def lift_hold(ctx, group_id: str, req: dict, actor: str, request_id: str) -> dict:
    reason = _reason(req)
    with ctx.tx() as s:
        g = _locked_group(s, group_id)
        h = s.get(GroupHold, group_id)
        if h is None:
            raise conflict(f"customer group '{group_id}' is not on credit hold", "E_NOT_ON_HOLD")
        before = hold_dict(h)
        rec, member_records, alert = _hold_change(
            ctx,
            s,
            g,
            kind="group_hold_lift",
            outcome="lifted",
            actor=actor,
            request_id=request_id,
            before=before,
            after=None,
            reason=reason,
        )
        s.delete(h)
        return {
            "group_id": group_id,
            "hold": None,
            "before": before,
            "decision_id": rec.id,
            "member_decisions": member_records,
            "alerts": [alert],
        }


def get_hold(ctx, group_id: str) -> dict:
    with ctx.read_tx() as s:
        if s.get(CustomerGroup, group_id) is None:
            raise not_found("customer group", group_id)
        h = s.get(GroupHold, group_id)
        return {
            "group_id": group_id,
            "hold": hold_dict(h),
            "in_force": h is not None and in_force(h, ctx.today()),
            "members": members(s, group_id),
        }


def member_hold(s, customer_id: str, as_of: dt.date) -> dict | None:
    """The hold a customer inherits from its group, if its group has one: {group_id, name, ..., in_force}."""
    row = s.execute(
        select(CustomerGroup, GroupHold)
        .join(GroupHold, GroupHold.group_id == CustomerGroup.id)
        .join(GroupMember, GroupMember.group_id == CustomerGroup.id)
        .where(GroupMember.customer_id == customer_id)
    ).first()
    if row is None:
        return None
    g, h = row
    return {"group_id": g.id, "name": g.name, **hold_dict(h), "in_force": in_force(h, as_of)}
