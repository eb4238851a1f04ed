"""The durable outbox delivers through a real SMTP server, survives outages, retries 4xx,
fails 5xx with the server's answer, and never hands one message to two workers."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select, update

from service.db import utcnow
from service.mail.models import MailboxMessage, OutboxMessage
from service.mail.outbox import OutboxWorker, queue_email
from service.mail.transport import LocalMailboxTransport, SmtpTransport
from tests.conftest import Database
from tests.smtp import SmtpServer


async def _queue(db: Database, n: int = 1, to: str = "ana@example.org") -> list[int]:
    async with db.sessions.begin() as session:
        rows = [
            await queue_email(
                session, kind="test", sender="Clinic <hello@clinic.test>", to=to.format(i=i),
                subject=f"Check {i}", template="smtp_check", ctx={"org_name": "Clinic", "sent_at": "now"},
                reply_to="team@clinic.test", headers={"X-Tidings-Kind": "test"},
            )
            for i in range(n)
        ]
    return [r.id for r in rows]


async def _rows(db: Database) -> list[OutboxMessage]:
    async with db.sessions() as session:
        return list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


def _worker(db: Database, smtp: SmtpServer, **kw: object) -> OutboxWorker:
    return OutboxWorker(db.sessions, SmtpTransport(smtp.url, concurrency=2, timeout=5), owner="w1",
                        **kw)  # type: ignore[arg-type]


async def test_queued_message_is_delivered_with_both_parts_and_headers(db: Database, smtp: SmtpServer) -> None:
    await _queue(db)
    worker = _worker(db, smtp)
    assert await worker.drain() == 1
    await worker.mailer.close()
    assert len(smtp.received) == 1
    got = smtp.received[0]
    assert got.sender == "hello@clinic.test" and got.recipients == ["ana@example.org"]
    msg = got.message
    assert msg["Subject"] == "Check 0" and msg["Reply-To"] == "team@clinic.test"
    assert msg["X-Tidings-Kind"] == "test"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    (row,) = await _rows(db)
    assert row.status == "sent" and row.sent_at is not None
    assert row.message_id == msg["Message-ID"]
    assert row.smtp_response and row.smtp_response.startswith("2.0.0 queued")


async def test_smtp_down_keeps_message_queued_until_server_returns(db: Database, smtp: SmtpServer) -> None:
    await _queue(db)
    smtp.stop()
    worker = _worker(db, smtp, backoff_base=0.01)
    await worker.run_once()
    (row,) = await _rows(db)
    assert row.status == "queued" and row.attempts == 1
    assert row.last_error and "Connect" in row.last_error
    smtp.start()
    await asyncio.sleep(0.05)
    assert await worker.drain() == 1
    await worker.mailer.close()
    (row,) = await _rows(db)
    assert row.status == "sent" and row.attempts == 2
    assert len(smtp.received) == 1


async def test_4xx_is_retried_with_backoff_then_delivered(db: Database, smtp: SmtpServer) -> None:
    await _queue(db)
    smtp.handler.behaviour.data_failures = ["451 4.3.0 mailbox busy, try later"]
    worker = _worker(db, smtp, backoff_base=60)
    before = utcnow()
    await worker.run_once()
    (row,) = await _rows(db)
    assert row.status == "queued" and row.last_error == "451 4.3.0 mailbox busy, try later"
    assert before + dt.timedelta(seconds=29) < row.next_attempt_at <= before + dt.timedelta(seconds=61)
    assert await worker.run_once() == 0  # not due yet
    async with db.sessions.begin() as s:
        await s.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
    assert await worker.drain() == 1
    await worker.mailer.close()
    (row,) = await _rows(db)
    assert row.status == "sent" and len(smtp.received) == 1


async def test_5xx_fails_with_the_servers_answer(db: Database, smtp: SmtpServer) -> None:
    await _queue(db, to="nobody@example.org")
    smtp.handler.behaviour.refuse_recipients = {"nobody@example.org": "550 5.1.1 no such user"}
    worker = _worker(db, smtp)
    await worker.drain()
    await worker.mailer.close()
    (row,) = await _rows(db)
    assert row.status == "failed"
    assert row.last_error == "550 5.1.1 no such user"
    assert smtp.received == []


async def test_dropped_connection_is_retried(db: Database, smtp: SmtpServer) -> None:
    await _queue(db, 3, to="c{i}@example.org")
    smtp.handler.behaviour.drop_connections = 2
    worker = _worker(db, smtp, backoff_base=0)
    await worker.drain()
    await worker.mailer.close()
    assert {r.status for r in await _rows(db)} == {"sent"}
    assert sorted(r.recipients[0] for r in smtp.received) == ["c0@example.org", "c1@example.org", "c2@example.org"]


async def test_expired_lease_of_a_dead_worker_is_taken_over(db: Database, smtp: SmtpServer) -> None:
    await _queue(db)
    async with db.sessions.begin() as s:  # a worker claimed it, then died
        await s.execute(update(OutboxMessage).values(
            status="sending", lease_owner="dead", lease_expires_at=utcnow() - dt.timedelta(seconds=1), attempts=1))
    worker = _worker(db, smtp)
    assert await worker.drain() == 1
    await worker.mailer.close()
    (row,) = await _rows(db)
    assert row.status == "sent" and row.attempts == 2 and len(smtp.received) == 1


async def test_live_lease_is_not_taken_over(db: Database, smtp: SmtpServer) -> None:
    await _queue(db)
    async with db.sessions.begin() as s:
        await s.execute(update(OutboxMessage).values(
            status="sending", lease_owner="alive", lease_expires_at=utcnow() + dt.timedelta(minutes=5)))
    worker = _worker(db, smtp)
    assert await worker.drain() == 0
    await worker.mailer.close()
    assert smtp.received == []


@pytest.mark.slow  # 500 messages through real SMTP
async def test_two_workers_deliver_500_messages_exactly_once(db: Database, smtp: SmtpServer) -> None:
    await _queue(db, 500, to="reader{i}@example.org")
    transports = [SmtpTransport(smtp.url, concurrency=4, timeout=10) for _ in range(2)]
    workers = [OutboxWorker(db.sessions, t, owner=f"w{i}", batch_size=25) for i, t in enumerate(transports)]
    counts = await asyncio.gather(*(w.drain() for w in workers))
    for t in transports:
        await t.close()
    assert sum(counts) == 500
    assert all(c > 0 for c in counts), f"one worker did all the work: {counts}"
    recipients = [r.recipients[0] for r in smtp.received]
    assert len(recipients) == 500 and len(set(recipients)) == 500
    async with db.sessions() as s:
        sent = await s.scalar(select(func.count()).where(OutboxMessage.status == "sent"))
    assert sent == 500


async def test_local_mailbox_transport_keeps_messages_readable(db: Database) -> None:
    await _queue(db, 2, to="m{i}@example.org")
    worker = OutboxWorker(db.sessions, LocalMailboxTransport(db.sessions), owner="local")
    assert await worker.drain() == 2
    async with db.sessions() as s:
        stored = (await s.scalars(select(MailboxMessage).order_by(MailboxMessage.id))).all()
    assert sorted((m.recipients, m.subject) for m in stored) == [
        ("m0@example.org", "Check 0"), ("m1@example.org", "Check 1")]
    assert all(b"multipart/alternative" in m.raw for m in stored)
    assert {r.status for r in await _rows(db)} == {"sent"}
