"""SQL for inquiries: storing a submission once, reading it back, and the staff's status changes
and notes (each recorded as an InquiryEvent with its time). None of these commit."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, String, bindparam, exists, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service.db import utcnow
from service.inquiries.models import INQUIRY_STATUSES, Inquiry, InquiryEvent

NOTE_MAX_LENGTH = 10_000


class UnknownStatusError(ValueError):
    """A status that is not one of INQUIRY_STATUSES."""


class InquiryNotFoundError(LookupError):
    """No inquiry has that id."""


def _lock_id(dedupe_key: str) -> int:
    return int.from_bytes(hashlib.sha256(dedupe_key.encode()).digest()[:8], "big", signed=True)


async def lock_dedupe_key(session: AsyncSession, *, dedupe_key: str) -> None:
    """Serialise submissions with the same dedupe key until the transaction ends, so that a
    double-click cannot store two inquiries. SQLite needs nothing: its transactions begin
    IMMEDIATE, so writers already run one at a time."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_id(dedupe_key)})


async def find_recent_duplicate(session: AsyncSession, *, dedupe_key: str, since: dt.datetime) -> int | None:
    """The id of an inquiry with this dedupe key stored at or after `since`, if any."""
    stmt = (
        select(Inquiry.id)
        .where(Inquiry.dedupe_key == dedupe_key, Inquiry.created_at >= since)
        .order_by(Inquiry.id)
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def insert_inquiry_once(session: AsyncSession, *, values: dict[str, Any], since: dt.datetime) -> tuple[int, bool]:
    """Store an inquiry (status new) unless one with the same dedupe key was stored at or after
    `since`: (id, True) for a new row, (id of the earlier one, False) for a duplicate."""
    key = values["dedupe_key"]
    row = {**values, "status": "new", "status_changed_at": values["created_at"]}
    if session.bind.dialect.name == "postgresql":
        # Fast path, one round trip: take the key's lock without waiting and insert in the same
        # statement. If the lock is taken (a concurrent twin is being stored) or a recent twin
        # exists, nothing is inserted and the slow path below waits for the lock and looks
        # again in a new statement, whose snapshot then includes the twin once committed.
        new_id = await _insert_unless_recent(session, row, since, True)
        if new_id is not None:
            return new_id, True
    await lock_dedupe_key(session, dedupe_key=key)
    new_id = await _insert_unless_recent(session, row, since, False)
    if new_id is not None:
        return new_id, True
    existing = await find_recent_duplicate(session, dedupe_key=key, since=since)
    assert existing is not None  # the NOT EXISTS above saw it, under the key's lock
    return existing, False


async def _insert_unless_recent(session: AsyncSession, row: dict[str, Any], since: dt.datetime,
                                lock: bool) -> int | None:
    stmt = _insert_statement(tuple(row), lock)
    params = {**row, "since": since}
    if lock:
        params["lock_id"] = _lock_id(row["dedupe_key"])
    connection = await session.connection()
    new_id = (await connection.execute(stmt, params)).scalar_one_or_none()
    return None if new_id is None else int(new_id)


@functools.lru_cache(maxsize=8)
def _insert_statement(keys: tuple[str, ...], lock: bool) -> Any:
    """INSERT INTO inquiries (...) SELECT :values... WHERE NOT EXISTS (a recent twin) [and the
    dedupe key's advisory lock was free]: built once per column set, so SQLAlchemy compiles it
    once and each request only binds its values."""
    table = Inquiry.__table__
    columns = table.c
    recent = select(columns.id).where(
        columns.dedupe_key == bindparam("dedupe_key", type_=columns.dedupe_key.type),
        columns.created_at >= bindparam("since", type_=columns.created_at.type),
    )
    source = select(*(bindparam(k, type_=columns[k].type) for k in keys)).where(~exists(recent))
    if lock:
        got = select(func.pg_try_advisory_xact_lock(bindparam("lock_id", type_=BigInteger())).label("got"))
        cte = got.cte("dedupe_lock")
        source = source.select_from(cte).where(cte.c.got)
    return insert(table).from_select(list(keys), source, include_defaults=False).returning(columns.id)


# -- PostgreSQL: the inquiry and its emails in one autocommit statement ----------------------


async def insert_inquiry_with_emails(
    connection: AsyncConnection, *, values: dict[str, Any], since: dt.datetime, emails: Sequence[dict[str, Any]],
    admin_base: str,
) -> int | None:
    """PostgreSQL only, on a connection in autocommit: one statement (so one transaction and one
    round trip, no BEGIN/COMMIT) that takes the dedupe key's advisory lock without waiting, stores
    the inquiry unless a recent twin exists, and queues `emails` (rows from `email_values`) for it,
    linked to it by `inquiry_id`.
    An email whose `with_id` is true gets the new id put into its subject (between
    `subject_before` and `subject_after`) and into its context as `inquiry_id` and `admin_url`
    (`admin_base` + id). None, with nothing stored, when the lock was taken or a twin exists:
    the caller then takes the slow path (`insert_inquiry_once`)."""
    key = values["dedupe_key"]
    row = {**values, "status": "new", "status_changed_at": values["created_at"]}
    params: dict[str, Any] = {f"i_{k}": v for k, v in row.items()}
    params.update(since=since, lock_id=_lock_id(key), admin_base=admin_base)
    for n, email in enumerate(emails):
        params.update({f"o{n}_{k}": v for k, v in email.items() if k in _OUTBOX_COLUMNS})
        params.update({f"o{n}_with_id": bool(email.get("with_id")),
                       f"o{n}_subject_before": email.get("subject_before", ""),
                       f"o{n}_subject_after": email.get("subject_after", "")})
    result = await connection.execute(_combined_statement(tuple(row), len(emails)), params)
    new_id = result.scalar_one_or_none()
    return None if new_id is None else int(new_id)


_OUTBOX_COLUMNS = ("created_at", "kind", "recipient", "subject", "message_id", "template", "context", "headers",
                   "status", "attempts", "next_attempt_at")


@functools.lru_cache(maxsize=8)
def _combined_statement(keys: tuple[str, ...], n_emails: int) -> Any:
    from sqlalchemy.dialects import postgresql

    from service.mail.models import OutboxMessage

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    inq = Inquiry.__table__.c
    out = OutboxMessage.__table__.c

    def typed(name: str, column: Any) -> str:
        # VARCHAR without its length: a cast to VARCHAR(n) would cut a longer value silently
        sql_type = "VARCHAR" if type(column.type) is String else column.type.compile(dialect=dialect)
        return f"CAST(:{name} AS {sql_type})"

    rows = []
    for n in range(n_emails):
        cells = [typed(f"o{n}_{c}", out[c]) for c in _OUTBOX_COLUMNS]
        cells += [f"CAST(:o{n}_with_id AS BOOLEAN)", f"CAST(:o{n}_subject_before AS VARCHAR)",
                  f"CAST(:o{n}_subject_after AS VARCHAR)"]
        rows.append(f"({', '.join(cells)})")
    outbox_select = [f"v.{c}" for c in _OUTBOX_COLUMNS]
    outbox_select[_OUTBOX_COLUMNS.index("subject")] = (
        "CASE WHEN v.with_id THEN v.subject_before || ins.id || v.subject_after ELSE v.subject END")
    outbox_select[_OUTBOX_COLUMNS.index("context")] = (
        "CASE WHEN v.with_id THEN CAST(CAST(v.context AS JSONB) || jsonb_build_object("
        "'inquiry_id', ins.id, 'admin_url', CAST(:admin_base AS VARCHAR) || ins.id) AS TEXT) ELSE v.context END")
    sql = f"""
WITH dedupe_lock AS (SELECT pg_try_advisory_xact_lock(CAST(:lock_id AS BIGINT)) AS got),
ins AS (
  INSERT INTO inquiries ({', '.join(keys)})
  SELECT {', '.join(typed(f"i_{k}", inq[k]) for k in keys)}
  FROM dedupe_lock
  WHERE dedupe_lock.got AND NOT EXISTS (
    SELECT 1 FROM inquiries WHERE dedupe_key = CAST(:i_dedupe_key AS VARCHAR)
      AND created_at >= CAST(:since AS TIMESTAMP WITH TIME ZONE))
  RETURNING id
),
queued AS (
  INSERT INTO outbox_messages ({', '.join(_OUTBOX_COLUMNS)}, inquiry_id)
  SELECT {', '.join(outbox_select)}, ins.id
  FROM ins CROSS JOIN (VALUES {', '.join(rows)})
    AS v({', '.join(_OUTBOX_COLUMNS)}, with_id, subject_before, subject_after)
)
SELECT id FROM ins"""
    return text(sql)


async def get_inquiry(session: AsyncSession, *, inquiry_id: int) -> Inquiry | None:
    return await session.get(Inquiry, inquiry_id)


async def list_inquiry_events(session: AsyncSession, *, inquiry_id: int) -> Sequence[InquiryEvent]:
    """Status changes and notes of one inquiry, oldest first."""
    stmt = select(InquiryEvent).where(InquiryEvent.inquiry_id == inquiry_id).order_by(InquiryEvent.id)
    return (await session.scalars(stmt)).all()


async def change_inquiry_status(
    session: AsyncSession, *, inquiry_id: int, to_status: str, staff_id: int | None,
    now: dt.datetime | None = None,
) -> InquiryEvent | None:
    """Move an inquiry to `to_status`, recording who and when; None when it already had it."""
    if to_status not in INQUIRY_STATUSES:
        raise UnknownStatusError(f"unknown inquiry status {to_status!r}; expected one of {', '.join(INQUIRY_STATUSES)}")
    inquiry = await session.get(Inquiry, inquiry_id, with_for_update=True)
    if inquiry is None:
        raise InquiryNotFoundError(f"no inquiry {inquiry_id}")
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
    return event


async def add_inquiry_note(
    session: AsyncSession, *, inquiry_id: int, note: str, staff_id: int | None, now: dt.datetime | None = None,
) -> InquiryEvent:
    """Attach an internal note (kept as text, shown escaped) to an inquiry."""
    note = note.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not note:
        raise ValueError("the note is empty")
    if len(note) > NOTE_MAX_LENGTH:
        raise ValueError(f"the note is too long ({len(note)} characters; at most {NOTE_MAX_LENGTH})")
    if await session.get(Inquiry, inquiry_id) is None:
        raise InquiryNotFoundError(f"no inquiry {inquiry_id}")
    event = InquiryEvent(inquiry_id=inquiry_id, created_at=now or utcnow(), kind="note", note=note,
                         staff_id=staff_id)
    session.add(event)
    await session.flush()
    return event
