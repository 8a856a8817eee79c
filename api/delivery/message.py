"""What a notifier sends: one action's document, addressed, as an immutable record."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass

from api.documents.money import currency_exponent, minor_str


@dataclass(frozen=True)
class ActionRef:
    """The action a message carries out (the fields of an `actions` row a receiver needs)."""

    id: int | None
    customer_id: str
    invoice_id: str
    type: str
    channel: str
    stage: int
    due_on: dt.date
    amount_minor: int
    currency: str

    @classmethod
    def of(cls, action, currency: str) -> ActionRef:
        """From an `actions` row (api.db.Action) or anything with its fields."""
        return cls(
            id=getattr(action, "id", None),
            customer_id=action.customer_id,
            invoice_id=action.invoice_id,
            type=action.type,
            channel=action.channel,
            stage=action.stage,
            due_on=action.due_on,
            amount_minor=action.amount_minor,
            currency=currency,
        )

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "invoice_id": self.invoice_id,
            "type": self.type,
            "channel": self.channel,
            "stage": self.stage,
            "due_on": self.due_on.isoformat(),
            "amount": minor_str(self.amount_minor, currency_exponent(self.currency)),
            "currency": self.currency,
        }


def idempotency_key(action) -> str:
    """Stable per action, across retries, processes and database restores: a hash of the key the
    actions table is unique on (customer, invoice, type, stage, due date), not of its row id."""
    key = "\x1f".join(
        [action.customer_id, action.invoice_id, action.type, str(action.stage), action.due_on.isoformat()]
    )
    # 128 bits: unique enough, and short enough to keep the Message-ID built from it on one header line
    return "cc-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def statement_key(customer_id: str, period: str) -> str:
    """Stable per customer and month ('YYYY-MM'): the statement's message on every attempt and requeue."""
    key = "\x1f".join(["statement", customer_id, period])
    return "cc-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Attachment:
    filename: str  # may be Chinese: encoded per RFC 2231 in mail, as is in JSON
    content_type: str  # e.g. application/pdf
    data: bytes

    def to_json(self) -> dict:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "data_base64": base64.b64encode(self.data).decode("ascii"),
        }


@dataclass(frozen=True)
class Message:
    idempotency_key: str
    channel: str  # email, sms, letter, lawyer: which backend the router picks
    to: tuple[str, ...]  # e-mail addresses, or phone numbers for sms
    subject: str
    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    action: ActionRef | None = None
    document: tuple[tuple[str, str], ...] = ()  # kind, locale, reference … (immutable pairs)

    @classmethod
    def for_action(
        cls, action, document, *, to, currency: str, channel: str | None = None, attach_pdf: bool = True
    ) -> Message:
        """The message for `action` carrying a rendered document (api.documents.RenderedDocument).
        An sms channel sends the document's short sms text alone."""
        channel = channel or action.channel
        sms = channel == "sms"
        if sms and document.sms is None:
            raise ValueError(f"a {document.kind} has no sms text")
        attachments = ()
        if attach_pdf and not sms and document.pdf is not None:
            attachments = (Attachment(document.pdf_filename, "application/pdf", document.pdf),)
        return cls(
            idempotency_key=idempotency_key(action),
            channel=channel,
            to=tuple(to),
            subject=document.subject,
            text=document.sms if sms else document.text,
            html=None if sms else document.html,
            attachments=attachments,
            action=ActionRef.of(action, currency),
            document=(("kind", document.kind), ("locale", document.locale), ("reference", document.reference)),
        )

    @classmethod
    def for_statement(cls, customer_id: str, period: str, document, *, to, channel: str = "email") -> Message:
        """A monthly statement of account (no action): the document's text and HTML, its PDF attached."""
        attachments = ()
        if document.pdf is not None:
            attachments = (Attachment(document.pdf_filename, "application/pdf", document.pdf),)
        return cls(
            idempotency_key=statement_key(customer_id, period),
            channel=channel,
            to=tuple(to),
            subject=document.subject,
            text=document.text,
            html=document.html,
            attachments=attachments,
            document=(
                ("kind", document.kind),
                ("locale", document.locale),
                ("reference", document.reference),
                ("customer_id", customer_id),
                ("period", period),
            ),
        )

    def to_json(self) -> dict:
        """The webhook body: the action and the whole document."""
        return {
            "idempotency_key": self.idempotency_key,
            "channel": self.channel,
            "to": list(self.to),
            "action": self.action.to_json() if self.action else None,
            "document": {
                **dict(self.document),
                "subject": self.subject,
                "text": self.text,
                "html": self.html,
                "attachments": [a.to_json() for a in self.attachments],
            },
        }
