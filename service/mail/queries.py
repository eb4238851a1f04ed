"""Mail SQL for the staff's pages: the local mailbox (what the outbox "delivered" without SMTP)
and the transactional outbox, newest first, with its counts by status, each searchable by a
substring of the recipient or the subject."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import like_pattern
from service.mail.models import MailboxMessage, OutboxMessage


def _search(q: str, *columns: Any) -> list[ColumnElement[bool]]:
    if not q.strip():
        return []
    pattern = like_pattern(q.strip().lower())
    return [or_(*(func.lower(c).like(pattern, escape="\\") for c in columns))]


def _mailbox_where(q: str) -> list[ColumnElement[bool]]:
    return _search(q, MailboxMessage.recipients, MailboxMessage.subject)


def _outbox_where(status: str, q: str) -> list[ColumnElement[bool]]:
    where = _search(q, OutboxMessage.recipient, OutboxMessage.subject)
    if status:
        where.append(OutboxMessage.status == status)
    return where


async def list_mailbox(session: AsyncSession, *, q: str = "", before_id: int | None,
                       limit: int) -> list[MailboxMessage]:
    stmt = select(MailboxMessage).where(*_mailbox_where(q)).order_by(MailboxMessage.id.desc()).limit(limit)
    if before_id:
        stmt = stmt.where(MailboxMessage.id < before_id)
    return list((await session.scalars(stmt)).all())


async def count_mailbox(session: AsyncSession, *, q: str = "") -> int:
    return int(await session.scalar(select(func.count()).select_from(MailboxMessage).where(*_mailbox_where(q))) or 0)


async def list_outbox(session: AsyncSession, *, status: str = "", q: str = "", before_id: int | None,
                      limit: int) -> list[OutboxMessage]:
    stmt = select(OutboxMessage).where(*_outbox_where(status, q)).order_by(OutboxMessage.id.desc()).limit(limit)
    if before_id:
        stmt = stmt.where(OutboxMessage.id < before_id)
    return list((await session.scalars(stmt)).all())


async def count_outbox(session: AsyncSession, *, status: str = "", q: str = "") -> int:
    where = _outbox_where(status, q)
    return int(await session.scalar(select(func.count()).select_from(OutboxMessage).where(*where)) or 0)


async def outbox_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
    return {status: int(n) for status, n in rows.all()}
