"""May this order go on credit? The check, its reservation against the limit, and the release."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from ..errors import DomainError, conflict, invalid, not_found
from ..store.database import collect_writes, insert_row, send_writes, write
from ..store.ledger import OrderReservation, OrderRow, cases_from_rows, check_inputs, read_check
from ..store.tables import Customer, GroupMember, Reservation
from . import credit_file, groups, referrals
from .decide import evaluate, lock_customer, record
from .validation import canonical, money_minor

log = logging.getLogger("creditctl.credit_checks")
RESERVATION_DAYS = 30          # a reservation's longest life when the policy's credit.reservation_days is not set


def reservation_days(policy) -> int:
    return policy.content["credit"].get("reservation_days", RESERVATION_DAYS)
_NEW_RESERVATION = insert_row(Reservation.__table__)        # Core: no ORM flush


def credit_check(ctx, req: dict, actor, request_id, role=None, locale="en") -> dict:
    """`role` None: a trusted caller (no ownership or what-if checks). A result with "_replayed" is the
    first answer to the same request again (the adapter pops it)."""
    try:
        return _credit_check(ctx, req, actor, request_id, role, locale)
    except IntegrityError:
        # a new order reserved for two customers at once (PostgreSQL: their locks differ); the loser sees
        # the winner's reservation only now
        with ctx.tx() as s:
            existing = s.get(Reservation, req["order_id"])
            if existing is not None and existing.customer_id != req["customer_id"]:
                raise conflict(f"order '{req['order_id']}' belongs to another customer") from None
        raise


SIMULATING_ROLES = {"controller", "admin"}        # may ask for a what-if as_of (never reserved)


def request_hash(req: dict) -> str:
    """The identity of a credit-check request: a retry with the same order id and this hash gets the
    first decision back."""
    return hashlib.sha256(canonical({k: req.get(k) for k in _HASHED}).encode("utf-8")).hexdigest()


_HASHED = ("customer_id", "order_id", "amount", "currency", "reserve", "as_of", "expires_on")


def _may_write(reservation: Reservation | OrderReservation, actor, role) -> bool:
    """A held reservation is written (re-checked, released) by its owner, a controller or an admin."""
    return role != "sales" or reservation.owner == actor


def _closed(r: Reservation | OrderReservation, today: dt.date) -> str | None:
    """held → invoiced / released / expired, one way: the state a reservation has left `held` for."""
    if r.status not in ("held", "provisional"):      # provisional: held while its referral is open
        return r.status
    return "expired" if r.expires_on < today else None


def _view(rec, c_id: str, order_id: str, data: dict, reserved: bool, as_of: dt.date, *, check=None,
          reasons=None) -> dict:
    """The answer to a credit check; `check` and `reasons` as a credit hold changed them (credit_file.held_check)."""
    check = check or data["credit"]["check"]
    credit = data["credit"]
    return {"decision_id": rec.id, "policy_version": rec.policy_version, "customer_id": c_id,
            "order_id": order_id, "outcome": check["outcome"], "conditions": check["conditions"],
            "reasons": reasons if reasons is not None else [r for r in data["reasons"] if r["family"] == "credit.check"],
            "limit": credit["limit"], "exposure": credit["exposure"], "available": credit["available"],
            "exposure_after_order": check["exposure_after_order"], "reserved": reserved,
            "as_of": as_of.isoformat()}


def _credit_check(ctx, req: dict, actor, request_id, role=None, locale="en") -> dict:
    today = ctx.today()
    what_if = req.get("as_of") is not None and req["as_of"] != today
    if what_if and role is not None and role not in SIMULATING_ROLES:
        raise DomainError("E_FORBIDDEN", "only controller and admin keys may check as of another day (a what-if)",
                          {"as_of": [f"must be today ({today.isoformat()}) or left out for this key"]})
    if what_if and req.get("reserve"):
        raise invalid({"as_of": [f"a reserving check is decided as of today ({today.isoformat()}); "
                                 "a what-if as_of is never reserved"]})
    as_of = req["as_of"] if what_if else today
    args = (ctx, req, actor, role, today, what_if, as_of)
    if not optimistic(ctx):
        # PostgreSQL: the group's and the customer's row locks serialise this customer's (and group's) checks
        # only, so the read and the evaluation happen under them, in one transaction
        for attempt in range(_MOVES):
            try:
                with ctx.tx() as s:
                    read = _read(s, *args, lock=True)
                    return read if isinstance(read, dict) else _write(ctx, s, read, request_id, locale)
            except _Moved:
                log.debug("credit check of %s: its group changed before its lock (attempt %d)",
                          req["customer_id"], attempt + 1)
        raise conflict(f"customer '{req['customer_id']}' kept changing groups during the check; check again")
    # SQLite: one writer at a time for the whole file. Read and evaluate in a read transaction (WAL: beside
    # the writer), then, under the write lock, read the same inputs again (one statement: read_check, the
    # customers' rows included) and write the decision only if they are what was evaluated; otherwise decide
    # again under the lock, from scratch
    with ctx.read_tx() as s:
        read = _read(s, *args)
    if isinstance(read, dict):
        return read
    for hook in AFTER_READ:
        hook(req)
    with ctx.tx() as s:
        if read_check(s, [read.c.id, *read.others], read.c.id, req["order_id"], read.as_of) != read.rows:
            log.debug("credit check of %s (order %s): its inputs changed since the read; decided under the lock",
                      read.c.id, req["order_id"])
            read = _read(s, *args)
            if isinstance(read, dict):
                return read
        # else every row is as read, read.c (the customer's row read outside the lock) among them
        return _write(ctx, s, read, request_id, locale)


AFTER_READ: list = []      # callables(req) run between a SQLite check's read and its write (tests interleave there)
_MOVES = 5                 # PostgreSQL: tries when the customer changes groups between its group's lock and its own


class _Moved(Exception):
    """PostgreSQL: the group locked is not the customer's group now (it joined or left one meanwhile)."""


def optimistic(ctx) -> bool:
    """Whether credit checks evaluate before taking the write lock (SQLite) or under row locks (PostgreSQL)."""
    return ctx.sessionmaker.kw["bind"].dialect.name == "sqlite"


# built once: a statement built per call costs more CPU than SQLite takes to run it
_GM, _GM2 = GroupMember, aliased(GroupMember)
# the customer and the other members of its group, by id (SQLite: no row locks, one statement)
_MEMBERS_OF_GROUP_OF = select(_GM.customer_id).where(_GM.group_id.in_(
    select(_GM2.group_id).where(_GM2.customer_id == bindparam("customer_id"))))
_CUSTOMER_AND_MEMBERS = (select(Customer)
                         .where(or_(Customer.id == bindparam("customer_id"), Customer.id.in_(_MEMBERS_OF_GROUP_OF)))
                         .order_by(Customer.id))
# PostgreSQL: the other members of the group locked, not locked themselves
_OTHER_MEMBERS = (select(Customer)
                  .where(Customer.id.in_(select(_GM.customer_id).where(_GM.group_id == bindparam("group_id"))),
                         Customer.id != bindparam("customer_id"))
                  .order_by(Customer.id))
_HOLD_AGAIN = (update(Reservation.__table__).where(Reservation.__table__.c.order_id == bindparam("b_order_id"))
               .values(amount_minor=bindparam("b_amount_minor"), status="held", expires_on=bindparam("b_expires_on"),
                       decision_id=bindparam("b_decision_id"), request_hash=bindparam("b_request_hash")))


class _Read:
    """A credit check read and evaluated: what its write needs, and `rows` (read_check's) to compare."""
    __slots__ = ("req", "actor", "as_of", "what_if", "today", "c", "policy", "days", "amount_minor", "existing",
                 "digest", "hold", "group", "group_hold", "group_test", "order", "others", "eval_policy", "case",
                 "decision", "rows", "head")

    def __init__(self, **values):
        for k, v in values.items():
            setattr(self, k, v)


def _read(s, ctx, req, actor, role, today, what_if, as_of, lock=False):
    """The check's reads, validations and evaluation; writes nothing. A dict: the first answer again.
    `lock` (PostgreSQL): the group's row, then the customer's, locked first; otherwise (SQLite, whose
    write lock is the file's) the customer's and its group's members' rows in one statement. The rest
    (hold, order, reservation, group, members, holds, policy state, chain head) comes with the ledgers in
    read_check's one statement."""
    expires = req.get("expires_on")
    cid = req["customer_id"]
    if lock:
        locked = groups.lock_group_id_of(s, cid)      # members of a group check one at a time
        c = lock_customer(s, cid)
        members = (s.execute(_OTHER_MEMBERS, {"group_id": locked, "customer_id": cid}).scalars().all()
                   if locked is not None else [])
    else:
        customers = s.execute(_CUSTOMER_AND_MEMBERS, {"customer_id": cid}).scalars().all()
        c = next((x for x in customers if x.id == cid), None)
        if c is None:
            raise not_found("customer", cid)
        members = [x for x in customers if x.id != cid]
    others = tuple(m.id for m in members)
    # the customer's ledger and the check's other inputs in one statement (the group's members' ledgers too)
    rows = read_check(s, [c.id, *others], c.id, req["order_id"], as_of)
    got = check_inputs(rows)
    group = got.group
    if lock and (group.id if group is not None else None) != locked:
        raise _Moved()
    if got.policy is not None:
        ctx.registry.known_state(s, *got.policy)
    policy = ctx.registry.active(s)
    days = reservation_days(policy)
    if req.get("reserve") and expires is not None and not today <= expires <= today + dt.timedelta(days=days):
        raise invalid({"expires_on": [f"must be between today ({today.isoformat()}) and "
                                      f"{(today + dt.timedelta(days=days)).isoformat()} "
                                      f"(at most {days} days: the policy's credit.reservation_days)"]})
    if req["currency"] != policy.currency:
        raise invalid({"currency": [f"'{req['currency']}' is not the policy's currency {policy.currency}"]})
    amount_minor = money_minor(req["amount"], policy.exponent, "amount")
    if amount_minor <= 0:
        raise invalid({"amount": ["must be positive"]})
    existing = got.reservation
    if existing is not None and existing.customer_id != c.id:
        raise conflict(f"order '{req['order_id']}' belongs to another customer")
    digest = request_hash(req)
    if req.get("reserve") and existing is not None and not _may_write(existing, actor, role):
        raise DomainError("E_FORBIDDEN", f"order '{req['order_id']}' is held by another sales key")
    order_row = got.order         # the retry's answer, then the referral
    first = None if what_if else _first_answer(order_row, digest, actor, today)
    if first is not None:          # a retry of the request that held or referred it (its answer was lost)
        return {**first, "_replayed": True}
    if req.get("reserve") and existing is not None:
        closed = _closed(existing, today)
        if closed:
            raise conflict(f"order '{req['order_id']}' was {closed}: a reservation is never held again; "
                           "check a new order id", "E_RESERVATION_CLOSED")
    referrals.refuse_open(req["order_id"], order_row)          # refused while the order's referral is open
    hold = got.hold if got.hold is not None and groups.in_force(got.hold, as_of) else None   # 停止赊销: rejects
    group_hold = (got.group_hold if group is not None and got.group_hold is not None
                  and groups.in_force(got.group_hold, as_of) else None)      # inherited
    order = {"amount": str(req["amount"]), "order_id": req["order_id"]}
    eval_policy = ctx.registry.active(s, as_of)
    case = cases_from_rows([c], rows, eval_policy.exponent, as_of)[c.id]
    group_test = None
    if group is not None:
        mine = cases_from_rows(members, rows, policy.exponent, as_of).values()
        group_test = groups.GroupTest(ctx, s, policy, group, c.id, as_of,
                                      others=groups.exposure_of(policy, mine, as_of))
    eval_policy, plain, decision = evaluate(ctx, s, c, as_of, order=order, case=case)
    return _Read(req=req, actor=actor, as_of=as_of, what_if=what_if, today=today, c=c, policy=policy, days=days,
                 amount_minor=amount_minor, existing=existing, digest=digest, hold=hold, group=group,
                 group_hold=group_hold, group_test=group_test, order=order, others=others, eval_policy=eval_policy,
                 case=plain, decision=decision, rows=rows, head=got.head)


def _write(ctx, s, r: _Read, request_id, locale: str) -> dict:
    """The check's decision in the trail, its reservation and the order's row; the answer. Core statements
    only: nothing for the session to flush."""
    req, c, today, hold, group_test, group_hold = r.req, r.c, r.today, r.hold, r.group_test, r.group_hold
    collect_writes(s)       # PostgreSQL: last_*, the reservation, the referral and the order's row in one statement

    def outcome_of(data):          # a hold, then the group's limit, over the policy's outcome
        if hold or group_hold or (group_test is not None and group_test.exceeded(data)):
            return "reject"
        return data["credit"]["check"]["outcome"]
    rec, decision = record(ctx, s, c, r.as_of, r.eval_policy, r.case, r.decision,
                 kind="credit_check_what_if" if r.what_if else "credit_check", actor=r.actor, request_id=request_id,
                 order=r.order, persist_actions=False, outcome_of=outcome_of if hold or group_test else None,
                 remember=not r.what_if, context=groups.hold_context(r.group, group_hold), head=r.head)
    # only the credit check's reasons are rendered (in the caller's locale); the rest is figures
    check, reasons = decision.body["credit"]["check"], decision.reasons(locale, family="credit.check")
    group_view = None
    if group_test is not None:
        check, reasons, group_view = group_test.apply(decision.body, check, reasons)
        if group_hold is not None:
            group_view["hold"] = groups.hold_dict(group_hold)
    check, reasons = groups.held_check(check, reasons, r.group, group_hold)
    check, reasons = credit_file.held_check(check, reasons, hold)
    reserved = False
    existing = r.existing
    if req.get("reserve") and check["outcome"] in ("approve", "approve_with_conditions"):
        expires = req.get("expires_on") or (today + dt.timedelta(days=r.days))
        if existing is None:
            write(s, _NEW_RESERVATION, dict(
                order_id=req["order_id"], customer_id=c.id, amount_minor=r.amount_minor, status="held",
                expires_on=expires, decision_id=rec.id, created_at=ctx.clock(), owner=r.actor,
                request_hash=r.digest))
        else:
            write(s, _HOLD_AGAIN, dict(
                b_order_id=req["order_id"], b_amount_minor=r.amount_minor, b_expires_on=expires,
                b_decision_id=rec.id, b_request_hash=r.digest))
        reserved = True
    view = _view(rec, c.id, req["order_id"], decision.body, reserved, r.as_of, check=check, reasons=reasons)
    answer = None

    def answer_of(referral):
        nonlocal answer
        answer = {**view, **({"referral": referral} if referral else {}),
                  **({"group": group_view} if group_view else {})}
        # a retry today (same key, order id and body) gets this answer back, whatever it decided
        return r.digest, json.dumps(answer, ensure_ascii=False, sort_keys=True)
    if r.what_if:
        answer_of(None)
    else:
        referrals.after_check(
            ctx, s, c, order_id=req["order_id"], amount_minor=r.amount_minor, as_of=r.as_of,
            reserve=req.get("reserve"), rec=rec, decision=decision, actor=r.actor, outcome=check["outcome"],
            request_id=request_id, existing_reservation=existing, answer_of=answer_of, policy=r.policy)
    send_writes(s)
    return answer


def _first_answer(row: OrderRow | None, digest: str, actor, today: dt.date) -> dict | None:
    """The answer this actor's request with this hash got today, while the order's last record is still
    that check's (a referral step or another check since, or another day: decided anew). So a client whose
    answer was lost (a worker killed mid-request) retries safely, like an event's event_id. Stored whole:
    the group's test and the referral are in the answer, not in the policy's result."""
    if row is None or row.answer is None or row.request_hash != digest or row.requested_by != actor:
        return None
    answer = json.loads(row.answer)
    return answer if answer["decision_id"] == row.decision_id and answer["as_of"] == today.isoformat() else None


def release_reservation(ctx, order_id: str, actor=None, role=None) -> dict:
    with ctx.tx() as s:
        r = s.get(Reservation, order_id)
        if r is None:
            raise not_found("reservation for order", order_id)
        lock_customer(s, r.customer_id)
        if not _may_write(r, actor, role):
            raise DomainError("E_FORBIDDEN", f"order '{order_id}' is held by another sales key")
        if r.status == "held":
            r.status = "released"
        return {"order_id": r.order_id, "status": r.status}
