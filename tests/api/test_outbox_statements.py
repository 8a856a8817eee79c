"""Monthly statements through the outbox, requeued dead letters, and the stuck-outbox gauges (api/jobs/statements.py,
api/service/deliveries.py), against real receivers on 127.0.0.1 started and stopped by each test (an aiosmtpd
server that parses the mail and its PDF; a webhook receiver that checks the signature); SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import subprocess

import pytest
from sqlalchemy import select, update

from api.jobs import outbox, statements
from api.store.tables import Action, DecisionRecord, Delivery
from api_harness import NOW, POLICY_FILE, uid
from test_delivery import Inbox, Receiver, smtp_server
from test_outbox import _settings
from test_outbox import book as outbox_book  # noqa: F401  (a fixture, registered under this name)


@pytest.fixture
def book(outbox_book):  # noqa: F811  (the imported fixture, under the name these tests use)
    """test_outbox's book: two small accounts owing 3,000.00 (issued 2026-11-22), one with a contact; delivery
    configured, the sweep of NOW run (their payment reminders queued)."""
    return outbox_book


PERIOD = "2026-11"  # NOW is 2026-12-15: the book's invoices were issued on 2026-11-22


def _statement(api, customer_id: str) -> Delivery | None:
    with api.service.read_tx() as s:
        return s.execute(
            select(Delivery).where(Delivery.customer_id == customer_id, Delivery.statement_period.is_not(None))
        ).scalar_one_or_none()


def _records(api, customer_id: str, kind: str) -> list[DecisionRecord]:
    with api.service.read_tx() as s:
        return (
            s.execute(
                select(DecisionRecord)
                .where(DecisionRecord.subject == customer_id, DecisionRecord.kind == kind)
                .order_by(DecisionRecord.seq)
            )
            .scalars()
            .all()
        )


def _pdf_text(tmp_path, data: bytes) -> str:
    (tmp_path / "statement.pdf").write_bytes(data)
    return subprocess.run(
        ["pdftotext", str(tmp_path / "statement.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout


def _only_statements(api) -> None:
    """Set the sweep's reminders aside (sent by other means), so a run sends the statements alone."""
    with api.service.tx() as s:
        s.execute(update(Action).where(Action.owner == "automated").values(status="sent"))


def test_statements_are_queued_once_per_customer_and_month_and_mailed_in_the_contacts_language(book, tmp_path):
    settled = book.customer(uid("C"), name="无余额有限公司", size="small")  # no invoice: no balance
    english = book.customer(uid("C"), name="Harbour Trading Ltd", size="small")
    book.invoice(english, "1250.50", due=7)
    r = book.put(
        f"/v1/customers/{english}/contacts",
        {
            "contacts": [
                {
                    "name": "Ann Lee",
                    "email": "ann@harbour.example",
                    "preferred_channel": "email",
                    "language": "en",
                    "primary": True,
                }
            ]
        },
        role="backoffice",
    )
    assert r.status_code == 200, r.text
    _only_statements(book)

    first = statements.queue_statements(book.service, NOW.date(), "test:statements")
    again = statements.queue_statements(book.service, NOW.date(), "test:statements", "a second run")
    assert (first["period"], first["from"], first["to"]) == (PERIOD, "2026-11-01", "2026-11-30")
    assert (first["queued"], first["already_queued"]) == (3, 0)
    assert (again["queued"], again["already_queued"]) == (0, 3)  # idempotent: nothing more queued
    assert _statement(book, settled) is None
    queued = _statement(book, book.reached)
    assert (queued.status, queued.action_id, queued.channel, queued.attempts) == ("queued", None, "email", 0)
    # the customer's trail: one record for the month, with the actor and the reason
    (rec,) = _records(book, book.reached, "statement")
    assert (rec.outcome, rec.actor, rec.id) == ("queued", "test:statements", queued.decision_id)
    result = json.loads(rec.result)
    assert result["reason"] == "monthly statement of account for 2026-11" and result["closing_balance"] == "3000.00"
    assert result["delivery_id"] == queued.id and json.loads(rec.facts)["period"] == PERIOD

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
        later = outbox.run_once(book.service, settings)
    # the customer without a contact fails with the reason (retried); the other two are mailed once each
    assert (counts["sent"], counts["failed"], later["sent"]) == (2, 1, 0)
    mails = {rcpt[0]: email.message_from_bytes(raw, policy=email.policy.default) for _, rcpt, raw in inbox.received}
    assert sorted(mails) == ["ann@harbour.example", "zhang@yuanhang.example"]
    zh = mails["zhang@yuanhang.example"]
    assert "对账单" in zh["Subject"] and "¥3,000.00" in zh["Subject"]
    text = zh.get_body(preferencelist=("plain",)).get_content()
    assert "杭州远航贸易有限公司" in text and "2026年11月1日" in text and "期末余额:¥3,000.00" in text
    (pdf,) = list(zh.iter_attachments())
    assert pdf.get_content_type() == "application/pdf" and "statement" in pdf.get_filename()
    pdf_text = _pdf_text(tmp_path, pdf.get_content())
    assert "对账单" in pdf_text and "杭州远航贸易有限公司" in pdf_text
    en = mails["ann@harbour.example"]
    assert en["Subject"].startswith("Statement of account") and "1,250.50" in en["Subject"]

    sent = _statement(book, book.reached)
    assert (sent.status, sent.attempts, sent.recipient) == ("sent", 1, "z***@yuanhang.example")
    assert sent.idempotency_key in zh["Message-ID"]
    rec = _records(book, book.reached, "delivery")[-1]
    body = json.loads(rec.result)
    assert (rec.outcome, body["statement_period"], body["action_id"]) == ("sent", PERIOD, None)
    assert "zhang@" not in rec.result and book.get("/v1/audit/verify", role="auditor").json()["ok"] is True
    nocontact = _statement(book, book.unreached)
    assert (nocontact.status, nocontact.last_error_code) == ("failed", "E_DELIVERY_NO_CONTACT")
    listing = book.get("/v1/outbox", role="controller", params={"customer": book.reached}).json()["deliveries"]
    assert [(d["kind"], d["statement_period"], d["action_id"], d["status"]) for d in listing] == [
        ("statement", PERIOD, None, "sent")
    ]


def test_a_month_not_over_is_refused_and_nothing_is_queued(book):
    from api.errors import DomainError

    for period in ("2026-12", "2026-13", "Nov 2026"):
        with pytest.raises(DomainError) as err:
            statements.queue_statements(book.service, NOW.date(), "test", period=period)
        assert err.value.code == "E_INPUT_INVALID" and "period" in err.value.errors
    with book.service.read_tx() as s:
        assert s.execute(select(Delivery).where(Delivery.statement_period.is_not(None))).first() is None


def test_the_scheduler_job_and_the_cli_queue_the_month_once_between_them(book, tmp_path, capsys):
    from api.cli import main
    from api.jobs import scheduler

    scheduler._service = book.service
    result = scheduler.monthly_statements(dt.date(2026, 12, 1), folder=str(tmp_path))
    assert result["outcome"] == "ok", result
    assert result["detail"]["outbox"]["queued"] == 2 and result["detail"]["statements"] >= 2
    assert (tmp_path / PERIOD / f"{book.reached}.csv").is_file()  # the CSVs as before
    (rec,) = _records(book, book.reached, "statement")
    assert rec.actor == "scheduler:monthly-statements"
    args = [
        "statements",
        "--database-url",
        book.database_url,
        "--policy",
        POLICY_FILE,
        "--as-of",
        "2026-12-15",
        "--reason",
        "月度对账",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["period"], out["queued"], out["already_queued"]) == (PERIOD, 0, 2)
    assert main(args[:-4] + ["--period", "2026-12", "--as-of", "2026-12-15"]) == 1
    assert "E_INPUT_INVALID: period: 2026-12 has not ended" in capsys.readouterr().err
    assert len(_records(book, book.reached, "statement")) == 1


def test_a_dead_letter_is_requeued_with_a_reason_and_sent_once_by_the_next_round(book):
    with Receiver(fail=10_000) as receiver:
        settings = _settings(book, {"backend": "webhook", "webhook": {"url": receiver.url, "timeout": 5}})
        for _ in range(3):
            outbox.run_once(book.service, settings)
            book.clock.advance(3600)
        dead = [
            d
            for d in book.get("/v1/outbox", role="controller", params={"status": "dead"}).json()["deliveries"]
            if d["customer_id"] == book.reached
        ]
        assert [(d["status"], d["attempts"]) for d in dead] == [("dead", 3)]
        dead_id = dead[0]["id"]
        metrics = book.get("/metrics", role=None).text
        assert "creditctl_outbox_dead_letters 2.0" in metrics and "creditctl_outbox_dead_total 2.0" in metrics

        # refused: no reason (nothing changes), a role without outbox:write, an unknown id
        before = book.counts()
        r = book.post(f"/v1/outbox/{dead_id}/requeue", {}, role="controller")
        assert r.status_code == 422 and "reason" in r.json()["errors"]
        assert book.post(f"/v1/outbox/{dead_id}/requeue", {"reason": "   "}, role="controller").status_code == 422
        assert book.post(f"/v1/outbox/{dead_id}/requeue", {"reason": "x"}, role="sales").status_code == 403
        assert book.post(f"/v1/outbox/{dead_id}/requeue", {"reason": "x"}, role="auditor").status_code == 403
        missing = book.post("/v1/outbox/999999/requeue", {"reason": "x"}, role="controller")
        assert (missing.status_code, missing.json()["code"]) == (404, "E_NOT_FOUND")
        assert book.counts() == before

        receiver.fail = 0  # the receiver is fixed
        r = book.post(f"/v1/outbox/{dead_id}/requeue", {"reason": "接收方已修复 / receiver fixed"}, role="backoffice")
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["status"], body["attempts"], body["requeues"], body["before"]["status"]) == (
            "queued",
            3,
            1,
            "dead",
        )
        again = book.post(f"/v1/outbox/{dead_id}/requeue", {"reason": "twice"}, role="controller")
        assert (again.status_code, again.json()["code"]) == (409, "E_DELIVERY_NOT_DEAD")
        assert "queued" in again.json()["message"]
        action = book.get("/v1/actions", role="backoffice", params={"status": "queued", "customer": book.reached})
        assert [a["delivery"]["status"] for a in action.json()["actions"]] == ["queued"]

        seen = len(receiver.requests)
        first = outbox.run_once(book.service, settings)
        second = outbox.run_once(book.service, settings)
    assert (first["sent"], second["sent"]) == (1, 0) and len(receiver.requests) == seen + 1
    ours = [r for r in receiver.requests if json.loads(r["body"])["action"]["customer_id"] == book.reached]
    assert len({r["headers"]["Idempotency-Key"] for r in ours}) == 1  # the same key as before it died
    sent = book.get("/v1/outbox", role="controller", params={"status": "sent"}).json()["deliveries"]
    assert [(d["id"], d["attempts"]) for d in sent] == [(dead_id, 4)]
    (requeued,) = [rec for rec in _records(book, book.reached, "delivery") if rec.outcome == "requeued"]
    assert requeued.actor == "test-backoffice"
    assert json.loads(requeued.facts)["reason"] == "接收方已修复 / receiver fixed"
    assert json.loads(requeued.result)["before"]["attempts"] == 3
    assert [rec.outcome for rec in _records(book, book.reached, "delivery")] == ["dead", "requeued", "sent"]
    with book.service.read_tx() as s:
        assert (
            s.execute(
                select(Action.status).where(Action.customer_id == book.reached, Action.owner == "automated")
            ).scalar_one()
            == "sent"
        )
    metrics = book.get("/metrics", role=None).text
    # the dead letter left the gauge; the counter of deaths never goes down
    assert "creditctl_outbox_dead_letters 1.0" in metrics and "creditctl_outbox_dead_total 2.0" in metrics
    assert book.get("/v1/audit/verify", role="auditor").json()["ok"] is True


def test_requeue_refuses_a_dead_letter_whose_action_was_closed_meanwhile(book):
    with Receiver(fail=10_000) as receiver:
        settings = _settings(book, {"backend": "webhook", "webhook": {"url": receiver.url, "timeout": 5}})
        for _ in range(3):
            outbox.run_once(book.service, settings)
            book.clock.advance(3600)
    dead_id = next(
        d["id"]
        for d in book.get("/v1/outbox", role="controller", params={"status": "dead"}).json()["deliveries"]
        if d["customer_id"] == book.reached
    )
    with book.service.tx() as s:  # the customer paid; a controller closed the action by hand
        s.execute(update(Action).where(Action.customer_id == book.reached).values(status="done", outcome="paid"))
    before = book.counts()
    r = book.post(f"/v1/outbox/{dead_id}/requeue", {"reason": "try again"}, role="controller")
    assert (r.status_code, r.json()["code"]) == (409, "E_DELIVERY_OBSOLETE") and "done" in r.json()["message"]
    assert book.counts() == before


def test_creditctl_deliver_requeue_sends_a_dead_statement_again(book, capsys):
    from api.cli import main

    _only_statements(book)
    statements.queue_statements(book.service, NOW.date(), "test")
    inbox = Inbox(refuse=frozenset({"zhang@yuanhang.example"}))  # a refused address: dead at once
    with smtp_server(inbox) as port:
        settings = _settings(
            book,
            {
                "backend": "smtp",
                "smtp": {"host": "127.0.0.1", "port": port, "timeout": 10, "sender": "ar@huadong.example"},
            },
        )
        outbox.run_once(book.service, settings)
        dead = _statement(book, book.reached)
        assert (dead.status, dead.attempts) == ("dead", 1)
        base = ["deliver", "--database-url", book.database_url, "--policy", POLICY_FILE]
        assert main(base + ["--requeue", str(dead.id)]) == 2  # a requeue needs a reason
        assert "--reason" in capsys.readouterr().err
        assert main(base + ["--requeue", str(dead.id), "--reason", "地址已更正"]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert (out["id"], out["status"], out["kind"], out["statement_period"]) == (
            dead.id,
            "queued",
            "statement",
            PERIOD,
        )
        assert main(base + ["--requeue", str(dead.id), "--reason", "again"]) == 4
        assert "E_DELIVERY_NOT_DEAD" in capsys.readouterr().err
        inbox.refuse = frozenset()
        counts = outbox.run_once(book.service, settings)
    assert counts["sent"] == 1 and [rcpt for _, rcpt, _ in inbox.received] == [["zhang@yuanhang.example"]]
    sent = _statement(book, book.reached)
    assert (sent.status, sent.attempts, sent.requeues) == ("sent", 2, 1)
    (requeued,) = [rec for rec in _records(book, book.reached, "delivery") if rec.outcome == "requeued"]
    assert requeued.actor.startswith("cli:") and json.loads(requeued.facts)["statement_period"] == PERIOD


def test_healthz_and_metrics_show_the_oldest_waiting_message_and_the_dead_letters(book):
    # the sweep queued two reminders at NOW that no worker picked up yet: they wait since their due day
    health = book.get("/healthz", role=None).json()
    assert health["status"] == "ok" and health["outbox"]["dead_letters"] == 0
    assert (
        health["outbox"]["oldest_queued_age_seconds"]
        == (NOW - dt.datetime.combine(NOW.date(), dt.time())).total_seconds()
    )
    settings = _settings(book, {"backend": "log"})
    outbox.run_once(book.service, settings)  # one sent, the one without a contact failed: it waits
    book.clock.advance(1800)
    health = book.get("/healthz", role=None).json()["outbox"]
    assert health == {"oldest_queued_age_seconds": 1800.0, "dead_letters": 0}
    assert "creditctl_outbox_oldest_queued_age_seconds 1800.0" in book.get("/metrics", role=None).text
    for _ in range(3):
        book.clock.advance(3600)
        outbox.run_once(book.service, settings)
    health = book.get("/healthz", role=None).json()["outbox"]
    assert health == {"oldest_queued_age_seconds": None, "dead_letters": 1}  # nothing waits; one is dead
    metrics = book.get("/metrics", role=None).text
    assert (
        "creditctl_outbox_oldest_queued_age_seconds 0.0" in metrics and "creditctl_outbox_dead_letters 1.0" in metrics
    )
