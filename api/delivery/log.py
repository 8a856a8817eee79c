"""The default backend: nothing leaves the machine; one visible INFO line per message."""

from __future__ import annotations

import logging

from .base import DeliveryResult
from .message import Message

log = logging.getLogger("creditctl.delivery")


class LogNotifier:
    name = "log"

    def deliver(self, message: Message) -> DeliveryResult:
        a = message.action
        doc = dict(message.document)
        what = (
            f"action {a.id} {a.type} stage {a.stage} invoice {a.invoice_id}"
            if a
            else f"{doc.get('kind', 'no action')} {doc.get('period', '')}".strip()
        )
        attachments = "".join(f" +{x.filename}" for x in message.attachments)
        log.info(
            "delivery (log backend, not sent): %s to %s for %s: %s%s [%s]",
            message.channel,
            ", ".join(message.to) or "(no address)",
            what,
            message.subject,
            attachments,
            message.idempotency_key,
        )
        return DeliveryResult(backend=self.name, reference=None, detail="logged")
