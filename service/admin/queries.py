"""Admin-side queries over inquiries, subscribers and mail: filtered lists with keyset
pagination (newest first, on (created_at, id), so a deep page costs what the first one does),
search, details, and the admin's own status change and note on an inquiry."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, and_, bindparam, exists, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from service.admin.models import SEARCH_CONFIG, inquiry_search_document
from service.db import Sessions, utcnow
from service.inquiries.models import HELD, INQUIRY_STATUSES, Inquiry, InquiryEvent
from service.mail.models import MailboxMessage, OutboxMessage
from service.newsletter.models import Subscriber, SubscriberTopic

PAGE_SIZE = 50
Cursor = tuple[dt.datetime, int]


class FilterError(ValueError):
    """A filter value that cannot be used (the message names the field)."""


def parse_cursor(value: str | None) -> Cursor | None:
    """`2026-11-28T07:00:00+00:00_123` -> (datetime, id); FilterError when malformed."""
    if not value:
        return None
    stamp, _, ident = value.rpartition("_")
    try:
        when = dt.datetime.fromisoformat(stamp)
        if when.tzinfo is None:
            raise ValueError
        return when.astimezone(dt.UTC), int(ident)
    except ValueError:
        raise FilterError("Page: this page link is not valid; start again from the first page.") from None


def format_cursor(when: dt.datetime, ident: int) -> str:
    return f"{when.astimezone(dt.UTC).isoformat()}_{ident}"


def parse_day(value: str | None, label: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise FilterError(f"{label}: expected a date such as 2026-11-28.") from None


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


@dataclass(frozen=True)
class InquiryFilter:
    status: str = ""
    topic: str = ""
    since: dt.date | None = None  # inclusive
    until: dt.date | None = None  # inclusive
    q: str = ""

    def query_args(self) -> dict[str, str]:
        args = {"status": self.status, "topic": self.topic, "q": self.q,
                "from": self.since.isoformat() if self.since else "",
                "to": self.until.isoformat() if self.until else ""}
        return {k: v for k, v in args.items() if v}


_WORD = re.compile(r"\w+", re.UNICODE)


def search_words(q: str) -> list[str]:
    return _WORD.findall(q.lower())[:8]


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def is_address_search(q: str) -> bool:
    """An address or a domain ("ana@", "example.org"): matched as a substring of the email."""
    q = q.strip()
    return "@" in q or ("." in q and " " not in q)


def _inquiry_search(q: str, dialect: str) -> ColumnElement[bool] | None:
    if is_address_search(q):
        # PostgreSQL answers this from the trigram index ix_inquiries_email_search.
        return Inquiry.email.ilike(_like(q.strip()), escape="\\")
    words = search_words(q)
    if not words:
        return None
    if dialect == "postgresql":
        # Prefix match on every word ("mar lop" finds Maria Lopez), through the GIN index.
        query = func.to_tsquery(SEARCH_CONFIG, " & ".join(f"{w}:*" for w in words))
        return inquiry_search_document().op("@@")(query)
    return and_(*(or_(Inquiry.name.like(_like(w), escape="\\"), Inquiry.email.like(_like(w), escape="\\"),
                      Inquiry.message.like(_like(w), escape="\\")) for w in words))


def inquiry_query(flt: InquiryFilter, dialect: str) -> Select[Inquiry]:
    stmt = select(Inquiry)
    if flt.status:
        stmt = stmt.where(Inquiry.status == flt.status)
    else:  # held inquiries are shown under their own filter only
        stmt = stmt.where(Inquiry.status != HELD)
    if flt.topic:
        stmt = stmt.where(Inquiry.topic == flt.topic)
    if flt.since:
        stmt = stmt.where(Inquiry.created_at >= day_start(flt.since))
    if flt.until:
        stmt = stmt.where(Inquiry.created_at < day_start(flt.until + dt.timedelta(days=1)))
    search = _inquiry_search(flt.q, dialect)
    if search is not None:
        stmt = stmt.where(search)
    return stmt


def _newest_first(stmt: Select, created: InstrumentedAttribute[dt.datetime], ident: InstrumentedAttribute[int],
                  after: Cursor | None, limit: int) -> Select:
    """Order newest first and start after the cursor: a row comparison the (created_at, id)
    index answers directly, however deep the page. The cursor's time is bound with the column's
    own type, so SQLite compares it in the stored text form."""
    if after is not None:
        stmt = stmt.where(tuple_(created, ident) < tuple_(bindparam(None, after[0], type_=created.type), after[1]))
    return stmt.order_by(created.desc(), ident.desc()).limit(limit)


async def list_inquiries(session: AsyncSession, *, flt: InquiryFilter, after: Cursor | None = None,
                         limit: int = PAGE_SIZE) -> list[Inquiry]:
    """One page of inquiries, newest first, after the keyset cursor `after`."""
    stmt = _newest_first(inquiry_query(flt, session.get_bind().dialect.name), Inquiry.created_at, Inquiry.id,
                         after, limit)
    return list((await session.scalars(stmt)).all())


async def count_inquiries(session: AsyncSession, *, flt: InquiryFilter) -> int:
    """How many inquiries match `flt` (all pages)."""
    query = inquiry_query(flt, session.get_bind().dialect.name).subquery()
    return int(await session.scalar(select(func.count()).select_from(query)) or 0)


async def iter_inquiries(sessions: Sessions, *, flt: InquiryFilter, chunk: int = 1000) -> AsyncIterator[Inquiry]:
    """Every inquiry matching `flt`, in chunks, each read in its own short transaction."""
    after: Cursor | None = None
    while True:
        async with sessions() as session:
            rows = await list_inquiries(session, flt=flt, after=after, limit=chunk)
        for row in rows:
            yield row
        if len(rows) < chunk:
            return
        after = (rows[-1].created_at, rows[-1].id)


async def get_inquiry(session: AsyncSession, inquiry_id: int) -> Inquiry | None:
    return await session.get(Inquiry, inquiry_id)


async def inquiry_events(session: AsyncSession, inquiry_id: int) -> Sequence[tuple[InquiryEvent, str | None]]:
    """Status changes and notes, oldest first, with the email of the staff member who made them."""
    from service.admin.models import StaffUser

    stmt = (select(InquiryEvent, StaffUser.email).outerjoin(StaffUser, StaffUser.id == InquiryEvent.staff_id)
            .where(InquiryEvent.inquiry_id == inquiry_id).order_by(InquiryEvent.id))
    return [(event, email) for event, email in (await session.execute(stmt)).all()]


async def set_inquiry_status(session: AsyncSession, *, inquiry: Inquiry, status: str, staff_id: int) -> bool:
    """Move an inquiry to `status` and record the change; False when it already had it."""
    if status not in INQUIRY_STATUSES:
        raise FilterError(f"Status: expected one of {', '.join(INQUIRY_STATUSES)}.")
    if inquiry.status == status:
        return False
    now = utcnow()
    session.add(InquiryEvent(inquiry_id=inquiry.id, created_at=now, kind="status", from_status=inquiry.status,
                             to_status=status, staff_id=staff_id))
    inquiry.status = status
    inquiry.status_changed_at = now
    await session.flush()
    return True


async def add_inquiry_note_by_staff(session: AsyncSession, *, inquiry: Inquiry, note: str,
                                    staff_id: int) -> InquiryEvent:
    """Attach an internal note (plain text) to an inquiry."""
    event = InquiryEvent(inquiry_id=inquiry.id, created_at=utcnow(), kind="note", note=note, staff_id=staff_id)
    session.add(event)
    await session.flush()
    return event


# -- subscribers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberFilter:
    status: str = ""
    topic: str = ""
    q: str = ""

    def query_args(self) -> dict[str, str]:
        return {k: v for k, v in {"status": self.status, "topic": self.topic, "q": self.q}.items() if v}


async def list_subscribers(session: AsyncSession, *, flt: SubscriberFilter, after: Cursor | None = None,
                           limit: int = PAGE_SIZE) -> list[Subscriber]:
    stmt = select(Subscriber)
    if flt.status:
        stmt = stmt.where(Subscriber.status == flt.status)
    if flt.topic:
        stmt = stmt.where(exists().where(SubscriberTopic.subscriber_id == Subscriber.id,
                                         SubscriberTopic.topic == flt.topic))
    if flt.q.strip():
        # Substring of the address or the name; trigram indexes on PostgreSQL.
        pattern = _like(flt.q.strip().lower())
        stmt = stmt.where(or_(Subscriber.email_key.ilike(pattern, escape="\\"),
                              Subscriber.name.ilike(pattern, escape="\\")))
    stmt = _newest_first(stmt, Subscriber.created_at, Subscriber.id, after, limit)
    return list((await session.scalars(stmt)).all())


async def get_subscriber(session: AsyncSession, subscriber_id: int) -> Subscriber | None:
    return await session.get(Subscriber, subscriber_id)


# -- mail -------------------------------------------------------------------------------------


async def list_mailbox(session: AsyncSession, *, before_id: int | None = None,
                       limit: int = PAGE_SIZE) -> list[MailboxMessage]:
    stmt = select(MailboxMessage).order_by(MailboxMessage.id.desc()).limit(limit)
    if before_id:
        stmt = stmt.where(MailboxMessage.id < before_id)
    return list((await session.scalars(stmt)).all())


async def list_outbox(session: AsyncSession, *, status: str = "", before_id: int | None = None,
                      limit: int = PAGE_SIZE) -> list[OutboxMessage]:
    stmt = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(OutboxMessage.status == status)
    if before_id:
        stmt = stmt.where(OutboxMessage.id < before_id)
    return list((await session.scalars(stmt)).all())


async def outbox_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
    return {status: int(n) for status, n in rows.all()}
