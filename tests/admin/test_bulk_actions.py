"""Bulk actions: tick inquiries or subscribers on their list, press one button; each change is
audit-logged on its own row, the list comes back saying what happened, and a request without
the CSRF token or with nothing selected changes nothing."""

from __future__ import annotations

import csv
import io
import re

import httpx
from sqlalchemy import select

from service.admin.models import AuditEvent
from service.inquiries.models import Inquiry
from tests.conftest import Database
from tests.factories import add_inquiries, add_subscriber, csrf, inquiry_row, subscriber


async def _statuses(db: Database) -> dict[int, str]:
    async with db.sessions() as session:
        return {i: s for i, s in (await session.execute(select(Inquiry.id, Inquiry.status))).all()}


async def _audit(db: Database, action: str) -> list[AuditEvent]:
    async with db.sessions() as session:
        return list((await session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                           .order_by(AuditEvent.id))).all())


async def test_bulk_status_and_spam_on_inquiries(admin_client: httpx.AsyncClient, db: Database) -> None:
    ids = await add_inquiries(db, [inquiry_row(i, topic="anxiety") for i in range(4)]
                              + [inquiry_row(9, status="held", held_reason="too fast")])
    page = await admin_client.get("/admin/inquiries?topic=anxiety")
    assert 'form="inquiries-bulk"' in page.text and 'name="csrf_token"' in page.text
    token = await csrf(admin_client)
    r = await admin_client.post("/admin/inquiries/bulk", data={
        "csrf_token": token, "ids": [str(ids[0]), str(ids[1]), str(ids[4])], "status": "closed",
        "back": "/admin/inquiries?topic=anxiety"})
    assert r.status_code == 303
    assert r.headers["location"] == "/admin/inquiries?topic=anxiety&notice=status-closed&done=2&skipped=1"
    listing = await admin_client.get(r.headers["location"])
    assert "2 inquiries set to “closed”. 1 left as it was (already “closed”, held, or gone)." in listing.text
    r = await admin_client.post("/admin/inquiries/bulk", data={
        "csrf_token": token, "ids": [str(ids[1]), str(ids[2])], "status": "new", "spam": "1"})
    assert r.headers["location"] == "/admin/inquiries?notice=status-spam&done=2&skipped=0"
    assert await _statuses(db) == {ids[0]: "closed", ids[1]: "spam", ids[2]: "spam", ids[3]: "new", ids[4]: "held"}
    events = await _audit(db, "inquiry_status")
    assert [(e.target_id, e.detail) for e in events] == [
        (str(ids[0]), {"from": "new", "to": "closed", "bulk": True}),
        (str(ids[1]), {"from": "new", "to": "closed", "bulk": True}),
        (str(ids[1]), {"from": "closed", "to": "spam", "bulk": True}),
        (str(ids[2]), {"from": "new", "to": "spam", "bulk": True})]


async def test_bulk_inquiries_refuses_without_token_selection_or_status(admin_client: httpx.AsyncClient,
                                                                        db: Database) -> None:
    ids = await add_inquiries(db, [inquiry_row(1)])
    r = await admin_client.post("/admin/inquiries/bulk", data={"ids": [str(ids[0])], "status": "closed"})
    assert r.status_code == 403
    token = await csrf(admin_client)
    r = await admin_client.post("/admin/inquiries/bulk", data={"csrf_token": token, "status": "closed"})
    assert r.status_code == 422 and "No inquiries selected" in r.text
    r = await admin_client.post("/admin/inquiries/bulk", data={"csrf_token": token, "ids": [str(ids[0])],
                                                               "status": "archived"})
    assert r.status_code == 422 and "Status: expected one of" in r.text
    r = await admin_client.post("/admin/inquiries/bulk", data={"csrf_token": token, "ids": [str(ids[0])],
                                                               "status": "closed", "back": "https://evil.test/x"})
    assert r.headers["location"].startswith("/admin/inquiries?")
    assert (await _statuses(db))[ids[0]] == "closed"


async def test_bulk_unsubscribe_suppress_and_export_subscribers(admin_client: httpx.AsyncClient,
                                                               db: Database) -> None:
    ids = [str(await add_subscriber(db, f"s{i}@example.org")) for i in range(3)]
    page = await admin_client.get("/admin/subscribers")
    assert page.text.count('form="subscribers-bulk"') == 3
    token = await csrf(admin_client)
    r = await admin_client.post("/admin/subscribers/bulk", data={"csrf_token": token, "ids": ids[:2],
                                                                 "action": "unsubscribe"})
    assert r.headers["location"] == "/admin/subscribers?notice=bulk-unsubscribe&done=2&skipped=0"
    assert "2 subscribers unsubscribed." in (await admin_client.get(r.headers["location"])).text
    r = await admin_client.post("/admin/subscribers/bulk", data={"csrf_token": token, "ids": ids,
                                                                 "action": "suppress", "reason": " "})
    assert r.status_code == 422 and "Please enter reason for suppressing" in r.text
    r = await admin_client.post("/admin/subscribers/bulk", data={"csrf_token": token, "ids": ids[1:],
                                                                 "action": "suppress", "reason": "asked by phone"})
    assert r.headers["location"] == "/admin/subscribers?notice=bulk-suppress&done=2&skipped=0"
    states = [(await subscriber(db, f"s{i}@example.org")).status for i in range(3)]  # type: ignore[union-attr]
    assert states == ["unsubscribed", "complained", "complained"]
    assert [e.target_id for e in await _audit(db, "subscriber_unsubscribe")] == ids[:2]
    assert [(e.target_id, e.detail["reason"]) for e in await _audit(db, "subscriber_suppress")] == [
        (ids[1], "asked by phone"), (ids[2], "asked by phone")]
    r = await admin_client.post("/admin/subscribers/bulk", data={"csrf_token": token, "ids": [ids[0], ids[2]],
                                                                 "action": "export"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    emails = [row["email"] for row in csv.DictReader(io.StringIO(r.text.lstrip("\ufeff")))]
    assert emails == ["s0@example.org", "s2@example.org"]
    assert [e.detail for e in await _audit(db, "subscriber_export")] == [{"filter": {"selected": 2}}]
    r = await admin_client.post("/admin/subscribers/bulk", data={"csrf_token": token, "action": "unsubscribe"})
    assert r.status_code == 422 and re.search("No subscribers selected", r.text)
