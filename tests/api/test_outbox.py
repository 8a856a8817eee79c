"""The outbox worker (api/jobs/outbox.py) against real receivers on 127.0.0.1, started and stopped by each
test: an aiosmtpd SMTP server that parses the mail (Chinese subject and body, the PDF attached), webhook
receivers that check the signature and fail N times or always. The sweep queues the automated payment
reminders of small accounts; the worker renders each for the customer's contact, sends it, and records
status, attempts, errors, next attempt, provider id, a trail record; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import io
import json
import subprocess
import threading

import pytest
from pypdf import PdfReader
from sqlalchemy import select, update

from api.jobs import outbox, sweep
from api.jobs.outbox import OutboxSettings
from api.store.tables import Action, DecisionRecord, Delivery
from api_harness import NOW, POLICY_FILE, Api, day, uid
from test_delivery import SECRET, Inbox, Receiver, smtp_server

DOCUMENTS = {
    "creditor": {
        "name": "华东精密机械有限公司",
        "phone": "021-5080 1234",
        "email": "ar@huadong.example",
        "bank_name": "中国工商银行上海张江支行",
        "bank_account": "1001 2345 6789",
        "account_name": "华东精密机械有限公司",
    }
}
RETRY = {"base_seconds": 60, "factor": 2, "cap_seconds": 600, "max_attempts": 3}


class Clock:
    """The service's clock, moved on by the test (a retry falls due when its next_attempt_at has come)."""

    def __init__(self):
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def book(backend):
    """A fresh database whose service has delivery configured (the sweep leaves automated actions queued),
    with two small accounts each owing an invoice due in 7 days: one with a contact, one without."""
    clock = Clock()
    api = Api(
        backend.name,
        backend.new_url(),
        clock=clock,
        config={"DELIVERY": {"backend": "log", "retry": RETRY}, "DOCUMENTS": DOCUMENTS},
    )
    try:
        reached, unreached = uid("C"), uid("C")
        for cid in (reached, unreached):
            api.customer(cid, name="杭州远航贸易有限公司" if cid == reached else "无联系人有限公司", size="small")
            api.invoice(cid, "3000.00", due=7)
        r = api.put(
            f"/v1/customers/{reached}/contacts",
            {
                "contacts": [
                    {
                        "name": "张伟",
                        "role": "财务经理",
                        "email": "zhang@yuanhang.example",
                        "mobile": "13812345678",
                        "preferred_channel": "email",
                        "language": "zh_CN",
                        "primary": True,
                    }
                ]
            },
            role="backoffice",
        )
        assert r.status_code == 200, r.text
        summary = sweep.run_sweep(api.service, NOW.date(), "test")
        assert summary["errors"] == 0
        api.clock, api.reached, api.unreached = clock, reached, unreached
        yield api
    finally:
        api.close()


def _settings(api, delivery: dict) -> OutboxSettings:
    return OutboxSettings.from_config(
        {**delivery, "retry": RETRY}, DOCUMENTS, POLICY_FILE, environ={"CREDITCTL_WEBHOOK_SECRET": SECRET}
    )


def _queued(api) -> dict[str, Action]:
    with api.service.read_tx() as s:
        rows = s.execute(select(Action).where(Action.owner == "automated")).scalars().all()
    return {a.customer_id: a for a in rows}


def _delivery(api, customer_id: str) -> Delivery:
    with api.service.read_tx() as s:
        return s.execute(select(Delivery).where(Delivery.customer_id == customer_id)).scalar_one()


def test_the_sweep_queues_and_the_worker_mails_the_chinese_reminder_with_its_pdf(book, tmp_path):
    queued = _queued(book)
    assert {a.customer_id: (a.type, a.channel, a.status) for a in queued.values()} == {
        book.reached: ("payment_reminder", "email", "queued"),
        book.unreached: ("payment_reminder", "email", "queued"),
    }
    inbox = Inbox()
    with smtp_server(inbox) as port:
        settings = _settings(
            book,
            {
                "backend": "smtp",
                "smtp": {"host": "127.0.0.1", "port": port, "timeout": 10, "sender": "应收账款部 <ar@huadong.example>"},
            },
        )
        counts = outbox.run_once(book.service, settings)
        again = outbox.run_once(book.service, settings)  # nothing left: never sent twice
    assert counts == {"enqueued": 2, "sent": 1, "failed": 1, "dead": 0, "lost": 0}
    assert again == {"enqueued": 0, "sent": 0, "failed": 0, "dead": 0, "lost": 0}
    ((mail_from, rcpt, raw),) = inbox.received
    assert mail_from == "ar@huadong.example" and rcpt == ["zhang@yuanhang.example"]
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert "付款" in mail["Subject"]
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "杭州远航贸易有限公司" in text and "¥3,000.00" in text
    (pdf_part,) = list(mail.iter_attachments())
    pdf = pdf_part.get_content()
    assert pdf_part.get_content_type() == "application/pdf" and len(PdfReader(io.BytesIO(pdf)).pages) >= 1
    (tmp_path / "got.pdf").write_bytes(pdf)
    pdf_text = subprocess.run(
        ["pdftotext", str(tmp_path / "got.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "杭州远航贸易有限公司" in pdf_text

    sent = _delivery(book, book.reached)
    assert (sent.status, sent.attempts, sent.backend, sent.recipient) == ("sent", 1, "smtp", "z***@yuanhang.example")
    assert sent.provider_message_id == mail["Message-ID"].strip() and len(sent.document_hash) == 64
    assert sent.idempotency_key in sent.provider_message_id
    assert _queued(book)[book.reached].status == "sent" and _queued(book)[book.reached].delivered_at is not None
    # the customer's trail records the delivery: channel, masked recipient, document hash; no address in clear
    with book.service.read_tx() as s:
        rec = s.get(DecisionRecord, sent.decision_id)
    result = json.loads(rec.result)
    assert (rec.subject, rec.kind, rec.outcome) == (book.reached, "delivery", "sent")
    assert result["channel"] == "email" and result["recipient"] == "z***@yuanhang.example"
    assert result["document_sha256"] == sent.document_hash and "zhang@" not in rec.result
    assert book.get("/v1/audit/verify", role="auditor").json()["ok"] is True

    # no contact: failed with the reason, retried later, never a crash
    failed = _delivery(book, book.unreached)
    assert (failed.status, failed.attempts, failed.last_error_code) == ("failed", 1, "E_DELIVERY_NO_CONTACT")
    assert book.unreached in failed.last_error and "e-mail address" in failed.last_error
    assert failed.next_attempt_at == NOW + dt.timedelta(seconds=60)
    assert _queued(book)[book.unreached].status == "queued"

    # the controllers' listing, filtered by status, and the metrics
    listing = book.get("/v1/outbox", role="controller", params={"status": "failed"}).json()
    assert [d["customer_id"] for d in listing["deliveries"]] == [book.unreached]
    assert listing["counts"] == {"queued": 0, "sending": 0, "sent": 1, "failed": 1, "dead": 0}
    assert listing["deliveries"][0]["next_attempt_at"] == (NOW + dt.timedelta(seconds=60)).isoformat() + "Z"
    assert book.get("/v1/outbox", role="sales").status_code == 403
    # and each automated action in GET /v1/actions carries its message's state
    queued_view = book.get("/v1/actions", role="backoffice", params={"status": "queued", "owner": "automated"}).json()
    assert [
        (a["customer_id"], a["delivery"]["status"], a["delivery"]["attempts"], a["delivery"]["last_error_code"])
        for a in queued_view["actions"]
    ] == [(book.unreached, "failed", 1, "E_DELIVERY_NO_CONTACT")]
    assert book.get("/v1/outbox", role="controller", params={"status": "lost"}).status_code == 422
    metrics = book.get("/metrics", role=None).text
    assert 'creditctl_outbox_messages{status="sent"} 1.0' in metrics
    assert "creditctl_outbox_sent_total 1.0" in metrics and "creditctl_outbox_failed_total 1.0" in metrics


def test_a_receiver_failing_twice_gets_the_message_on_the_third_attempt(book):
    with Receiver(fail=2) as receiver:
        settings = _settings(book, {"backend": "webhook", "webhook": {"url": receiver.url, "timeout": 5}})
        rounds = []
        for _ in range(4):
            rounds.append(outbox.run_once(book.service, settings))
            book.clock.advance(3600)  # past any backoff of the policy (cap 600 s)
    reached = _delivery(book, book.reached)
    assert (reached.status, reached.attempts, reached.provider_message_id) == ("sent", 3, "msg-3")
    assert reached.last_error_code == "E_DELIVERY_UNAVAILABLE" and "503" in reached.last_error
    ours = [r for r in receiver.requests if json.loads(r["body"])["action"]["customer_id"] == book.reached]
    assert len(ours) == 3 and all(r["signed"] for r in ours)
    assert len({r["headers"]["Idempotency-Key"] for r in ours}) == 1 == len({r["body"] for r in ours})
    body = json.loads(ours[-1]["body"])
    assert body["to"] == ["zhang@yuanhang.example"] and "杭州远航贸易有限公司" in body["document"]["text"]
    assert sum(r["sent"] for r in rounds) == 1


def test_a_receiver_always_failing_sends_the_message_to_the_dead_letters_after_the_limit(book):
    with Receiver(fail=10_000) as receiver:
        settings = _settings(book, {"backend": "webhook", "webhook": {"url": receiver.url, "timeout": 5}})
        waits = []
        for _ in range(5):
            outbox.run_once(book.service, settings)
            d = _delivery(book, book.reached)
            if d.next_attempt_at is not None:
                waits.append((d.next_attempt_at - book.clock.now).total_seconds())
            book.clock.advance(3600)
    dead = _delivery(book, book.reached)
    assert (dead.status, dead.attempts, dead.next_attempt_at) == ("dead", 3, None)
    assert waits == [60, 120]  # backoff doubles between attempts
    assert "gave up after 3 attempts" in dead.last_error
    assert len([r for r in receiver.requests if json.loads(r["body"])["action"]["customer_id"] == book.reached]) == 3
    action = _queued(book)[book.reached]
    assert (action.status, action.outcome) == ("failed", "dead_letter")
    with book.service.read_tx() as s:
        assert s.get(DecisionRecord, dead.decision_id).outcome == "dead"
    # the customer without a contact also ends dead after the limit, with its reason
    unreached = _delivery(book, book.unreached)
    assert (unreached.status, unreached.attempts, unreached.last_error_code) == ("dead", 3, "E_DELIVERY_NO_CONTACT")
    assert book.get("/v1/outbox", role="controller", params={"status": "dead"}).json()["counts"]["dead"] == 2
    assert "creditctl_outbox_dead_total 2.0" in book.get("/metrics", role=None).text


def test_two_workers_never_send_one_message_twice_and_a_dead_workers_claim_is_taken_over(book):
    outbox.enqueue(book.service)
    with book.service.tx() as s:  # only the customer with a contact: one message
        s.execute(update(Delivery).where(Delivery.customer_id == book.unreached).values(status="dead"))
    with Receiver() as receiver:
        settings = _settings(book, {"backend": "webhook", "webhook": {"url": receiver.url, "timeout": 5}})
        start, results = threading.Barrier(2), []

        def work(name):
            start.wait()
            results.append(outbox.run_once(book.service, settings, worker=f"test:{name}"))

        threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(r["sent"] for r in results) == [0, 1] and len(receiver.requests) == 1
        # a worker killed mid-send leaves its row `sending`: taken over once its lease lapsed, same key
        with book.service.tx() as s:
            s.execute(
                update(Delivery)
                .where(Delivery.customer_id == book.reached)
                .values(status="sending", worker="gone:1:x", claimed_at=book.clock.now)
            )
            s.execute(update(Action).where(Action.customer_id == book.reached).values(status="queued"))
        assert outbox.run_once(book.service, settings)["sent"] == 0  # the lease still holds
        book.clock.advance(outbox.LEASE_SECONDS + 1)
        assert outbox.run_once(book.service, settings)["sent"] == 1
    first, second = receiver.requests
    assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"]
    assert _delivery(book, book.reached).attempts == 2


def test_without_delivery_configured_the_sweep_still_marks_automated_actions_sent(fresh):
    cid = fresh.customer(uid("C"), size="small")
    fresh.invoice(cid, "3000.00", due=7)
    sweep.run_sweep(fresh.service, dt.date.fromisoformat(day(0)), "test")
    with fresh.service.read_tx() as s:
        statuses = {
            a.status
            for a in s.execute(select(Action).where(Action.customer_id == cid, Action.owner == "automated")).scalars()
        }
    assert statuses == {"sent"}
    assert outbox.run_once(fresh.service, fresh.service.delivery)["enqueued"] == 0


def test_the_scheduler_job_sends_the_outbox_with_the_configured_backend_and_records_its_run(book, caplog):
    from api.jobs import scheduler
    from api.store.tables import JobRun

    scheduler._service = book.service
    with caplog.at_level("INFO", logger="creditctl.delivery"):
        result = scheduler.outbox_delivery(NOW.date())
    assert result["outcome"] == "ok" and result["detail"]["sent"] == 1 and result["detail"]["failed"] == 1
    assert any(
        "delivery (log backend, not sent): email to zhang@yuanhang.example" in r.getMessage() for r in caplog.records
    )
    with book.service.read_tx() as s:
        assert [(r.job_id, r.outcome) for r in s.execute(select(JobRun)).scalars()] == [("outbox-delivery", "ok")]
    assert _delivery(book, book.reached).backend == "log"


def test_creditctl_deliver_sends_once_with_a_configuration_file(book, tmp_path, capsys):
    from api.cli import main

    config = tmp_path / "delivery.yaml"
    config.write_text(
        "delivery:\n  backend: log\n  retry: {max_attempts: 2}\ndocuments:\n  creditor: {name: 华东精密机械有限公司}\n",
        encoding="utf-8",
    )
    args = ["deliver", "--database-url", book.database_url, "--policy", POLICY_FILE, "--config", str(config)]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {
        "enqueued": 2,
        "sent": 1,
        "failed": 1,
        "dead": 0,
        "lost": 0,
    }
    assert _delivery(book, book.reached).status == "sent"
    assert main(["deliver", "--database-url", book.database_url, "--interval", "0"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("delivery:\n  backend: webhook\n", encoding="utf-8")
    assert main(args[:-1] + [str(bad)]) == 2
    assert "E_DELIVERY_CONFIG" in capsys.readouterr().err


def test_a_receiver_that_hangs_is_a_timeout_retried_later(book):
    with Receiver(hang=True) as receiver:
        settings = _settings(book, {"backend": "webhook", "webhook": {"url": receiver.url, "timeout": 1}})
        counts = outbox.run_once(book.service, settings)
    assert counts["failed"] == 2 and len(receiver.requests) == 1
    d = _delivery(book, book.reached)
    assert (d.status, d.attempts, d.last_error_code) == ("failed", 1, "E_DELIVERY_TIMEOUT")
    assert d.next_attempt_at == NOW + dt.timedelta(seconds=60)


def test_a_worker_killed_mid_send_loses_no_message_and_the_resend_carries_the_same_key(book, tmp_path, monkeypatch):
    import os
    import signal
    import sys
    import time

    from api.cli import main
    from api_harness import ROOT

    def config(url: str) -> str:
        path = tmp_path / f"delivery-{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(
            f"delivery:\n  backend: webhook\n  webhook: {{url: '{url}', timeout: 30}}\n"
            f"  lease_seconds: 1\ndocuments:\n  creditor: {{name: 华东精密机械有限公司}}\n",
            encoding="utf-8",
        )
        return str(path)

    env = {**os.environ, "PYTHONPATH": str(ROOT), "CREDITCTL_WEBHOOK_SECRET": SECRET}
    with Receiver(hang=True) as hanging:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "deliver",
                "--database-url",
                book.database_url,
                "--policy",
                POLICY_FILE,
                "--config",
                config(hanging.url),
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(1200):  # until the worker is inside its send (an event, not a duration)
                if hanging.requests or worker.poll() is not None:
                    break
                time.sleep(0.05)
            assert hanging.requests, "the worker never sent"
        finally:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(30)
    assert _delivery(book, book.reached).status == "sending"  # claimed, never finished
    time.sleep(1.1)  # its 1 s lease lapses
    monkeypatch.setenv("CREDITCTL_WEBHOOK_SECRET", SECRET)
    with Receiver() as receiver:
        assert (
            main(
                [
                    "deliver",
                    "--database-url",
                    book.database_url,
                    "--policy",
                    POLICY_FILE,
                    "--config",
                    config(receiver.url),
                ]
            )
            == 0
        )
    d = _delivery(book, book.reached)
    assert (d.status, d.attempts) == ("sent", 2)
    ours = [r for r in receiver.requests if json.loads(r["body"])["action"]["customer_id"] == book.reached]
    assert len(ours) == 1
    assert (
        ours[0]["headers"]["Idempotency-Key"] == hanging.requests[0]["headers"]["Idempotency-Key"] == d.idempotency_key
    )
