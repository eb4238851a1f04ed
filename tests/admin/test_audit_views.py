"""Inquiry data seen outside the inquiry's own page is audited too: a search of the inquiry list
(that it ran and how many matched, never the words), opening a message in the outbox (the staff
notification carries the inquiry), and a filtered outbox list showing inquiry mail. No audit
detail holds the words of a search."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from sqlalchemy import select

from service.admin.models import AuditEvent
from service.app import create_app
from service.inquiries.flows import queue_inquiry_emails
from service.inquiries.models import Inquiry
from service.mail.outbox import OutboxWorker
from service.mail.transport import LocalMailboxTransport, SmtpTransport
from service.settings import Settings
from tests.conftest import Database
from tests.factories import (
    ADMIN_EMAIL,
    add_inquiries,
    add_subscriber,
    inquiry_row,
    make_staff,
    signed_in_client,
)
from tests.smtp import SmtpServer


async def _events(db: Database, action: str) -> list[AuditEvent]:
    async with db.sessions() as session:
        return list((await session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                           .order_by(AuditEvent.id))).all())


async def test_an_inquiry_search_is_audited_without_its_words(admin_client: httpx.AsyncClient, db: Database) -> None:
    await add_inquiries(db, [inquiry_row(1, name="Ana Lima", status="new"),
                             inquiry_row(2, name="Bo Lima", status="closed"),
                             inquiry_row(3, name="Cy Other")])
    assert (await admin_client.get("/admin/inquiries")).status_code == 200
    assert await _events(db, "inquiry_search") == []  # browsing is not a search
    r = await admin_client.get("/admin/inquiries?q=Lima")
    assert r.status_code == 200 and "Ana Lima" in r.text
    r = await admin_client.get("/admin/inquiries?q=lima&status=new")
    assert "Ana Lima" in r.text and "Bo Lima" not in r.text
    first, second = await _events(db, "inquiry_search")
    assert first.actor_email == ADMIN_EMAIL and first.target_type == "inquiry"
    assert first.detail == {"matched": 2, "first_page": True, "filter": {"search": True}}
    assert second.detail == {"matched": 1, "first_page": True, "filter": {"status": "new", "search": True}}
    assert "lima" not in json.dumps([first.detail, second.detail]).lower()


async def test_exports_audit_the_filter_without_the_search_words(admin_client: httpx.AsyncClient,
                                                                 db: Database) -> None:
    await add_inquiries(db, [inquiry_row(1, name="Ana Lima")])
    await add_subscriber(db, "dana.private@example.org", name="Dana")
    assert (await admin_client.get("/admin/inquiries/export.csv?q=Lima&status=new")).status_code == 200
    assert (await admin_client.get("/admin/subscribers/export.csv?q=dana.private")).status_code == 200
    (inquiry_export,) = await _events(db, "inquiry_export")
    (subscriber_export,) = await _events(db, "subscriber_export")
    assert inquiry_export.detail == {"filter": {"status": "new", "search": True}}
    assert subscriber_export.detail == {"filter": {"search": True}}


async def _inquiry_mail(db: Database, settings: Settings) -> None:
    """The real staff notification and auto-reply of one inquiry, queued in the outbox."""
    [ident] = await add_inquiries(db, [inquiry_row(1, name="Ana Lima", email="ana@example.org",
                                                   topic="depression")])
    async with db.sessions.begin() as session:
        inquiry = await session.get(Inquiry, ident)
        assert inquiry is not None
        await queue_inquiry_emails(session, settings=settings, inquiry=inquiry)


async def test_opening_a_staff_notification_in_the_local_outbox_is_audited(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    await _inquiry_mail(db, settings)
    assert await OutboxWorker(db.sessions, LocalMailboxTransport(db.sessions), owner="t").drain() == 2
    listing = await admin_client.get("/admin/outbox")
    links = dict(re.findall(r'<a href="/admin/outbox/(\d+)">([^<]+)</a>', listing.text))
    staff_id = next(i for i, subject in links.items() if "Ana Lima" in subject)
    assert await _events(db, "outbox_view") == []  # the plain list shows no message
    page = await admin_client.get(f"/admin/outbox/{staff_id}")
    assert page.status_code == 200 and "depression" in page.text
    assert (await admin_client.get(f"/admin/outbox/{staff_id}/html")).status_code == 200
    views = await _events(db, "outbox_view")
    assert [(e.target_id, e.detail) for e in views] == [
        (staff_id, {"kind": "inquiry_staff", "part": "page"}), (staff_id, {"kind": "inquiry_staff", "part": "html"})]
    assert all(e.actor_email == ADMIN_EMAIL for e in views)


async def test_the_smtp_outbox_audits_opened_messages_and_filtered_lists_with_inquiry_mail(
    settings: Settings, db: Database, smtp: SmtpServer
) -> None:
    app: Any = create_app(settings.with_(smtp_url=smtp.url), sessions=db.sessions)
    admin = await make_staff(db)
    await _inquiry_mail(db, settings)
    worker = OutboxWorker(db.sessions, SmtpTransport(smtp.url, timeout=5), owner="t")
    try:
        assert await worker.drain() == 2
    finally:
        await worker.mailer.close()
    async with signed_in_client(app, admin) as client:
        r = await client.get("/admin/outbox?status=failed")  # shows nothing: not audited
        assert r.status_code == 200
        r = await client.get("/admin/outbox?status=sent")
        assert "Ana Lima" in r.text
        staff_id = re.search(r'<a href="/admin/outbox/(\d+)">[^<]*Ana Lima', r.text).group(1)  # type: ignore[union-attr]
        assert (await client.get(f"/admin/outbox/{staff_id}")).status_code == 200
    (listed,) = await _events(db, "outbox_list")
    assert listed.detail == {"status": "sent", "first_page": True, "shown": 2, "inquiry_messages": 2}
    (view,) = await _events(db, "outbox_view")
    assert view.target_id == staff_id and view.detail == {"kind": "inquiry_staff", "part": "page"}
