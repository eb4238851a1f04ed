"""Queued mail is rendered by the worker when it is sent: the request only checks the headers and
fixes the Message-ID; a broken template fails its own message, never the worker."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from service.mail.message import HeaderInjectionError
from service.mail.models import OutboxMessage
from service.mail.outbox import OutboxWorker, queue_email
from service.mail.transport import SmtpTransport
from service.settings import Settings
from tests.conftest import Database
from tests.smtp import SmtpServer


async def _queue(db: Database, **changes: object) -> int:
    args: dict[str, object] = {
        "kind": "test", "sender": "Clinic <hello@clinic.test>", "to": "ana@example.org", "subject": "Check",
        "template": "smtp_check", "ctx": {"org_name": "Clinic Ünïcode", "sent_at": "today"},
        "reply_to": "team@clinic.test", "headers": {"X-Tidings-Kind": "test"},
    }
    args.update(changes)
    async with db.sessions.begin() as session:
        row = await queue_email(session, **args)  # type: ignore[arg-type]
        return row.id


async def _row(db: Database, ident: int) -> OutboxMessage:
    async with db.sessions() as session:
        row = await session.get(OutboxMessage, ident)
        assert row is not None
        return row


async def _count(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


async def _drain(db: Database, smtp: SmtpServer, owner: str = "w1") -> int:
    worker = OutboxWorker(db.sessions, SmtpTransport(smtp.url, concurrency=2, timeout=5), owner=owner)
    try:
        return await worker.drain()
    finally:
        await worker.mailer.close()


async def test_a_queued_message_is_rendered_at_send_with_the_message_id_fixed_when_queued(
        db: Database, smtp: SmtpServer) -> None:
    ident = await _queue(db)
    queued = await _row(db, ident)
    assert queued.raw is None and queued.template == "smtp_check" and queued.message_id.endswith("@clinic.test>")
    assert await _drain(db, smtp) == 1
    (got,) = smtp.received
    msg = got.message
    assert msg["Message-ID"] == queued.message_id
    assert msg["Subject"] == "Check" and msg["Reply-To"] == "team@clinic.test" and msg["X-Tidings-Kind"] == "test"
    text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Clinic Ünïcode" in text
    sent = await _row(db, ident)
    assert sent.status == "sent" and sent.raw is not None  # the bytes that went out are kept
    assert f"Message-ID: {queued.message_id}".encode() in sent.raw


async def test_a_resend_after_a_crash_is_the_same_message(db: Database, smtp: SmtpServer) -> None:
    ident = await _queue(db)
    assert await _drain(db, smtp, owner="w1") == 1
    # w1 "crashed" after the SMTP answer, before committing `sent`: its lease runs out
    async with db.sessions.begin() as session:
        await session.execute(update(OutboxMessage).where(OutboxMessage.id == ident).values(
            status="sending", raw=None, lease_owner="w1",
            lease_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert await _drain(db, smtp, owner="w2") == 1
    first, second = (r.message for r in smtp.received)
    assert first["Message-ID"] == second["Message-ID"] and first["Date"] == second["Date"]
    assert first.get_body(preferencelist=("plain",)).get_content() == \
        second.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]


async def test_a_template_error_at_send_fails_that_message_with_the_reason_and_the_worker_goes_on(
        db: Database, smtp: SmtpServer) -> None:
    broken = await _queue(db, ctx={"org_name": "Clinic"}, subject="Broken")  # `sent_at` missing
    good = await _queue(db, subject="Good")
    assert await _drain(db, smtp) == 2
    assert [r.message["Subject"] for r in smtp.received] == ["Good"]
    failed = await _row(db, broken)
    assert failed.status == "failed" and failed.raw is None
    assert failed.last_error and "could not render" in failed.last_error and "sent_at" in failed.last_error
    assert (await _row(db, good)).status == "sent"
    assert await _drain(db, smtp) == 0  # a failed message is not retried by itself


@pytest.mark.parametrize("changes", [
    {"subject": "Hi\r\nBcc: victim@evil.test"},
    {"to": "ana@example.org\nBcc: victim@evil.test"},
    {"reply_to": "a@b.test\r\nX: y"},
    {"headers": {"X-Tidings-Kind": "test\rBcc: victim@evil.test"}},
    {"sender": "Clinic <hello@clinic.test>\x00"},
])
async def test_a_line_break_in_a_header_is_refused_when_queued(db: Database, changes: dict[str, object]) -> None:
    with pytest.raises(HeaderInjectionError):
        await _queue(db, **changes)
    assert await _count(db) == 0


async def test_an_unknown_template_or_a_context_that_is_not_json_is_refused_when_queued(db: Database) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        await _queue(db, template="no_such_template")
    with pytest.raises(ValueError, match="template name"):
        await _queue(db, template="../inquiries/contact")
    with pytest.raises(TypeError):
        await _queue(db, ctx={"org_name": object(), "sent_at": "now"})
    assert await _count(db) == 0


async def test_the_admin_outbox_shows_a_queued_message_rendered_on_demand_and_why_a_broken_one_failed(
        settings: Settings, db: Database, smtp: SmtpServer) -> None:
    from service.app import create_app
    from tests.factories import make_staff, signed_in_client

    queued = await _queue(db, subject="Still queued")
    broken = await _queue(db, ctx={"org_name": "Clinic"}, subject="Broken")
    async with db.sessions.begin() as session:  # only the broken one is due now
        await session.execute(update(OutboxMessage).where(OutboxMessage.id == queued).values(
            next_attempt_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)))
    assert await _drain(db, smtp) == 1
    app = create_app(settings.with_(smtp_url=smtp.url), sessions=db.sessions)
    async with signed_in_client(app, await make_staff(db)) as client:
        page = await client.get(f"/admin/outbox/{queued}")
        assert page.status_code == 200 and "Still queued" in page.text and "Clinic Ünïcode" in page.text
        frame = await client.get(f"/admin/outbox/{queued}/html")
        assert frame.status_code == 200 and "Clinic Ünïcode" in frame.text
        failed = await client.get(f"/admin/outbox/{broken}")
        assert failed.status_code == 200 and "cannot be rendered" in failed.text and "sent_at" in failed.text
    assert (await _row(db, queued)).raw is None  # showing it rendered nothing into the row
