"""HTTP POST of a message as JSON, signed: `X-Creditctl-Signature: sha256=<hex HMAC-SHA256 of the
body>`, `Idempotency-Key` stable per action (receivers drop repeats), a timeout. The SMS backend
is the same POST to a gateway, with the text alone."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import urllib.error
import urllib.parse
import urllib.request

import orjson

from .base import DeliveryError, DeliveryResult
from .message import Message

SIGNATURE_HEADER = "X-Creditctl-Signature"
# the receiver is busy, rate-limits or is mid-request with the same key: the same POST may pass later
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """For receivers (and tests): constant-time comparison."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would follow a 302 with a GET and no body: a moved endpoint must fail loudly instead
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: left to the retry policy's own delay


class WebhookNotifier:
    name = "webhook"

    def __init__(self, url: str, secret: bytes | str, *, timeout: float = 10.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook url {url!r} must be http(s)://host/…")
        if not secret:
            raise ValueError("a webhook needs a signing secret")
        self.url, self.timeout = url, timeout
        self.secret = secret.encode("utf-8") if isinstance(secret, str) else secret
        # direct connection (no proxy from the environment), no redirects
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())

    def body(self, message: Message) -> bytes:
        """Sorted keys, UTF-8 (Chinese as is, not \\u escapes): the bytes the signature covers."""
        return orjson.dumps(message.to_json(), option=orjson.OPT_SORT_KEYS)

    def deliver(self, message: Message) -> DeliveryResult:
        body = self.body(message)
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "creditctl-delivery/1",
                "Idempotency-Key": message.idempotency_key,
                SIGNATURE_HEADER: sign(self.secret, body),
            },
        )
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                status, answer = response.status, response.read(65536)
        except urllib.error.HTTPError as exc:
            with exc:
                status = exc.code
                retryable = status >= 500 or status in RETRYABLE_STATUS
                raise DeliveryError(
                    f"{self.url}: HTTP {status} {exc.reason}",
                    retryable=retryable,
                    backend=self.name,
                    code="E_DELIVERY_REFUSED" if not retryable else "E_DELIVERY_UNAVAILABLE",
                    retry_after=_retry_after(exc.headers.get("Retry-After")),
                ) from None
        except (TimeoutError, socket.timeout) as exc:
            raise DeliveryError(
                f"{self.url}: no answer within {self.timeout} s",
                retryable=True,
                backend=self.name,
                code="E_DELIVERY_TIMEOUT",
            ) from exc
        except urllib.error.URLError as exc:
            timed_out = isinstance(exc.reason, (TimeoutError, socket.timeout))
            raise DeliveryError(
                f"{self.url}: {exc.reason}",
                retryable=True,
                backend=self.name,
                code="E_DELIVERY_TIMEOUT" if timed_out else "E_DELIVERY_UNAVAILABLE",
            ) from exc
        except (http.client.HTTPException, OSError) as exc:  # reset, closed mid-answer
            raise DeliveryError(
                f"{self.url}: {type(exc).__name__}: {exc}",
                retryable=True,
                backend=self.name,
                code="E_DELIVERY_UNAVAILABLE",
            ) from exc
        reference = None
        try:
            parsed = orjson.loads(answer) if answer else None
            if isinstance(parsed, dict) and isinstance(parsed.get("id"), (str, int)):
                reference = str(parsed["id"])
        except orjson.JSONDecodeError:
            pass
        return DeliveryResult(backend=self.name, reference=reference, detail=f"HTTP {status}")


class SmsNotifier(WebhookNotifier):
    """SMS through a gateway that takes the webhook's signed POST: the text alone, no HTML, no files."""

    name = "sms"

    def body(self, message: Message) -> bytes:
        return orjson.dumps(
            {
                "idempotency_key": message.idempotency_key,
                "channel": "sms",
                "to": list(message.to),
                "text": message.text,
                "action": message.action.to_json() if message.action else None,
            },
            option=orjson.OPT_SORT_KEYS,
        )

    def deliver(self, message: Message) -> DeliveryResult:
        if not message.to:
            raise DeliveryError(
                "no phone number to send to", retryable=False, backend=self.name, code="E_DELIVERY_NO_ADDRESS"
            )
        return super().deliver(message)
