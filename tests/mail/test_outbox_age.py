"""Mail waits out an SMTP outage the way an MTA does: temporary failures (4xx, no connection)
are retried with backoff for OUTBOX_MAX_AGE after the message was queued (5 days by default),
however many attempts that takes; a 5xx still fails at once. Campaign deliveries follow the
same rule. The dashboard says how much mail has failed or has waited more than an hour."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from service.campaigns.models import Delivery
from service.db import utcnow
from service.mail.models import OutboxMessage
from service.mail.outbox import OutboxWorker, queue_email
from service.mail.transport import SmtpTransport
from service.settings import Settings, SettingsError
from service.worker import WorkerContext, default_loops
from tests.conftest import Database
from tests.factories import add_subscriber, deliveries, make_campaign, sender_for
from tests.smtp import SmtpServer

DAY = dt.timedelta(days=1)


async def _queue(db: Database, *, age: dt.timedelta, attempts: int = 0) -> int:
    async with db.sessions.begin() as session:
        row = await queue_email(session, kind="test", sender="Clinic <hello@clinic.test>", to="ana@example.org",
                                subject="Check", template="smtp_check", ctx={"org_name": "Clinic", "sent_at": "now"})
        row.created_at = utcnow() - age
        row.attempts = attempts
    return row.id


async def _row(db: Database) -> OutboxMessage:
    async with db.sessions() as session:
        return (await session.scalars(select(OutboxMessage))).one()


def _worker(db: Database, smtp: SmtpServer, **kw: object) -> OutboxWorker:
    return OutboxWorker(db.sessions, SmtpTransport(smtp.url, timeout=5), owner="w", **kw)  # type: ignore[arg-type]


async def test_a_message_is_retried_through_a_long_outage_whatever_the_attempts(db: Database, smtp: SmtpServer) -> None:
    """Two days and 40 attempts in (the old limit was 12 attempts, a few hours), still queued."""
    await _queue(db, age=2 * DAY, attempts=40)
    smtp.stop()
    worker = _worker(db, smtp)
    before = utcnow()
    assert await worker.run_once() == 1
    await worker.mailer.close()
    row = await _row(db)
    assert row.status == "queued" and row.attempts == 41
    assert before + dt.timedelta(minutes=29) <= row.next_attempt_at <= utcnow() + dt.timedelta(hours=1)


async def test_the_last_try_falls_at_the_age_limit_then_the_message_fails(db: Database, smtp: SmtpServer) -> None:
    await _queue(db, age=5 * DAY - dt.timedelta(minutes=10), attempts=30)
    smtp.handler.behaviour.data_failures = ["421 4.3.2 busy"] * 2
    worker = _worker(db, smtp)
    await worker.run_once()
    row = await _row(db)
    assert row.status == "queued"
    assert row.next_attempt_at == row.created_at + 5 * DAY  # not an hour later: the limit holds
    async with db.sessions.begin() as session:  # time passes: the last try is due
        await session.execute(update(OutboxMessage).values(created_at=utcnow() - 5 * DAY,
                                                           next_attempt_at=utcnow()))
    await worker.run_once()
    await worker.mailer.close()
    row = await _row(db)
    assert row.status == "failed"
    assert row.last_error == "gave up after 32 attempts over 5 days: 421 4.3.2 busy"
    assert smtp.received == []


async def test_a_5xx_still_fails_at_once(db: Database, smtp: SmtpServer) -> None:
    await _queue(db, age=dt.timedelta(0))
    smtp.handler.behaviour.refuse_recipients = {"ana@example.org": "550 5.1.1 no such user"}
    worker = _worker(db, smtp)
    await worker.run_once()
    await worker.mailer.close()
    row = await _row(db)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "550 5.1.1 no such user")


async def test_the_worker_loop_uses_outbox_max_age(db: Database, smtp: SmtpServer, settings: Settings) -> None:
    await _queue(db, age=dt.timedelta(hours=2), attempts=1)
    smtp.stop()
    mailer = SmtpTransport(smtp.url, timeout=5)
    ctx = WorkerContext(settings.with_(outbox_max_age=3600, smtp_url=smtp.url), db.sessions, mailer)
    (outbox_loop,) = [loop for loop in default_loops(ctx.settings) if loop.name == "outbox"]
    assert await outbox_loop.job(ctx) == 1
    await mailer.close()
    row = await _row(db)
    assert row.status == "failed"
    assert (row.last_error or "").startswith("gave up after 2 attempts over 2 hours:")


@pytest.mark.parametrize(("value", "seconds"), [("5d", 432000), ("12h", 43200), ("30m", 1800), ("3600s", 3600),
                                                ("3600", 3600), (" 2D ", 172800)])
def test_outbox_max_age_accepts_durations(value: str, seconds: int) -> None:
    env = {"DATABASE_URL": "postgresql://u@db/t", "SECRET_KEY": "k" * 20 + "0123456789abcdefghijkl",
           "OUTBOX_MAX_AGE": value}
    assert Settings.from_env(env, env_file=None).outbox_max_age == seconds


@pytest.mark.parametrize(("value", "message"), [
    ("five days", "OUTBOX_MAX_AGE: expected a duration such as 5d"),
    ("5w", "OUTBOX_MAX_AGE: expected a duration such as 5d"),
    ("-1d", "OUTBOX_MAX_AGE: expected a duration such as 5d"),
    ("30s", "OUTBOX_MAX_AGE: expected at least 60 seconds"),
])
def test_outbox_max_age_refuses_what_is_not_a_duration(value: str, message: str) -> None:
    env = {"DATABASE_URL": "postgresql://u@db/t", "SECRET_KEY": "k" * 20 + "0123456789abcdefghijkl",
           "OUTBOX_MAX_AGE": value}
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env, env_file=None)
    assert str(info.value).startswith(message)


def test_outbox_max_age_defaults_to_five_days() -> None:
    env = {"DATABASE_URL": "postgresql://u@db/t", "SECRET_KEY": "k" * 20 + "0123456789abcdefghijkl"}
    assert Settings.from_env(env, env_file=None).outbox_max_age == 5 * 86400


# -- campaign deliveries --------------------------------------------------------------------------


async def test_campaign_4xx_is_retried_until_the_age_limit_not_a_number_of_attempts(
    db: Database, settings: Settings, smtp: SmtpServer,
) -> None:
    await add_subscriber(db, "young@example.org")
    await add_subscriber(db, "old@example.org")
    campaign_id = await make_campaign(db, settings)
    async with db.sessions.begin() as session:  # both have tried many times (the old limit was 8)
        await session.execute(update(Delivery).values(attempts=20))
        await session.execute(update(Delivery).where(Delivery.email == "old@example.org")
                              .values(created_at=utcnow() - 6 * DAY))
    smtp.handler.behaviour.refuse_recipients = {"young@example.org": "451 4.7.1 try later",
                                                "old@example.org": "451 4.7.1 try later"}
    sender = sender_for(db, settings, smtp.url)
    assert await sender.send_batch(campaign_id) == 2
    await sender.transport.close()
    rows = {r.email: r for r in await deliveries(db, campaign_id)}
    assert rows["young@example.org"].status == "queued" and rows["young@example.org"].attempts == 21
    assert rows["old@example.org"].status == "failed"
    assert rows["old@example.org"].smtp_response == "gave up after 21 attempts: 451 4.7.1 try later"
