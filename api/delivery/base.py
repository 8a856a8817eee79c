"""The notifier interface: deliver(message) -> DeliveryResult, or raise DeliveryError."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from engine.errors import CreditctlError

from .message import Message


@dataclass(frozen=True)
class DeliveryResult:
    backend: str  # log, smtp, webhook, sms
    reference: str | None  # the receiver's id for it when it gives one (SMTP Message-ID, HTTP body id)
    detail: str = ""  # e.g. "250 OK", "HTTP 202"


class DeliveryError(CreditctlError):
    """Sending failed. `retryable`: the same message may succeed later (a timeout, a 5xx, a 4xx SMTP
    reply); otherwise it never will as it is (a refused address, a 4xx HTTP answer, bad credentials)
    and goes to the dead letters. `retry_after`: seconds the receiver asked us to wait, if it said."""

    code = "E_DELIVERY"

    def __init__(
        self, message: str, *, retryable: bool, backend: str, code: str = "E_DELIVERY", retry_after: float | None = None
    ):
        super().__init__(message)
        self.message, self.retryable, self.backend, self.code = message, retryable, backend, code
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"DeliveryError({self.message!r}, retryable={self.retryable}, backend={self.backend!r})"


class Notifier(Protocol):
    name: str

    def deliver(self, message: Message) -> DeliveryResult: ...
