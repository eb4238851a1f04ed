"""The dashboard tells staff when transactional mail needs a look: how many messages failed and
how many have waited more than an hour (an SMTP outage), each linking to the filtered outbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from service.app import create_app
from service.db import utcnow
from service.mail.models import OutboxMessage
from service.mail.outbox import OutboxWorker, queue_email
from service.mail.transport import SmtpTransport
from tests.conftest import Database, make_settings
from tests.smtp import SmtpServer


@pytest.fixture
def app(db: Database, smtp: SmtpServer) -> Any:
    return create_app(make_settings(db, smtp_url=smtp.url), sessions=db.sessions)


async def _queue(db: Database, to: str, *, age: dt.timedelta = dt.timedelta(0)) -> int:
    async with db.sessions.begin() as session:
        row = await queue_email(session, kind="test", sender="Clinic <hello@clinic.test>", to=to, subject=f"For {to}",
                                template="smtp_check", ctx={"org_name": "Clinic", "sent_at": "now"})
        row.created_at = utcnow() - age
    return row.id


async def _send(db: Database, smtp: SmtpServer) -> None:
    worker = OutboxWorker(db.sessions, SmtpTransport(smtp.url, timeout=5), owner="t")
    await worker.run_once()
    await worker.mailer.close()


async def test_dashboard_counts_failed_and_long_waiting_mail(
    admin_client: httpx.AsyncClient, db: Database, smtp: SmtpServer,
) -> None:
    r = await admin_client.get("/admin/")
    assert r.status_code == 200 and 'id="mail-trouble"' not in r.text  # nothing to say

    await _queue(db, "gone@example.org")
    smtp.handler.behaviour.refuse_recipients = {"gone@example.org": "550 5.1.1 no such user"}
    await _send(db, smtp)  # failed at once (5xx)
    await _queue(db, "late@example.org", age=dt.timedelta(hours=2))
    await _queue(db, "fresh@example.org", age=dt.timedelta(minutes=5))
    smtp.stop()
    await _send(db, smtp)  # the server is down: both stay queued
    smtp.start()

    r = await admin_client.get("/admin/")
    assert 'id="mail-trouble"' in r.text
    assert '<a href="/admin/outbox?status=failed">1 message failed</a>' in r.text
    assert '<a href="/admin/outbox?status=queued">1 message has waited more than an hour</a>' in r.text
    assert "retried for 5 days" in r.text

    failed = await admin_client.get("/admin/outbox?status=failed")
    assert "gone@example.org" in failed.text and "550 5.1.1 no such user" in failed.text
    assert "late@example.org" not in failed.text
    queued = await admin_client.get("/admin/outbox?status=queued")
    assert "late@example.org" in queued.text and "fresh@example.org" in queued.text

    async with db.sessions.begin() as session:  # the server is back and everything went out
        await session.execute(update(OutboxMessage).values(status="sent"))
    r = await admin_client.get("/admin/")
    assert 'id="mail-trouble"' not in r.text
