"""Delivery of customer documents: one interface, `deliver(message) -> DeliveryResult` raising
DeliveryError(retryable), and backends chosen by configuration (log, smtp, webhook, sms), plus the
retry policy a future outbox worker applies. Setup and keys: docs/documents.md."""

from .base import DeliveryError, DeliveryResult, Notifier
from .config import ChannelRouter, DeliveryConfigError, notifier_from_config
from .log import LogNotifier
from .message import ActionRef, Attachment, Message, idempotency_key, statement_key
from .retry import DeadLetter, RetryDecision, RetryPolicy, deliver_with_retry
from .smtp import SmtpNotifier
from .webhook import SIGNATURE_HEADER, SmsNotifier, WebhookNotifier, sign, verify

__all__ = [
    "ActionRef",
    "Attachment",
    "ChannelRouter",
    "DeadLetter",
    "DeliveryConfigError",
    "DeliveryError",
    "DeliveryResult",
    "LogNotifier",
    "Message",
    "Notifier",
    "RetryDecision",
    "RetryPolicy",
    "SIGNATURE_HEADER",
    "SmsNotifier",
    "SmtpNotifier",
    "WebhookNotifier",
    "deliver_with_retry",
    "idempotency_key",
    "notifier_from_config",
    "sign",
    "statement_key",
    "verify",
]
