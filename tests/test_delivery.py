"""Delivery against real servers on 127.0.0.1, started and stopped by each test: an aiosmtpd SMTP
server (plain, and STARTTLS + AUTH with a throw-away certificate) that parses what it receives, an
http.server webhook receiver that checks the HMAC signature and the idempotency key, one that fails
N times then succeeds, one that hangs. Plus the pure retry policy and the configuration."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import email
import email.policy
from email.header import decode_header, make_header
import http.server
import io
import json
import logging
import pathlib
import socket
import subprocess
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from pypdf import PdfReader

from api.delivery import (
    SIGNATURE_HEADER,
    DeadLetter,
    DeliveryConfigError,
    DeliveryError,
    LogNotifier,
    Message,
    RetryPolicy,
    SmsNotifier,
    SmtpNotifier,
    WebhookNotifier,
    deliver_with_retry,
    idempotency_key,
    notifier_from_config,
    verify,
)
from api.documents import DocumentRenderer
from api.documents.samples import sample_action, sample_context

TEMPLATES = pathlib.Path(__file__).resolve().parent.parent / "templates"
SECRET = "s3cr3t-签名密钥"
SENDER = "华东精密机械有限公司 应收账款部 <ar@huadong-jixie.example>"


@pytest.fixture(scope="module")
def letter():
    """A real lawyer's letter with its PDF, and the action it is for."""
    doc = DocumentRenderer(TEMPLATES).render(sample_context("lawyer_letter"), pdf=True)
    return sample_action("lawyer_letter"), doc


@pytest.fixture(scope="module")
def message(letter):
    action, doc = letter
    return Message.for_action(action, doc, to=["zhang@yuanhang.example"], currency="CNY", channel="email")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------- SMTP
class Inbox:
    """aiosmtpd handler: keeps what arrives; can refuse recipients or answer DATA with a code."""

    def __init__(self, data_reply: str = "250 OK", refuse: frozenset = frozenset()):
        self.received, self.data_reply, self.refuse = [], data_reply, refuse

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if not self.data_reply.startswith("2"):
            return self.data_reply
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return self.data_reply


@contextlib.contextmanager
def smtp_server(handler, **kw):
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(), **kw)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def test_smtp_delivers_a_chinese_mail_with_text_html_and_the_pdf(message, tmp_path):
    inbox = Inbox()
    with smtp_server(inbox) as port:
        result = SmtpNotifier("127.0.0.1", port, sender=SENDER, timeout=10).deliver(message)
    assert result.backend == "smtp" and result.reference == f"<{message.idempotency_key}@huadong-jixie.example>"
    ((mail_from, rcpt, raw),) = inbox.received
    assert mail_from == "ar@huadong-jixie.example" and rcpt == ["zhang@yuanhang.example"]
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"=?utf-8?" in head  # RFC 2047 encoded, not raw UTF-8
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail["Subject"] == message.subject and "律师函" in mail["Subject"]
    # decoded per RFC 2047 (the email package's address parser adds a space between encoded words)
    raw_from = next(
        line for line in head.decode("ascii").replace("\r\n ", " ").split("\r\n") if line.startswith("From: ")
    )[6:]
    assert str(make_header(decode_header(raw_from))) == SENDER
    assert mail["From"].addresses[0].addr_spec == "ar@huadong-jixie.example"
    assert mail["Message-ID"].strip() == result.reference and mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "multipart/mixed"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "杭州远航贸易有限公司" in text and "¥125,868.26" in text and "财产保全" in text
    assert "<h1>律师函</h1>" in html
    (pdf_part,) = list(mail.iter_attachments())
    assert pdf_part.get_content_type() == "application/pdf"
    assert pdf_part.get_filename() == message.attachments[0].filename
    pdf = pdf_part.get_content()
    assert pdf == message.attachments[0].data and len(PdfReader(io.BytesIO(pdf)).pages) >= 1
    (tmp_path / "got.pdf").write_bytes(pdf)
    pdf_text = subprocess.run(
        ["pdftotext", str(tmp_path / "got.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "杭州远航贸易有限公司" in pdf_text and "¥125,868.26" in pdf_text


def test_smtp_encodes_a_chinese_attachment_name(message):
    named = dataclasses.replace(
        message, attachments=(dataclasses.replace(message.attachments[0], filename="律师函-C-2002.pdf"),)
    )
    inbox = Inbox()
    with smtp_server(inbox) as port:
        SmtpNotifier("127.0.0.1", port, sender=SENDER).deliver(named)
    raw = inbox.received[0][2]
    assert "律师函".encode() not in raw  # encoded (RFC 2231), not raw bytes
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert next(mail.iter_attachments()).get_filename() == "律师函-C-2002.pdf"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    return folder / "cert.pem", folder / "key.pem"


def test_smtp_starttls_and_login_with_credentials_from_the_environment(message, certificate):
    import ssl

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((mechanism, auth_data.login, auth_data.password))
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"collector", b"pa55-word"))

    inbox = Inbox()
    with smtp_server(
        inbox, tls_context=context, require_starttls=True, auth_required=True, authenticator=authenticator
    ) as port:
        router = notifier_from_config(
            {
                "backend": "smtp",
                "smtp": {"host": "127.0.0.1", "port": port, "starttls": True, "sender": SENDER, "ca_file": str(cert)},
            },
            environ={"CREDITCTL_SMTP_USER": "collector", "CREDITCTL_SMTP_PASSWORD": "pa55-word"},
        )
        router.deliver(message)
        # the same server refuses a client that skips STARTTLS: nothing is sent in clear
        with pytest.raises(DeliveryError) as err:
            SmtpNotifier("127.0.0.1", port, sender=SENDER, username="collector", password="x").deliver(message)
    assert [login for _, login, _ in logins] == [b"collector"]  # once, over TLS
    assert len(inbox.received) == 1
    assert err.value.retryable is False


def test_smtp_refusals_are_permanent_or_retryable_by_their_code(message):
    with smtp_server(Inbox(refuse=frozenset({"zhang@yuanhang.example"}))) as port:
        with pytest.raises(DeliveryError) as err:
            SmtpNotifier("127.0.0.1", port, sender=SENDER).deliver(message)
    assert err.value.retryable is False and err.value.code == "E_DELIVERY_REFUSED"
    with smtp_server(Inbox(data_reply="451 4.3.0 try again later")) as port:
        with pytest.raises(DeliveryError) as err:
            SmtpNotifier("127.0.0.1", port, sender=SENDER).deliver(message)
    assert err.value.retryable is True and "451" in err.value.message


def test_smtp_server_down_is_retryable(message):
    with pytest.raises(DeliveryError) as err:
        SmtpNotifier("127.0.0.1", _free_port(), sender=SENDER, timeout=5).deliver(message)
    assert err.value.retryable is True and err.value.code == "E_DELIVERY_UNAVAILABLE"


# ---------------------------------------------------------------------------------------- webhook
class Receiver:
    """A webhook endpoint on 127.0.0.1: verifies the signature (401 if wrong), records each request,
    answers 503 to the first `fail` requests, or holds each request until released (`hang`)."""

    def __init__(self, *, secret: str = SECRET, fail: int = 0, hang: bool = False, retry_after: str | None = None):
        self.secret, self.fail, self.hang, self.retry_after = secret.encode(), fail, hang, retry_after
        self.requests, self.release = [], threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signed = verify(receiver.secret, body, self.headers.get(SIGNATURE_HEADER))
                receiver.requests.append({"headers": dict(self.headers), "body": body, "signed": signed})
                if receiver.hang:
                    receiver.release.wait(30)
                    return
                if not signed:
                    return self._answer(401, b'{"error": "bad signature"}')
                if len(receiver.requests) <= receiver.fail:
                    return self._answer(503, b'{"error": "busy"}', retry_after=receiver.retry_after)
                self._answer(202, json.dumps({"id": f"msg-{len(receiver.requests)}"}).encode())

            def _answer(self, status, body, retry_after=None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/creditctl"

    def __enter__(self):
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_webhook_posts_the_action_and_document_signed_with_a_stable_idempotency_key(message, letter):
    action, _ = letter
    with Receiver() as receiver:
        notifier = WebhookNotifier(receiver.url, SECRET, timeout=5)
        first = notifier.deliver(message)
        second = notifier.deliver(message)  # a retry of the same action
    assert (first.backend, first.reference, first.detail) == ("webhook", "msg-1", "HTTP 202")
    assert second.reference == "msg-2"
    one, two = receiver.requests
    assert one["signed"] and two["signed"]
    assert one["headers"]["Idempotency-Key"] == two["headers"]["Idempotency-Key"] == idempotency_key(action)
    assert one["body"] == two["body"] and one["headers"][SIGNATURE_HEADER] == two["headers"][SIGNATURE_HEADER]
    assert one["headers"][SIGNATURE_HEADER].startswith("sha256=")
    assert "律师函".encode() in one["body"]  # UTF-8 as is, not \u escapes
    body = json.loads(one["body"])
    assert body["action"] == {
        "id": 42,
        "customer_id": "C-2002",
        "invoice_id": "INV-1001",
        "type": "lawyer_letter",
        "channel": "lawyer",
        "stage": 2,
        "due_on": "2026-12-15",
        "amount": "100000.00",
        "currency": "CNY",
    }
    doc = body["document"]
    assert doc["kind"] == "lawyer_letter" and doc["locale"] == "zh_CN" and doc["subject"] == message.subject
    assert "¥125,868.26" in doc["text"] and "<h1>律师函</h1>" in doc["html"]
    assert base64.b64decode(doc["attachments"][0]["data_base64"]).startswith(b"%PDF-")


def test_the_idempotency_key_is_the_actions_unique_key_not_its_row_id(letter):
    action, _ = letter
    same = type(action)(**{**vars(action), "id": 99})
    other_day = type(action)(**{**vars(action), "due_on": action.due_on + dt.timedelta(days=14)})
    assert idempotency_key(same) == idempotency_key(action) != idempotency_key(other_day)


def test_a_wrong_secret_is_refused_and_not_retried(message):
    with Receiver(secret="another secret") as receiver:
        with pytest.raises(DeliveryError) as err:
            WebhookNotifier(receiver.url, SECRET, timeout=5).deliver(message)
    assert receiver.requests[0]["signed"] is False
    assert err.value.retryable is False and "HTTP 401" in err.value.message


def test_a_receiver_failing_three_times_gets_the_message_on_the_fourth_attempt(message):
    policy = RetryPolicy(base_seconds=0.02, factor=2, cap_seconds=0.05, max_attempts=5)
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        time.sleep(seconds)

    with Receiver(fail=3) as receiver:
        result, attempts = deliver_with_retry(
            WebhookNotifier(receiver.url, SECRET, timeout=5), message, policy, sleep=sleep
        )
    assert attempts == 4 and result.reference == "msg-4"
    assert waits == [0.02, 0.04, 0.05]  # doubling, capped
    assert len({r["headers"]["Idempotency-Key"] for r in receiver.requests}) == 1
    assert all(r["signed"] for r in receiver.requests)


def test_a_receiver_that_never_recovers_sends_the_message_to_the_dead_letters(message):
    policy = RetryPolicy(base_seconds=0.01, factor=2, cap_seconds=0.02, max_attempts=3)
    with Receiver(fail=100, retry_after="0") as receiver:
        with pytest.raises(DeadLetter) as dead:
            deliver_with_retry(WebhookNotifier(receiver.url, SECRET, timeout=5), message, policy)
    assert dead.value.attempts == 3 == len(receiver.requests)
    assert dead.value.error.retryable and "HTTP 503" in dead.value.reason


def test_a_receiver_that_hangs_times_out_as_a_retryable_error(message):
    with Receiver(hang=True) as receiver:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as err:
            WebhookNotifier(receiver.url, SECRET, timeout=0.5).deliver(message)
        elapsed = time.monotonic() - started
    assert err.value.retryable is True and err.value.code == "E_DELIVERY_TIMEOUT"
    assert 0.4 < elapsed < 5 and len(receiver.requests) == 1


def test_sms_goes_to_the_gateway_as_signed_text_only(letter):
    action, _ = letter
    reminder = DocumentRenderer(TEMPLATES).render(sample_context("overdue_reminder"))
    sms_action = type(action)(**{**vars(action), "type": "sms_reminder", "channel": "sms", "stage": 1})
    msg = Message.for_action(sms_action, reminder, to=["+8613800000000"], currency="CNY")
    assert msg.channel == "sms" and msg.html is None and msg.attachments == () and msg.text == reminder.sms
    with Receiver(secret="gateway-secret") as gateway:
        router = notifier_from_config(
            {"channels": {"sms": "sms"}, "sms": {"url": gateway.url, "timeout": 5}},
            environ={"CREDITCTL_SMS_SECRET": "gateway-secret"},
        )
        result = router.deliver(msg)
    assert result.backend == "sms"
    (request,) = gateway.requests
    assert request["signed"] and request["headers"]["Idempotency-Key"] == idempotency_key(sms_action)
    body = json.loads(request["body"])
    assert set(body) == {"idempotency_key", "channel", "to", "text", "action"}
    assert body["to"] == ["+8613800000000"] and body["text"].startswith("【华东精密机械有限公司】")


# ---------------------------------------------------------------------------------------- retry policy
def test_backoff_doubles_up_to_the_cap_then_gives_up():
    policy = RetryPolicy(base_seconds=60, factor=2, cap_seconds=3600, max_attempts=8)
    assert [policy.delay(n) for n in range(1, 9)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    busy = DeliveryError("HTTP 503", retryable=True, backend="webhook")
    now = dt.datetime(2026, 12, 15, 2, 0)
    d = policy.decide(3, busy, now=now)
    assert d.retry and d.delay_seconds == 240 and d.next_attempt_at == now + dt.timedelta(minutes=4)
    assert not policy.decide(8, busy).retry and "gave up after 8 attempts" in policy.decide(8, busy).reason
    refused = DeliveryError("HTTP 400", retryable=False, backend="webhook")
    assert policy.decide(1, refused) == dataclasses.replace(policy.decide(1, refused), retry=False, delay_seconds=None)
    assert policy.delay(10_000) == 3600  # no float overflow far past the cap


def test_retry_after_lengthens_the_wait_up_to_the_cap():
    policy = RetryPolicy(base_seconds=60, cap_seconds=600)
    assert policy.decide(1, DeliveryError("429", retryable=True, backend="w", retry_after=300)).delay_seconds == 300
    assert policy.decide(1, DeliveryError("429", retryable=True, backend="w", retry_after=9999)).delay_seconds == 600
    assert policy.decide(1, DeliveryError("429", retryable=True, backend="w", retry_after=1)).delay_seconds == 60


def test_jitter_is_bounded_and_repeatable_per_message():
    policy = RetryPolicy(base_seconds=100, factor=2, cap_seconds=10_000, jitter=0.5)
    a = [policy.delay(n, "cc-a") for n in range(1, 6)]
    assert a == [policy.delay(n, "cc-a") for n in range(1, 6)]
    assert a != [policy.delay(n, "cc-b") for n in range(1, 6)]
    assert all(100 * 2 ** (n - 1) * 0.5 <= d <= 100 * 2 ** (n - 1) for n, d in enumerate(a, 1))


@pytest.mark.parametrize(
    "bad",
    [{"base_seconds": 0}, {"factor": 0.5}, {"cap_seconds": 1, "base_seconds": 2}, {"max_attempts": 0}, {"jitter": 1}],
)
def test_a_nonsensical_retry_policy_is_refused(bad):
    with pytest.raises(ValueError):
        RetryPolicy(**bad)


# ---------------------------------------------------------------------------------------- configuration
def test_the_default_backend_logs_a_visible_line_and_sends_nothing(message, caplog):
    router = notifier_from_config(None, environ={})
    assert isinstance(router.notifier_for("email"), LogNotifier) and isinstance(router.notifier_for("sms"), LogNotifier)
    with caplog.at_level(logging.INFO, logger="creditctl.delivery"):
        result = router.deliver(message)
    assert result.backend == "log"
    (record,) = [r for r in caplog.records if r.name == "creditctl.delivery"]
    assert record.levelno == logging.INFO
    line = record.getMessage()
    assert "zhang@yuanhang.example" in line and message.subject in line and message.idempotency_key in line
    assert "lawyer_letter" in line and message.attachments[0].filename in line


def test_channels_route_to_their_backends():
    router = notifier_from_config(
        {
            "backend": "webhook",
            "webhook": {"url": "http://127.0.0.1:9/hook"},
            "channels": {"sms": "sms", "letter": "log"},
            "sms": {"url": "http://127.0.0.1:9/sms"},
        },
        environ={"CREDITCTL_WEBHOOK_SECRET": "a", "CREDITCTL_SMS_SECRET": "b"},
    )
    assert type(router.notifier_for("email")) is WebhookNotifier
    assert type(router.notifier_for("lawyer")) is WebhookNotifier
    assert type(router.notifier_for("sms")) is SmsNotifier
    assert type(router.notifier_for("letter")) is LogNotifier


@pytest.mark.parametrize(
    "config, environ, fragment",
    [
        ({"backend": "fax"}, {}, "unknown delivery backend 'fax'"),
        ({"backend": "smtp", "smtp": {"sender": SENDER}}, {}, "needs host and sender"),
        (
            {"backend": "smtp", "smtp": {"host": "127.0.0.1", "sender": SENDER}},
            {"CREDITCTL_SMTP_USER": "u"},
            "CREDITCTL_SMTP_PASSWORD is not set",
        ),
        ({"backend": "smtp", "smtp": {"host": "127.0.0.1", "sender": "nobody"}}, {}, "not an e-mail address"),
        ({"backend": "webhook", "webhook": {"url": "http://127.0.0.1:9/h"}}, {}, "CREDITCTL_WEBHOOK_SECRET is not set"),
        ({"backend": "webhook", "webhook": {"url": "ftp://127.0.0.1/h"}}, {"CREDITCTL_WEBHOOK_SECRET": "s"}, "http(s)"),
        (
            {"backend": "webhook", "webhook": {"url": "http://127.0.0.1:9/h", "timeout": 0}},
            {"CREDITCTL_WEBHOOK_SECRET": "s"},
            "timeout must be a positive number",
        ),
        ({"channels": {"pigeon": "log"}}, {}, "unknown channel 'pigeon'"),
    ],
)
def test_a_backend_missing_its_settings_or_secret_fails_at_start(config, environ, fragment):
    with pytest.raises(DeliveryConfigError) as err:
        notifier_from_config(config, environ=environ)
    assert fragment in str(err.value)
