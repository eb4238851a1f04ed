"""No email address reaches the logs: SMTP answers that quote the refused address are logged with
the domain only, while the failure reason kept for staff keeps the server's whole answer. Real
sends refused by the real SMTP server, read from the real log records."""

from __future__ import annotations

import io
import logging

import pytest
from sqlalchemy import select

from service.mail.models import OutboxMessage
from service.mail.outbox import OutboxWorker, queue_email
from service.mail.redact import redact, redact_handlers
from service.mail.transport import SmtpTransport
from service.settings import Settings
from tests.conftest import Database
from tests.factories import add_subscriber, deliveries, make_campaign, sender_for
from tests.smtp import SmtpServer

PAT = "pat.doe@example.org"


async def _queue_and_send(db: Database, smtp: SmtpServer) -> OutboxMessage:
    async with db.sessions.begin() as session:
        await queue_email(session, kind="test", sender="Clinic <hello@clinic.test>", to=f"Pat Doe <{PAT}>",
                          subject="Check", template="smtp_check", ctx={"org_name": "Clinic", "sent_at": "now"})
    worker = OutboxWorker(db.sessions, SmtpTransport(smtp.url, timeout=5), owner="t", backoff_base=0)
    await worker.run_once()
    await worker.mailer.close()
    async with db.sessions() as session:
        return (await session.scalars(select(OutboxMessage))).one()


async def test_a_5xx_quoting_the_address_is_logged_without_it(
    db: Database, smtp: SmtpServer, caplog: pytest.LogCaptureFixture,
) -> None:
    smtp.handler.behaviour.refuse_recipients = {PAT: f"550 5.1.1 <{PAT}>: recipient rejected"}
    with caplog.at_level(logging.WARNING, logger="tidings"):
        row = await _queue_and_send(db, smtp)
    assert row.status == "failed" and row.last_error == f"550 5.1.1 <{PAT}>: recipient rejected"  # staff see it
    assert "550 5.1.1 <…@example.org>: recipient rejected" in caplog.text
    assert "pat.doe" not in caplog.text


async def test_a_4xx_quoting_the_address_is_logged_without_it(
    db: Database, smtp: SmtpServer, caplog: pytest.LogCaptureFixture,
) -> None:
    smtp.handler.behaviour.refuse_recipients = {PAT: f"450 4.2.0 <{PAT}>: greylisted, try later"}
    with caplog.at_level(logging.WARNING, logger="tidings"):
        row = await _queue_and_send(db, smtp)
    assert row.status == "queued" and PAT in (row.last_error or "")
    assert "450 4.2.0 <…@example.org>: greylisted" in caplog.text
    assert "pat.doe" not in caplog.text


async def test_a_campaign_retry_is_logged_without_the_address(
    db: Database, settings: Settings, smtp: SmtpServer, caplog: pytest.LogCaptureFixture,
) -> None:
    await add_subscriber(db, PAT, name="Pat Doe")
    campaign_id = await make_campaign(db, settings)
    smtp.handler.behaviour.refuse_recipients = {PAT: f"451 4.7.1 <{PAT}> please retry"}
    sender = sender_for(db, settings, smtp.url)
    with caplog.at_level(logging.WARNING, logger="tidings"):
        await sender.send_batch(campaign_id)
    await sender.transport.close()
    (delivery,) = await deliveries(db, campaign_id)
    assert delivery.status == "queued"
    assert "451 4.7.1 <…@example.org> please retry" in caplog.text
    assert "pat.doe" not in caplog.text


def test_the_handlers_filter_redacts_any_log_line_and_traceback() -> None:
    """The net under every other log call (a worker loop's error, a library's message)."""
    stream = io.StringIO()
    logger = logging.getLogger("tidings.test_redaction")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    redact_handlers(logger)  # as the CLI does on the root logger's handlers
    try:
        logger.error("worker loop outbox failed: %s", f"duplicate key (email_key)=({PAT})")
        try:
            raise ValueError(f"cannot send to {PAT}")
        except ValueError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "duplicate key (email_key)=(…@example.org)" in out
    assert "ValueError: cannot send to …@example.org" in out
    assert "pat.doe" not in out


@pytest.mark.parametrize(("text", "shown"), [
    ("550 5.1.1 <pat@example.org> rejected", "550 5.1.1 <…@example.org> rejected"),
    ('RCPT "pat doe"@example.org, zoë@exämple.org', "RCPT …@example.org, …@exämple.org"),
    ("421 4.3.2 service not available", "421 4.3.2 service not available"),
])
def test_redact_keeps_the_domain_only(text: str, shown: str) -> None:
    assert redact(text) == shown
