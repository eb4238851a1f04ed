"""Retention: closed and spam inquiries go INQUIRY_RETENTION_DAYS after their last change, with
their notes, events and every stored copy of their emails; open or recently touched ones stay.
The audit log says how many went, never who."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select, text

from service.admin.models import AuditEvent
from service.db import utcnow
from service.mail.transport import LocalMailboxTransport
from service.privacy.retention import expire_inquiries
from service.settings import Settings
from service.worker import WorkerContext, default_loops
from tests.conftest import PG_URL, Database
from tests.factories import ROOMY, stored_inquiries
from tests.privacy.helpers import add_note, age_inquiry, copies_of, deliver_locally, ledger, submit


@pytest.fixture
def settings(db: Database) -> Settings:
    from tests.conftest import make_settings

    return make_settings(db, form_rate_limit=ROOMY, inquiry_retention_days=30)


async def test_retention_deletes_old_finished_inquiries_with_their_notes_and_mail(
        client: httpx.AsyncClient, db: Database, settings: Settings) -> None:
    old_closed = await submit(client, db, 1)
    old_spam = await submit(client, db, 2)
    recent_closed = await submit(client, db, 3)
    old_open = await submit(client, db, 4)
    noted_lately = await submit(client, db, 5)
    assert await deliver_locally(db) == 10  # staff notification and automatic reply of each
    await add_note(db, old_closed, "Called back; discussed her medication.")
    await age_inquiry(db, old_closed, status="closed", days=31)
    await age_inquiry(db, old_spam, status="spam", days=40)
    await age_inquiry(db, recent_closed, status="closed", days=29)
    await age_inquiry(db, old_open, status="contacted", days=400)
    await age_inquiry(db, noted_lately, status="closed", days=60)
    await add_note(db, noted_lately, "Still following up.", days_ago=2)
    for inquiry_id in (old_closed, old_spam):
        assert await copies_of(db, inquiry_id) == (2, 2)

    (loop,) = [loop for loop in default_loops(settings) if loop.name == "inquiry-retention"]
    ctx = WorkerContext(settings=settings, sessions=db.sessions, mailer=LocalMailboxTransport(db.sessions))
    assert await loop.job(ctx) == 2
    assert await loop.job(ctx) == 0  # nothing more is due

    assert [i.id for i in await stored_inquiries(db)] == [recent_closed, old_open, noted_lately]
    for inquiry_id in (old_closed, old_spam):
        assert await copies_of(db, inquiry_id) == (0, 0)
    for inquiry_id in (recent_closed, old_open, noted_lately):
        assert await copies_of(db, inquiry_id) == (2, 2)
    async with db.sessions() as session:
        (event,) = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "inquiry_retention"))).all()
    assert event.detail == {"deleted": 2, "retention_days": 30} and event.target_id == ""
    record = json.dumps([event.detail, event.target_id, event.actor_email, event.ip]).lower()
    assert "patient" not in record and "@" not in record
    assert [(e.kind, e.reason) for e in await ledger(db)] == [("inquiry", "retention")] * 2


async def test_retention_works_in_batches(client: httpx.AsyncClient, db: Database, settings: Settings) -> None:
    ids = [await submit(client, db, n) for n in range(3)]
    for inquiry_id in ids:
        await age_inquiry(db, inquiry_id, status="closed", days=365)
    async with db.sessions.begin() as session:
        assert await expire_inquiries(session, settings=settings, now=utcnow(), limit=2) == 2
    async with db.sessions.begin() as session:
        assert await expire_inquiries(session, settings=settings, now=utcnow(), limit=2) == 1
    assert await stored_inquiries(db) == []


# Two workers at once is a PostgreSQL matter (SQLite runs one writer at a time); CI always runs it.
@pytest.mark.parametrize("database", ["postgresql"] if PG_URL else [], indirect=True)
async def test_two_workers_never_expire_the_same_inquiry_twice(
        client: httpx.AsyncClient, db: Database, settings: Settings) -> None:
    ids = [await submit(client, db, n) for n in range(4)]
    for inquiry_id in ids:
        await age_inquiry(db, inquiry_id, status="closed", days=365)
    async with db.sessions.begin() as first:
        assert await expire_inquiries(first, settings=settings, now=utcnow(), limit=2) == 2
        async with db.sessions.begin() as second:  # while the first batch is still locked
            await second.execute(text("SET LOCAL lock_timeout = '5s'"))  # waiting on it is the bug
            assert await expire_inquiries(second, settings=settings, now=utcnow(), limit=10) == 2
    assert await stored_inquiries(db) == [] and len(await ledger(db)) == 4
    async with db.sessions() as session:
        details = (await session.scalars(select(AuditEvent.detail)
                                         .where(AuditEvent.action == "inquiry_retention"))).all()
    assert sorted(d["deleted"] for d in details) == [2, 2]
