"""E-mail through an SMTP relay (smtplib): text + HTML alternative, PDF attached, Chinese headers
and file names encoded (RFC 2047 / RFC 2231), optional STARTTLS and login."""

from __future__ import annotations

import datetime as dt
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr, parseaddr

from .base import DeliveryError, DeliveryResult
from .message import Message


class SmtpNotifier:
    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        clock=None,
    ):
        display, addr = parseaddr(sender)
        if "@" not in addr:
            raise ValueError(f"sender {sender!r} is not an e-mail address")
        if (username is None) != (password is None):
            raise ValueError("SMTP user and password go together")
        self.host, self.port, self.starttls, self.timeout = host, port, starttls, timeout
        self.sender = Address(display_name=display, addr_spec=addr)
        self.username, self.password = username, password
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))

    def build(self, message: Message) -> EmailMessage:
        """The MIME message: multipart/mixed [multipart/alternative [text, html], attachments…]."""
        msg = EmailMessage(policy=SMTP_POLICY)
        # formataddr encodes the display name itself: the email package's own folding of a long non-ASCII
        # display name quotes the address (<"ar@example.com">, a broken address) on Python 3.11
        msg["From"] = formataddr((self.sender.display_name, self.sender.addr_spec), charset="utf-8")
        msg["To"] = ", ".join(message.to)
        msg["Subject"] = message.subject
        msg["Date"] = format_datetime(self.clock())
        # the same id on every retry, so a receiving system can drop a duplicate
        msg["Message-ID"] = f"<{message.idempotency_key}@{self.sender.domain}>"
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to the outbox, please
        msg["X-Creditctl-Idempotency-Key"] = message.idempotency_key
        msg.set_content(message.text, subtype="plain", charset="utf-8")
        if message.html is not None:
            msg.add_alternative(message.html, subtype="html", charset="utf-8")
        for a in message.attachments:
            maintype, _, subtype = a.content_type.partition("/")
            msg.add_attachment(a.data, maintype=maintype, subtype=subtype, filename=a.filename)
        return msg

    def deliver(self, message: Message) -> DeliveryResult:
        if not message.to:
            raise DeliveryError(
                "no e-mail address to send to", retryable=False, backend=self.name, code="E_DELIVERY_NO_ADDRESS"
            )
        msg = self.build(message)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=self.ssl_context)
                if self.username is not None:
                    smtp.login(self.username, self.password)
                refused = smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"every recipient refused: {exc.recipients}",
                backend=self.name,
                retryable=all(400 <= c < 500 for c in codes),
                code="E_DELIVERY_REFUSED",
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:  # e.g. STARTTLS configured, server lacks it
            raise DeliveryError(
                f"SMTP server: {exc}", retryable=False, backend=self.name, code="E_DELIVERY_CONFIG"
            ) from exc
        except smtplib.SMTPResponseException as exc:  # 4xx: try later; 5xx: never as it is
            raise DeliveryError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                backend=self.name,
                retryable=400 <= exc.smtp_code < 500,
                code="E_DELIVERY_REFUSED",
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"TLS: {exc}", retryable=False, backend=self.name, code="E_DELIVERY_CONFIG") from exc
        except (smtplib.SMTPException, OSError) as exc:  # connection refused, reset, timed out
            raise DeliveryError(
                f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}",
                retryable=True,
                backend=self.name,
                code="E_DELIVERY_UNAVAILABLE",
            ) from exc
        detail = f"accepted for {len(message.to) - len(refused)} of {len(message.to)}"
        if refused:
            detail += f"; refused {sorted(refused)}"
        return DeliveryResult(backend=self.name, reference=msg["Message-ID"], detail=detail)
