"""Statuses and notes for the admin: every change is recorded with its time and who made it."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from service.admin.models import StaffUser
from service.db import utcnow
from service.inquiries.flows import add_inquiry_note, change_inquiry_status
from service.inquiries.queries import InquiryNotFoundError, UnknownStatusError, list_inquiry_events
from tests.conftest import Database
from tests.factories import inquiry_events, posted_id, stored_inquiries


async def _staff(db: Database) -> int:
    async with db.sessions.begin() as session:
        user = StaffUser(email="sam@clinic.test", name="Sam", role="staff")
        session.add(user)
        await session.flush()
        return user.id


async def test_status_changes_are_recorded_with_timestamps(client: httpx.AsyncClient, db: Database) -> None:
    inquiry_id = await posted_id(client, db)
    staff_id = await _staff(db)
    t1 = utcnow() + dt.timedelta(minutes=5)
    t2 = t1 + dt.timedelta(hours=2)
    async with db.sessions.begin() as session:
        await change_inquiry_status(session, inquiry_id=inquiry_id, to_status="contacted", staff_id=staff_id, now=t1)
    async with db.sessions.begin() as session:
        await change_inquiry_status(session, inquiry_id=inquiry_id, to_status="qualified", staff_id=staff_id, now=t2)
        assert await change_inquiry_status(session, inquiry_id=inquiry_id, to_status="qualified",
                                           staff_id=staff_id) is None  # unchanged: nothing recorded
    (inq,) = await stored_inquiries(db)
    assert inq.status == "qualified" and inq.status_changed_at == t2
    events = await inquiry_events(db)
    assert [(e.kind, e.from_status, e.to_status, e.created_at, e.staff_id) for e in events] == [
        ("status", "new", "contacted", t1, staff_id),
        ("status", "contacted", "qualified", t2, staff_id),
    ]


async def test_every_status_is_accepted_and_unknown_ones_refused(client: httpx.AsyncClient, db: Database) -> None:
    inquiry_id = await posted_id(client, db)
    for status in ("contacted", "qualified", "closed", "spam", "new"):
        async with db.sessions.begin() as session:
            await change_inquiry_status(session, inquiry_id=inquiry_id, to_status=status, staff_id=None)
    with pytest.raises(UnknownStatusError, match="unknown inquiry status 'archived'"):
        async with db.sessions.begin() as session:
            await change_inquiry_status(session, inquiry_id=inquiry_id, to_status="archived", staff_id=None)
    with pytest.raises(InquiryNotFoundError):
        async with db.sessions.begin() as session:
            await change_inquiry_status(session, inquiry_id=inquiry_id + 1, to_status="closed", staff_id=None)
    (inq,) = await stored_inquiries(db)
    assert inq.status == "new" and len(await inquiry_events(db)) == 5


async def test_notes_are_kept_as_text_in_order(client: httpx.AsyncClient, db: Database) -> None:
    inquiry_id = await posted_id(client, db)
    staff_id = await _staff(db)
    async with db.sessions.begin() as session:
        await add_inquiry_note(session, inquiry_id=inquiry_id, note="Called, left voicemail\r\n<b>x</b>",
                               staff_id=staff_id)
        await add_inquiry_note(session, inquiry_id=inquiry_id, note="Booked a consultation", staff_id=staff_id)
    with pytest.raises(ValueError, match="empty"):
        async with db.sessions.begin() as session:
            await add_inquiry_note(session, inquiry_id=inquiry_id, note="  \n ", staff_id=staff_id)
    async with db.sessions() as session:
        events = await list_inquiry_events(session, inquiry_id=inquiry_id)
    assert [(e.kind, e.note) for e in events] == [
        ("note", "Called, left voicemail\n<b>x</b>"), ("note", "Booked a consultation")]
    (inq,) = await stored_inquiries(db)
    assert inq.status == "new"
