"""Webhooks and the person's data: subscriber events from the newsletter's own paths (confirm
link, unsubscribe, the bounce policy), the delivery log's retention, and erasure."""

from __future__ import annotations

import datetime as dt

import httpx
from sqlalchemy import update

from service.bounces.policy import record
from service.db import utcnow
from service.loops import WorkerContext
from service.mail.transport import LocalMailboxTransport
from service.newsletter.tokens import unsubscribe_token
from service.privacy.erase import erase_inquiry, erase_subscriber
from service.settings import Settings
from service.tokens import Tokens
from service.webhooks.jobs import retention_job
from service.webhooks.models import WebhookDelivery
from tests.bounces.helpers import event
from tests.conftest import Database
from tests.factories import confirmed_subscriber, posted_id
from tests.smtp import SmtpServer
from tests.webhooks.helpers import add_endpoint, deliveries, drain
from tests.webhooks.receiver import Receiver


async def test_subscriber_events_from_confirm_unsubscribe_and_bounce(
        db: Database, settings: Settings, receiver: Receiver, client: httpx.AsyncClient, smtp: SmtpServer) -> None:
    await add_endpoint(db, settings, receiver, events=["subscriber.confirmed", "subscriber.unsubscribed",
                                                       "subscriber.bounced"])
    sub = await confirmed_subscriber(client, db, smtp, "ana@example.org")
    other = await confirmed_subscriber(client, db, smtp, "ben@example.org")
    tokens = Tokens(settings)
    r = await client.post(f"/unsubscribe/{unsubscribe_token(tokens, sub.id)}")
    assert r.status_code in (200, 303)
    async with db.sessions.begin() as session:
        await record(session, event("hard", "ben@example.org", source="webhook"), settings=settings)
    await drain(db, settings)
    got = [(r.payload["type"], r.payload["data"]["email"]) for r in receiver.received]
    assert got == [("subscriber.confirmed", "ana@example.org"), ("subscriber.confirmed", "ben@example.org"),
                   ("subscriber.unsubscribed", "ana@example.org"), ("subscriber.bounced", "ben@example.org")]
    assert all(r.verified for r in receiver.received)
    assert other.id in {r.payload["data"]["id"] for r in receiver.received}


async def test_the_log_keeps_nothing_past_the_inquiry_retention(
        db: Database, settings: Settings, receiver: Receiver, client: httpx.AsyncClient) -> None:
    await add_endpoint(db, settings, receiver, events=["inquiry.created"], trusted=True)
    await posted_id(client, db)
    await posted_id(client, db, email="second@example.org")
    await drain(db, settings)
    old, new = await deliveries(db)
    async with db.sessions.begin() as session:
        await session.execute(update(WebhookDelivery).where(WebhookDelivery.id == old.id).values(
            created_at=utcnow() - dt.timedelta(days=settings.inquiry_retention_days, minutes=1)))
    ctx = WorkerContext(settings, db.sessions, LocalMailboxTransport(db.sessions))
    assert await retention_job(ctx) == 1
    assert [d.id for d in await deliveries(db)] == [new.id]


async def test_erasure_takes_the_deliveries_about_the_person(
        db: Database, settings: Settings, receiver: Receiver, client: httpx.AsyncClient, smtp: SmtpServer) -> None:
    await add_endpoint(db, settings, receiver, events=["inquiry.created", "subscriber.confirmed"], trusted=True)
    inquiry_id = await posted_id(client, db, email="cleo@example.org")
    sub = await confirmed_subscriber(client, db, smtp, "dan@example.org")
    await drain(db, settings)
    assert len(await deliveries(db)) == 2
    tokens = Tokens(settings)
    async with db.sessions.begin() as session:
        assert await erase_inquiry(session, tokens=tokens, inquiry_id=inquiry_id)
    assert [d.event for d in await deliveries(db)] == ["subscriber.confirmed"]
    async with db.sessions.begin() as session:
        assert await erase_subscriber(session, tokens=tokens, subscriber_id=sub.id)
    assert await deliveries(db) == []
