"""SQL for inquiries: storing a submission once (one transactional path on both databases),
reading it back, the staff's filtered and searchable list (keyset pages, newest first), held
inquiries, and the staff's status changes and notes (each recorded as an InquiryEvent with its
time). The admin and the CLI call these; none of them commit."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, bindparam, delete, exists, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.models import StaffUser
from service.db import (
    Cursor,
    Sessions,
    day_start,
    like_pattern,
    list_param,
    lock_names,
    newest_first,
    once_per_dialect,
    rowcount,
    utcnow,
    word_search,
)
from service.inquiries.counts import inquiry_counts
from service.inquiries.models import (
    HELD,
    INQUIRY_STATUSES,
    SEARCH_CONFIG,
    Inquiry,
    InquiryEvent,
    inquiry_search_document,
    new_receipt,
)
from service.webhooks.events import queue_inquiry_status_changed

# What the note field of the admin's inquiry page takes (its textarea says so too).
NOTE_MAX_LENGTH = 5_000
_NOTE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tabs and line breaks are fine


class UnknownStatusError(ValueError):
    """A status that is not one of INQUIRY_STATUSES."""


class InquiryNotFoundError(LookupError):
    """No inquiry has that id."""


class HeldInquiryError(ValueError):
    """A held inquiry changes only by release or deletion (service.inquiries.held)."""


class NoteError(ValueError):
    """A note that is empty or too long (the message says which, and the limit)."""


async def lock_submission(session: AsyncSession, *, dedupe_key: str, nonce: str | None) -> None:
    """Serialise, until the transaction ends, submissions with the same words from the same
    address or with the same form token, so that two at once cannot both be stored."""
    names = [f"inquiry-dedupe:{dedupe_key}"] + ([f"inquiry-token:{nonce}"] if nonce else [])
    await lock_names(session, *names)


@dataclass(frozen=True)
class Earlier:
    """What was stored before that a new submission must be compared with."""

    by_token: tuple[str, str] | None  # (dedupe key, status) of the inquiry stored with this form token
    twin: bool  # an inquiry (not held) with the same dedupe key was stored at or after `since`


async def find_earlier(session: AsyncSession, *, dedupe_key: str, nonce: str | None, since: dt.datetime) -> Earlier:
    """The inquiry stored with form token `nonce` and whether a recent twin exists, in one query."""
    recent_twin = and_(Inquiry.dedupe_key == dedupe_key, Inquiry.created_at >= since, Inquiry.status != HELD)
    condition = recent_twin if nonce is None else or_(Inquiry.form_nonce == nonce, recent_twin)
    stmt = select(Inquiry.dedupe_key, Inquiry.status, Inquiry.form_nonce, Inquiry.created_at).where(condition).limit(2)
    by_token, twin = None, False
    for key, status, form_nonce, created_at in (await session.execute(stmt)).all():
        if nonce is not None and form_nonce == nonce:
            by_token = (key, status)
        if key == dedupe_key and created_at >= since and status != HELD:
            twin = True
    return Earlier(by_token, twin)


async def insert_inquiry(session: AsyncSession, *, values: dict[str, Any],
                         unless_twin_since: dt.datetime | None = None) -> Inquiry | None:
    """Store an inquiry (status "new" unless `values` say otherwise) unless one was stored with
    the same form token (`form_nonce`) or, with `unless_twin_since`, one not held has the same
    dedupe key and was stored at or after that time: a detached copy of the row stored, or None.
    One `INSERT … SELECT … WHERE NOT EXISTS` (the look-up and the insert in one round trip),
    compiled once per column set; run it under `lock_submission` so that the check holds."""
    row = {"status": "new", "status_changed_at": values["created_at"], "receipt": new_receipt(),
           "form_nonce": None, "held_reason": None, **values}
    twin = unless_twin_since is not None
    params = {**row, "since": unless_twin_since} if twin else row
    connection = await session.connection()  # Core: no ORM bookkeeping on the write path
    new_id = (await connection.execute(_insert_statement(tuple(row), twin), params)).scalar_one_or_none()
    return None if new_id is None else Inquiry(id=int(new_id), **row)


@functools.lru_cache(maxsize=8)
def _insert_statement(keys: tuple[str, ...], twin: bool) -> Any:
    """Built once per column set, so SQLAlchemy compiles it once and a request only binds values."""
    table = Inquiry.__table__
    columns = table.c
    binds = {k: bindparam(k, type_=columns[k].type) for k in keys}
    same_token = select(columns.id).where(columns.form_nonce == binds["form_nonce"])
    source = select(*binds.values()).where(~exists(same_token))
    if twin:
        recent = select(columns.id).where(
            columns.dedupe_key == binds["dedupe_key"], columns.status != HELD,
            columns.created_at >= bindparam("since", type_=columns.created_at.type))
        source = source.where(~exists(recent))
    return insert(table).from_select(list(keys), source, include_defaults=False).returning(columns.id)


async def purge_held_inquiries(session: AsyncSession, *, before: dt.datetime) -> int:
    """Delete held inquiries stored before `before`; how many went."""
    stmt = delete(Inquiry).where(Inquiry.status == HELD, Inquiry.created_at < before)
    result = await session.execute(stmt.execution_options(synchronize_session=False))
    return rowcount(result)


async def count_held_inquiries(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Inquiry).where(Inquiry.status == HELD)) or 0)


async def get_inquiry(session: AsyncSession, *, inquiry_id: int) -> Inquiry | None:
    return await session.get(Inquiry, inquiry_id)


async def list_inquiry_events(session: AsyncSession, *, inquiry_id: int) -> Sequence[InquiryEvent]:
    """Status changes and notes of one inquiry, oldest first."""
    stmt = select(InquiryEvent).where(InquiryEvent.inquiry_id == inquiry_id).order_by(InquiryEvent.id)
    return (await session.scalars(stmt)).all()


async def inquiry_history(session: AsyncSession, *, inquiry_id: int) -> list[tuple[InquiryEvent, str | None]]:
    """Status changes and notes, oldest first, with the email of the staff member who made them."""
    stmt = (select(InquiryEvent, StaffUser.email).outerjoin(StaffUser, StaffUser.id == InquiryEvent.staff_id)
            .where(InquiryEvent.inquiry_id == inquiry_id).order_by(InquiryEvent.id))
    return [(event, email) for event, email in (await session.execute(stmt)).all()]


# -- the staff's list: filters, search, keyset pages --------------------------------------------


@dataclass(frozen=True)
class InquiryFilter:
    status: str = ""  # "" is every status but held
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


def is_address_search(q: str) -> bool:
    """An address or a domain ("ana@", "example.org"): matched as a substring of the email."""
    q = q.strip()
    return "@" in q or ("." in q and " " not in q)


def _search(session: AsyncSession, q: str) -> Any:
    if is_address_search(q):
        # PostgreSQL answers this from the trigram index ix_inquiries_email_search.
        return Inquiry.email.ilike(like_pattern(q.strip()), escape="\\")
    words = search_words(q)
    if not words:
        return None
    # Prefix match on every word ("mar lop" finds Maria Lopez), through the GIN index on PostgreSQL.
    return word_search(session, document=inquiry_search_document(), config=SEARCH_CONFIG,
                       columns=(Inquiry.name, Inquiry.email, Inquiry.message), words=words)


def filtered_inquiries(session: AsyncSession, flt: InquiryFilter) -> Select[Inquiry]:
    """The inquiries `flt` selects, unordered (the benchmark explains this statement)."""
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
    search = _search(session, flt.q)
    if search is not None:
        stmt = stmt.where(search)
    return stmt


async def list_inquiries(session: AsyncSession, *, flt: InquiryFilter, after: Cursor | None,
                         limit: int) -> list[Inquiry]:
    """One page of inquiries, newest first, after the keyset cursor `after`."""
    stmt = newest_first(filtered_inquiries(session, flt), Inquiry.created_at, Inquiry.id, after, limit)
    return list((await session.scalars(stmt)).all())


COUNT_CAP = 1_000  # a search, topic or date range matches more: the list says "More than 1,000 inquiries"


async def count_inquiries(session: AsyncSession, *, flt: InquiryFilter, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """How many inquiries match `flt` (all pages), and whether there are more than that: by
    status or all, exact from the counters (`service.inquiries.counts`); with a search, a topic
    or dates, counted up to `cap` (counting a million matches would cost more than the page)."""
    if not (flt.q or flt.topic or flt.since or flt.until):
        counts = await inquiry_counts(session)
        return (counts[flt.status] if flt.status else sum(counts[s] for s in INQUIRY_STATUSES)), False
    query = filtered_inquiries(session, flt).with_only_columns(Inquiry.id).limit(cap + 1).subquery()
    n = int(await session.scalar(select(func.count()).select_from(query)) or 0)
    return min(n, cap), n > cap


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


async def change_inquiry_status(
    session: AsyncSession, *, inquiry_id: int, to_status: str, staff_id: int | None,
    now: dt.datetime | None = None,
) -> InquiryEvent | None:
    """Move an inquiry to `to_status`, recording who and when; None when it already had it. The row
    is locked first, so two staff changing it at once record the true `from_status` each."""
    if to_status not in INQUIRY_STATUSES:
        raise UnknownStatusError(f"unknown inquiry status {to_status!r}; expected one of {', '.join(INQUIRY_STATUSES)}")
    inquiry = await session.get(Inquiry, inquiry_id, with_for_update=True)
    if inquiry is None:
        raise InquiryNotFoundError(f"no inquiry {inquiry_id}")
    if inquiry.status == HELD:
        raise HeldInquiryError(f"inquiry {inquiry_id} is held: release it or delete it")
    if inquiry.status == to_status:
        return None
    now = now or utcnow()
    event = InquiryEvent(
        inquiry_id=inquiry_id, created_at=now, kind="status", from_status=inquiry.status,
        to_status=to_status, staff_id=staff_id,
    )
    inquiry.status = to_status
    inquiry.status_changed_at = now
    session.add(event)
    await session.flush()
    await queue_inquiry_status_changed(session, inquiry_id=inquiry_id, from_status=event.from_status or "",
                                       to_status=to_status, now=now)
    return event


async def add_inquiry_note(
    session: AsyncSession, *, inquiry_id: int, note: str, staff_id: int | None, now: dt.datetime | None = None,
) -> InquiryEvent:
    """Attach an internal note (kept as text, shown escaped) to an inquiry."""
    note = note.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not note:
        raise NoteError(f"Note: it is empty; write between 1 and {NOTE_MAX_LENGTH:,} characters.")
    if _NOTE_CONTROL.search(note):
        raise NoteError("Note: it contains control characters; write plain text.")
    if len(note) > NOTE_MAX_LENGTH:
        raise NoteError(f"Note: it is too long ({len(note):,} characters; at most {NOTE_MAX_LENGTH:,}).")
    if await session.get(Inquiry, inquiry_id) is None:
        raise InquiryNotFoundError(f"no inquiry {inquiry_id}")
    event = InquiryEvent(inquiry_id=inquiry_id, created_at=now or utcnow(), kind="note", note=note,
                         staff_id=staff_id)
    session.add(event)
    await session.flush()
    return event


async def flag_inquiry_bounced(session: AsyncSession, *, inquiry_id: int, diagnostic: str, now: dt.datetime) -> bool:
    """Mark that mail to the inquiry's address bounced ("the address bounced: call them");
    False when there is no such inquiry or it was already flagged."""
    from sqlalchemy import update

    result = await session.execute(
        update(Inquiry).where(Inquiry.id == inquiry_id, Inquiry.bounced_at.is_(None))
        .values(bounced_at=now, bounce_diagnostic=diagnostic[:2000]))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def unflagged_inquiries(session: AsyncSession, inquiry_ids: Collection[int]) -> set[int]:
    """Those of these inquiries that exist and are not flagged as bounced yet."""
    if not inquiry_ids:
        return set()
    return set((await (await session.connection()).scalars(_unflagged(session), {"ids": list(inquiry_ids)})).all())


@once_per_dialect
def _unflagged(postgresql: bool) -> Any:
    return select(Inquiry.id).where(list_param(postgresql, Inquiry.id, "ids"), Inquiry.bounced_at.is_(None))


async def flag_inquiries_bounced(session: AsyncSession, flags: dict[int, str], *, now: dt.datetime) -> None:
    """`flag_inquiry_bounced` for many: inquiry id -> diagnostic."""
    if not flags:
        return
    from sqlalchemy import update

    stmt = (update(Inquiry).where(Inquiry.id == bindparam("iid"), Inquiry.bounced_at.is_(None))
            .values(bounced_at=bindparam("v_at"), bounce_diagnostic=bindparam("v_diag")))
    conn = await session.connection()
    await conn.execute(stmt, [{"iid": i, "v_at": now, "v_diag": d[:2000]} for i, d in flags.items()])
