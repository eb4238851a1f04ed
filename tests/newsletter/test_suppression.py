"""Who a campaign may mail, bounces and complaints, erasure (only a keyed hash stays, and no
import brings the address back), and the purge of signups whose link expired."""

from __future__ import annotations

import datetime as dt
import io

import httpx
from sqlalchemy import func, select

from service.db import utcnow
from service.mail.models import OutboxMessage
from service.mail.transport import LocalMailboxTransport
from service.newsletter import audience, flows, queries
from service.newsletter.importer import import_subscribers
from service.newsletter.models import Subscriber, SubscriberTopic, Suppression
from service.privacy.erase import erase_subscriber
from service.settings import Settings
from service.tokens import Tokens
from service.validation import email_key
from service.worker import WorkerContext, default_loops
from tests.conftest import Database
from tests.factories import confirmed_subscriber, set_fields, signup, subscriber
from tests.smtp import SmtpServer


async def _mailable(db: Database) -> list[str]:
    async with db.sessions() as session:
        return sorted((await session.scalars(
            select(Subscriber.email).where(audience.mailable()))).all())


async def test_only_confirmed_subscribers_are_mailable(client: httpx.AsyncClient, db: Database,
                                                      smtp: SmtpServer) -> None:
    for email in ("ok@example.org", "bounce@example.org", "spam@example.org", "gone@example.org"):
        await confirmed_subscriber(client, db, smtp, email)
    await signup(client, "pending@example.org")
    async with db.sessions.begin() as session:
        assert await flows.mark_bounced(session, email="Bounce@Example.org", reason="550 5.1.1 unknown user")
        sub = await queries.get_subscriber_by_email(session, email="spam@example.org")
        assert await flows.mark_complained(session, subscriber_id=sub.id)  # type: ignore[union-attr]
        gone = await queries.get_subscriber_by_email(session, email="gone@example.org")
        assert await flows.unsubscribe_subscriber(session, subscriber_id=gone.id, source="admin")  # type: ignore[union-attr]
        assert not await flows.mark_bounced(session, email="stranger@example.org", reason="550")
    assert await _mailable(db) == ["ok@example.org"]
    bounced = await subscriber(db, "bounce@example.org")
    assert bounced is not None and bounced.status == "bounced" and bounced.last_bounce == "550 5.1.1 unknown user"
    async with db.sessions.begin() as session:  # a later bounce never softens a complaint
        await flows.mark_bounced(session, email="spam@example.org", reason="552 mailbox full")
    assert (await subscriber(db, "spam@example.org")).status == "complained"  # type: ignore[union-attr]


async def test_erase_leaves_only_the_keyed_hash_and_no_import_brings_it_back(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings) -> None:
    sub = await confirmed_subscriber(client, db, smtp, "forget.me@example.org", name="Fran", topics=("PTSD",))
    tokens = Tokens(settings)
    async with db.sessions.begin() as session:
        assert await erase_subscriber(session, tokens=tokens, subscriber_id=sub.id)
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Subscriber)) == 0
        assert await session.scalar(select(func.count()).select_from(SubscriberTopic)) == 0
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 0  # their mail too
        (row,) = (await session.scalars(select(Suppression))).all()
    assert row.email_hash == tokens.keyed_hash("suppression", email_key("forget.me@example.org"))
    assert "forget" not in row.email_hash and row.reason == "erased"

    csv_file = io.BytesIO(b"email,name,status,signup_at\nFORGET.ME@example.org,Fran,confirmed,2024-01-01\n"
                          b"new@example.org,New,,\n")
    async with db.sessions.begin() as session:
        report = await import_subscribers(session, csv_file, settings=settings, tokens=tokens)
    assert report.added == 1 and report.skipped == {"erased": 1} and report.skipped_lines["erased"] == [2]
    assert await subscriber(db, "forget.me@example.org") is None


async def test_erased_hash_survives_a_key_rotation(db: Database, settings: Settings) -> None:
    async with db.sessions.begin() as session:
        await queries.add_suppression(session, tokens=Tokens(settings), email="old@example.org", reason="erased")
    rotated = settings.with_(secret_key="rotated-secret-key-0123456789-abcdefghijklmn",
                             secret_key_fallbacks=(settings.secret_key,))
    async with db.sessions.begin() as session:
        assert await queries.is_suppressed(session, tokens=Tokens(rotated), email="OLD@example.org")
        report = await import_subscribers(session, io.BytesIO(b"email\nold@example.org\n"), settings=rotated,
                                          tokens=Tokens(rotated))
    assert report.skipped == {"erased": 1} and report.added == 0


async def test_worker_purges_signups_whose_link_expired(client: httpx.AsyncClient, db: Database,
                                                       settings: Settings) -> None:
    for email in ("stale@example.org", "fresh@example.org", "cameback@example.org"):
        await signup(client, email, topics=("OCD",))
    old = utcnow() - dt.timedelta(days=8)
    await set_fields(db, "stale@example.org", confirmation_sent_at=old)
    await set_fields(db, "cameback@example.org", confirmation_sent_at=old, unsubscribed_at=old - dt.timedelta(days=30))
    async with db.sessions.begin() as session:
        # an imported pending row that was never sent a link stays until somebody sends one
        await import_subscribers(session, io.BytesIO(b"email\nimported@example.org\n"),
                                 settings=settings, tokens=Tokens(settings))
    (purge,) = [loop for loop in default_loops() if loop.name == "newsletter-purge"]
    ctx = WorkerContext(settings=settings, sessions=db.sessions, mailer=LocalMailboxTransport(db.sessions))
    assert await purge.job(ctx) == 2
    assert await purge.job(ctx) == 0
    assert await subscriber(db, "stale@example.org") is None
    assert (await subscriber(db, "fresh@example.org")).status == "pending"  # type: ignore[union-attr]
    assert (await subscriber(db, "imported@example.org")).status == "pending"  # type: ignore[union-attr]
    back = await subscriber(db, "cameback@example.org")
    assert back is not None and back.status == "unsubscribed"  # their record of leaving stays
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SubscriberTopic)) == 2


async def test_old_links_of_an_erased_subscriber_never_reach_the_next_one(
        client: httpx.AsyncClient, db: Database, smtp: SmtpServer, settings: Settings) -> None:
    from service.newsletter.tokens import unsubscribe_token

    sub = await confirmed_subscriber(client, db, smtp, "erased.newest@example.org")
    old_link = f"/unsubscribe/{unsubscribe_token(Tokens(settings), sub.id)}"
    async with db.sessions.begin() as session:
        await flows.erase_subscriber(session, tokens=Tokens(settings), subscriber_id=sub.id)
    await confirmed_subscriber(client, db, smtp, "stranger@example.org")
    stranger = await subscriber(db, "stranger@example.org")
    assert stranger is not None and stranger.id != sub.id  # ids are never handed out twice
    page = await client.get(old_link)
    assert page.status_code == 404 and "s•••r@example.org" not in page.text


async def test_topic_filter_counts_no_choice_as_every_topic(db: Database, settings: Settings) -> None:
    data = b"email,status,signup_at,topics\nall@example.org,confirmed,2024-01-01,\n" \
           b"ptsd@example.org,confirmed,2024-01-01,PTSD\nocd@example.org,confirmed,2024-01-01,OCD;anxiety\n"
    async with db.sessions.begin() as session:
        await import_subscribers(session, io.BytesIO(data), settings=settings, tokens=Tokens(settings))
    async with db.sessions() as session:
        stmt = select(Subscriber.email).where(audience.campaign_audience(["PTSD"]))
        wanted = (await session.scalars(stmt.order_by(Subscriber.email))).all()
    assert wanted == ["all@example.org", "ptsd@example.org"]
