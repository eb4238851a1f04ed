"""An SMTP outage delays the inquiry emails and loses none; the visitor never waits on SMTP."""

from __future__ import annotations

import asyncio

import httpx

from service.mail.outbox import OutboxWorker
from service.mail.transport import SmtpTransport
from tests.conftest import Database
from tests.factories import outbox_messages, post_form, stored_inquiries
from tests.smtp import SmtpServer


async def test_smtp_down_at_submission_still_thanks_client_and_mail_goes_out_later(
    client: httpx.AsyncClient, db: Database, smtp: SmtpServer
) -> None:
    smtp.stop()
    r = await post_form(client)
    assert r.status_code == 303 and r.headers["location"] == "/contact/thanks"
    assert len(await stored_inquiries(db)) == 1
    mailer = SmtpTransport(smtp.url, concurrency=2, timeout=5)
    worker = OutboxWorker(db.sessions, mailer, owner="t", backoff_base=0.01)
    try:
        await worker.run_once()
        rows = await outbox_messages(db)
        assert [r.status for r in rows] == ["queued", "queued"] and all(r.last_error for r in rows)
        assert smtp.received == []
        smtp.start()
        await asyncio.sleep(0.05)
        assert await worker.drain() == 2
    finally:
        await mailer.close()
    assert sorted(m.recipients[0] for m in smtp.received) == ["ana@example.org", "staff@clinic.test"]
    assert [r.status for r in await outbox_messages(db)] == ["sent", "sent"]
