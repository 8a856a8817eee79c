"""The outbox worker (`creditctl deliver`, the scheduler's outbox-delivery job): sends the automated actions
the sweep queued, each as its document, through the configured backend, and records every attempt.

A delivery row per action (api.store.tables.Delivery): queued → sending → sent, or failed (retried at
next_attempt_at by the retry policy) → … → dead after the limit or at once for an error that can never
succeed. Claiming is a conditional UPDATE (the row still claimable as read), so of two workers one gets each
message; a worker killed mid-send leaves its row `sending` until the lease lapses, and the next worker sends
it again with the same idempotency key (at least once, duplicates recognisable). Sent and dead messages are
records in the customer's trail: channel, recipient masked, document hash. A row without an action is a
monthly statement (api/jobs/statements.py queued it), rendered here from its month's ledger. A dead letter
requeued (api/service/deliveries.py) gets the whole retry budget again. docs/delivery.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import pathlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import and_, func, or_, select, update

from engine.decision import canonical_json

from ..delivery import (
    ChannelRouter,
    DeliveryConfigError,
    DeliveryError,
    Message,
    RetryPolicy,
    idempotency_key,
    notifier_from_config,
)
from ..documents.context import Contact as DocumentContact
from ..documents.errors import DocumentError
from ..documents.render import default_folder
from ..errors import DomainError
from ..service.documents import render_action
from ..store import trail
from ..store.database import insert_ignoring_duplicates
from ..store.tables import Action, Contact, Delivery
from .statements import render_statement
from .sweep import worker_id

log = logging.getLogger("creditctl.outbox")
LEASE_SECONDS = 300  # longer than any backend's timeout: a live worker finishes its send well within it
BATCH = 100
TRAIL_KIND = "delivery"
# the contact field a backend addresses; the others by channel (a letter: the postal address)
BACKEND_FIELD = {"smtp": "email", "sms": "mobile"}
CHANNEL_FIELD = {"email": "email", "sms": "mobile", "letter": "address", "lawyer": "address"}
FIELD_NAMES = {"email": "an e-mail address", "mobile": "a mobile number", "address": "a postal address"}
# document problems no retry fixes (the action sends nothing, nothing is left to claim, a bad locale)
FINAL_DOCUMENT_CODES = frozenset({"E_DOCUMENT_KIND", "E_DOCUMENT_NOTHING_DUE", "E_DOCUMENT_INPUT", "E_DOCUMENT_LOCALE"})


@dataclass(frozen=True)
class OutboxSettings:
    notifier: ChannelRouter
    documents: Mapping  # DocumentSettings.from_mapping input (creditor, law firm, …)
    templates: str  # the template folder
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    leave_queued: bool = True  # the sweep leaves automated actions queued for this worker
    lease_seconds: float = LEASE_SECONDS

    @classmethod
    def from_config(
        cls,
        delivery: Mapping | None,
        documents: Mapping | None,
        policy_file: str,
        environ: Mapping[str, str] | None = None,
    ) -> OutboxSettings:
        """`delivery`: notifier_from_config's mapping plus `retry` (RetryPolicy's fields) and
        `lease_seconds`; None: the log backend, and the sweep marks automated actions sent itself."""
        environ = os.environ if environ is None else environ
        cfg = dict(delivery or {})
        retry = cfg.pop("retry", None) or {}
        try:
            policy = RetryPolicy(**retry)
        except (TypeError, ValueError) as exc:
            raise DomainError("E_DELIVERY_CONFIG", f"delivery.retry: {exc}") from None
        templates = cfg.pop("templates", None) or str(default_folder(policy_file))
        docs = documents or {"creditor": {"name": environ.get("CREDITCTL_CREDITOR_NAME", "creditctl")}}
        lease = cfg.pop("lease_seconds", LEASE_SECONDS)
        try:
            notifier = notifier_from_config(cfg, environ)
        except DeliveryConfigError as exc:
            raise DomainError("E_DELIVERY_CONFIG", str(exc)) from None
        return cls(
            notifier=notifier,
            documents=docs,
            templates=templates,
            retry=policy,
            leave_queued=delivery is not None,
            lease_seconds=float(lease),
        )


def load_config_file(path: str) -> dict:
    """A YAML (or JSON) file with `delivery:` and `documents:` sections (CREDITCTL_DELIVERY_CONFIG)."""
    import yaml

    try:
        data = yaml.safe_load(pathlib.Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DomainError("E_DELIVERY_CONFIG", f"{path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("delivery", {}), dict):
        raise DomainError("E_DELIVERY_CONFIG", f"{path}: needs a 'delivery:' mapping")
    return data


# ---------------------------------------------------------------------------------------- personal data
def mask(value: str, what: str) -> str:
    """What the outbox and the trail show of an address: enough to recognise it, not to use it."""
    if what == "email" and "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if what == "mobile":
        digits = value.replace(" ", "").replace("-", "")
        return digits[:3] + "*" * max(len(digits) - 7, 1) + digits[-4:] if len(digits) > 7 else "***"
    return value[:6] + "…"


def pick_contact(contacts: list[Contact], channel: str, what: str) -> Contact | None:
    """The contact to address: having `what` (e-mail, mobile, address), preferring the channel, then primary."""
    usable = [c for c in contacts if getattr(c, what)]
    usable.sort(key=lambda c: (c.preferred_channel != channel, not c.is_primary, c.id))
    return usable[0] if usable else None


# ---------------------------------------------------------------------------------------- the queue
def enqueue(service, limit: int = 5000) -> int:
    """A delivery row (queued) for each queued action that has none yet; returns how many were added."""
    with service.read_tx() as s:
        actions = (
            s.execute(
                select(Action)
                .outerjoin(Delivery, Delivery.action_id == Action.id)
                .where(Action.status == "queued", Delivery.id.is_(None))
                .order_by(Action.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
    if not actions:
        return 0
    now = service.clock()
    rows = [
        {
            "action_id": a.id,
            "customer_id": a.customer_id,
            "channel": a.channel,
            "idempotency_key": idempotency_key(a),
            "status": "queued",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for a in actions
    ]
    ids = [a.id for a in actions]
    with service.tx() as s:
        # a concurrent worker may have enqueued some meanwhile: theirs stay, and are not counted here
        before = s.execute(select(func.count()).select_from(Delivery).where(Delivery.action_id.in_(ids))).scalar_one()
        s.connection().execute(insert_ignoring_duplicates(s, Delivery.__table__), rows)
    return len(rows) - before


def _claimable(now: dt.datetime, lease_seconds: float):
    stale = now - dt.timedelta(seconds=lease_seconds)
    due = or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now)
    return or_(
        and_(Delivery.status.in_(("queued", "failed")), due),
        and_(Delivery.status == "sending", Delivery.claimed_at < stale),
    )


def claim(service, worker: str, limit: int, lease_seconds: float = LEASE_SECONDS) -> list[int]:
    """Claim up to `limit` due messages for `worker`: each by an UPDATE that only matches while the row is
    still claimable, so a row another worker took meanwhile is simply not ours."""
    now = service.clock()
    with service.read_tx() as s:
        ids = (
            s.execute(
                select(Delivery.id)
                .where(_claimable(now, lease_seconds))
                .order_by(Delivery.next_attempt_at.is_not(None), Delivery.next_attempt_at, Delivery.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
    claimed = []
    for delivery_id in ids:
        with service.tx() as s:
            got = s.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, _claimable(now, lease_seconds))
                .values(status="sending", worker=worker, claimed_at=now, attempts=Delivery.attempts + 1, updated_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
        if got == 1:
            claimed.append(delivery_id)
    return claimed


# ---------------------------------------------------------------------------------------- one message
class _Undeliverable(Exception):
    """Before any backend was asked: no contact, or the document could not be made."""

    def __init__(self, code: str, message: str, retryable: bool):
        super().__init__(message)
        self.code, self.message, self.retryable = code, message, retryable


def _prepare(service, settings: OutboxSettings, d: Delivery) -> tuple[Message, str, str]:
    """(message, masked recipient, document hash) for the delivery, or _Undeliverable."""
    with service.read_tx() as s:
        action = s.get(Action, d.action_id) if d.action_id is not None else None
        contacts = (
            s.execute(select(Contact).where(Contact.customer_id == d.customer_id).order_by(Contact.id)).scalars().all()
        )
        currency = service.registry.active(s).currency
    notifier = settings.notifier.notifier_for(d.channel)
    what = BACKEND_FIELD.get(notifier.name) or CHANNEL_FIELD.get(d.channel, "email")
    contact = pick_contact(contacts, d.channel, what)
    if contact is None:
        raise _Undeliverable(
            "E_DELIVERY_NO_CONTACT",
            f"customer {d.customer_id} has no contact with "
            f"{FIELD_NAMES[what]} for channel {d.channel} (add one: PUT /v1/customers/"
            f"{d.customer_id}/contacts); retried until the limit",
            retryable=True,
        )
    address = getattr(contact, what)
    to = DocumentContact(person=contact.name, email=contact.email, phone=contact.mobile, address=contact.address)
    try:
        if action is None:  # a monthly statement: rendered from the ledger of its month
            doc = render_statement(
                service,
                d.customer_id,
                d.statement_period,
                settings.documents,
                settings.templates,
                contact.language,
                to,
                pdf=d.channel != "sms",
            )
            message = Message.for_statement(d.customer_id, d.statement_period, doc, to=[address], channel=d.channel)
        else:
            doc = render_action(
                service,
                d.action_id,
                settings.documents,
                settings.templates,
                contact.language,
                pdf=d.channel != "sms",
                contact=to,
            )
            message = Message.for_action(action, doc, to=[address], currency=currency, channel=d.channel)
    except DocumentError as exc:
        raise _Undeliverable(exc.code, exc.message, retryable=exc.code not in FINAL_DOCUMENT_CODES) from None
    except ValueError as exc:  # e.g. an sms channel for a document without sms text
        raise _Undeliverable("E_DOCUMENT_KIND", str(exc), retryable=False) from None
    digest = hashlib.sha256(
        canonical_json(
            {
                "subject": message.subject,
                "text": message.text,
                "html": message.html,
                "attachments": [[a.filename, hashlib.sha256(a.data).hexdigest()] for a in message.attachments],
            }
        ).encode("utf-8")
    ).hexdigest()
    return message, mask(address, what), digest


def _trail(s, service, d: Delivery, outcome: str, body: dict, actor: str) -> str:
    policy = service.registry.active(s)
    now = service.clock()
    facts = {"action_id": d.action_id, "channel": d.channel}
    if d.statement_period:
        facts["statement_period"] = d.statement_period
    rec = trail.append(
        s,
        subject=d.customer_id,
        kind=TRAIL_KIND,
        actor=actor,
        request_id=d.idempotency_key,
        as_of=now.date(),
        facts=canonical_json(facts),
        policy_version=policy.version,
        result=canonical_json(body),
        outcome=outcome,
        created_at=now,
    )
    return rec.id


def deliver_one(service, settings: OutboxSettings, delivery_id: int, worker: str) -> str:
    """Send one claimed message and record the outcome: sent, failed (retried later) or dead."""
    with service.read_tx() as s:
        d = s.get(Delivery, delivery_id)
        action_status = (
            "queued"
            if d.action_id is None
            else s.execute(select(Action.status).where(Action.id == d.action_id)).scalar_one()
        )
    if action_status != "queued":  # settled, cancelled or sent meanwhile: nothing to send any more
        return _finish(service, d, worker, "dead", error=("E_DELIVERY_OBSOLETE", f"the action is {action_status}"))
    recipient = digest = backend = None
    try:
        message, recipient, digest = _prepare(service, settings, d)
        backend = settings.notifier.notifier_for(d.channel).name
        result = settings.notifier.deliver(message)
    except _Undeliverable as exc:
        error, retryable, retry_after = (exc.code, exc.message), exc.retryable, None
    except DeliveryError as exc:
        error, retryable, retry_after = (exc.code, exc.message), exc.retryable, exc.retry_after
    else:
        return _finish(
            service,
            d,
            worker,
            "sent",
            recipient=recipient,
            digest=digest,
            backend=result.backend,
            reference=result.reference,
        )
    failure = DeliveryError(
        error[1], retryable=retryable, backend=backend or "-", code=error[0], retry_after=retry_after
    )
    # a requeued dead letter gets the whole retry budget again; `attempts` keeps counting every try
    decision = settings.retry.decide(
        d.attempts - (d.attempt_base or 0), failure, key=d.idempotency_key, now=service.clock()
    )
    if decision.retry:
        return _finish(
            service,
            d,
            worker,
            "failed",
            error=error,
            next_at=decision.next_attempt_at,
            recipient=recipient,
            digest=digest,
            backend=backend,
        )
    return _finish(
        service,
        d,
        worker,
        "dead",
        error=(error[0], decision.reason),
        recipient=recipient,
        digest=digest,
        backend=backend,
    )


def _finish(
    service,
    d: Delivery,
    worker: str,
    status: str,
    *,
    error=None,
    next_at=None,
    recipient=None,
    digest=None,
    backend=None,
    reference=None,
) -> str:
    now = service.clock()
    values = {"status": status, "updated_at": now, "next_attempt_at": next_at, "claimed_at": None}
    for key, value in (("recipient", recipient), ("document_hash", digest), ("backend", backend)):
        if value is not None:
            values[key] = value
    if error is not None:
        values["last_error_code"], values["last_error"] = error[0], error[1][:2000]
    if status == "sent":
        values.update(sent_at=now, provider_message_id=(reference or "")[:256] or None)
    with service.tx() as s:
        # ours only while we hold the claim: a worker that lost its lease records nothing over the new holder
        got = s.execute(
            update(Delivery)
            .where(Delivery.id == d.id, Delivery.status == "sending", Delivery.worker == worker)
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
        if got != 1:
            log.warning(
                "outbox: delivery %s was taken over by another worker; its outcome (%s) not recorded", d.id, status
            )
            return "lost"
        if status in ("sent", "dead"):
            body = {
                "action_id": d.action_id,
                "channel": d.channel,
                "status": status,
                "attempts": d.attempts,
                "recipient": recipient or None,
                "document_sha256": digest,
                "backend": backend,
                "provider_message_id": reference,
                "idempotency_key": d.idempotency_key,
                "error": None if error is None else {"code": error[0], "message": values["last_error"]},
            }
            if d.statement_period:
                body["statement_period"] = d.statement_period
            decision_id = _trail(s, service, d, status, body, f"outbox:{worker.split(':')[0]}")
            s.execute(
                update(Delivery)
                .where(Delivery.id == d.id)
                .values(decision_id=decision_id)
                .execution_options(synchronize_session=False)
            )
            action = (
                {"status": "sent", "delivered_at": now}
                if status == "sent"
                else {"status": "failed", "outcome": "dead_letter"}
            )
            if d.action_id is not None:
                s.execute(
                    update(Action)
                    .where(Action.id == d.action_id, Action.status == "queued")
                    .values(**action)
                    .execution_options(synchronize_session=False)
                )
    level = logging.INFO if status == "sent" else logging.WARNING
    log.log(
        level,
        "outbox: delivery %s (%s, %s) %s after %d attempt(s)%s",
        d.id,
        f"action {d.action_id}" if d.action_id is not None else f"statement {d.statement_period}",
        d.channel,
        status,
        d.attempts,
        f": {error[0]}: {error[1]}" if error else "",
    )
    return status


# ---------------------------------------------------------------------------------------- runs
def run_once(service, settings: OutboxSettings, *, worker: str | None = None, limit: int | None = None) -> dict:
    """Enqueue what the sweep queued, then send every due message (up to `limit`): counts by outcome."""
    worker = worker or worker_id()
    counts = {"enqueued": enqueue(service), "sent": 0, "failed": 0, "dead": 0, "lost": 0}
    left = limit
    while left is None or left > 0:
        ids = claim(service, worker, BATCH if left is None else min(BATCH, left), settings.lease_seconds)
        if not ids:
            break
        for delivery_id in ids:
            counts[deliver_one(service, settings, delivery_id, worker)] += 1
        if left is not None:
            left -= len(ids)
    return counts


def run_loop(service, settings: OutboxSettings, *, interval: float = 30.0, stop=None, on_round=None) -> dict:
    """run_once every `interval` seconds until `stop()` is true (or KeyboardInterrupt): the totals."""
    worker = worker_id()
    totals = {"enqueued": 0, "sent": 0, "failed": 0, "dead": 0, "lost": 0}
    try:
        while stop is None or not stop():
            counts = run_once(service, settings, worker=worker)
            for k, v in counts.items():
                totals[k] += v
            if on_round:
                on_round(counts)
            if stop is not None and stop():
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    return totals
