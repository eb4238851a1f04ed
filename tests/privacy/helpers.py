"""Helpers for the privacy tests: inquiries stored through the real form, delivered through the
local mailbox (so that both stored copies of their emails exist), then aged."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from sqlalchemy import func, select, update

from service.inquiries.models import Inquiry, InquiryEvent
from service.mail.models import MailboxMessage, OutboxMessage
from service.mail.outbox import OutboxWorker
from service.mail.transport import LocalMailboxTransport
from service.privacy.models import Erasure
from tests.conftest import Database
from tests.factories import post_form


async def submit(client: httpx.AsyncClient, db: Database, n: int, **changes: Any) -> int:
    """Send the contact form as person `n`; returns the new inquiry's id."""
    r = await post_form(client, name=f"Patient Number{n}", email=f"patient{n}@example.org",
                        message=f"Private health details of patient {n}.", **changes)
    assert r.status_code == 303, r.text
    async with db.sessions() as session:
        found = await session.scalar(select(Inquiry.id).where(Inquiry.email == f"patient{n}@example.org"))
    assert found is not None
    return int(found)


async def deliver_locally(db: Database) -> int:
    """Deliver the outbox into the local mailbox (the embedded default's transport)."""
    return await OutboxWorker(db.sessions, LocalMailboxTransport(db.sessions), owner="test").drain()


async def age_inquiry(db: Database, inquiry_id: int, *, status: str, days: float) -> None:
    """Give the inquiry `status`, last changed `days` ago (notes and emails with it)."""
    then = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    async with db.sessions.begin() as session:
        await session.execute(update(Inquiry).where(Inquiry.id == inquiry_id)
                              .values(status=status, status_changed_at=then, created_at=then))
        await session.execute(update(InquiryEvent).where(InquiryEvent.inquiry_id == inquiry_id).values(created_at=then))


async def add_note(db: Database, inquiry_id: int, note: str, *, days_ago: float = 0) -> None:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    async with db.sessions.begin() as session:
        session.add(InquiryEvent(inquiry_id=inquiry_id, created_at=at, kind="note", note=note))


async def copies_of(db: Database, inquiry_id: int) -> tuple[int, int]:
    """(outbox rows, local mailbox copies) of one inquiry's emails."""
    async with db.sessions() as session:
        outbox = int(await session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.inquiry_id == inquiry_id)) or 0)
        ids = select(OutboxMessage.message_id).where(OutboxMessage.inquiry_id == inquiry_id)
        boxed = int(await session.scalar(
            select(func.count()).select_from(MailboxMessage).where(MailboxMessage.message_id.in_(ids))) or 0)
    return outbox, boxed


async def mailbox_mentions(db: Database, text: str) -> int:
    """Stored copies (outbox rows and local mailbox) whose bytes or context mention `text`."""
    needle = text.lower()
    async with db.sessions() as session:
        outbox = (await session.execute(select(OutboxMessage.recipient, OutboxMessage.context, OutboxMessage.raw,
                                               OutboxMessage.headers))).all()
        boxed = (await session.execute(select(MailboxMessage.recipients, MailboxMessage.raw))).all()
    found = 0
    for row in [*outbox, *boxed]:
        blob = " ".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v or "") for v in row)
        found += needle in blob.lower()
    return found


async def ledger(db: Database) -> list[Erasure]:
    async with db.sessions() as session:
        return list((await session.scalars(select(Erasure).order_by(Erasure.id))).all())
