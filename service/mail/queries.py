"""Mail SQL for the staff's pages: the local mailbox (what the outbox "delivered" without SMTP)
and the transactional outbox, newest first, with its counts by status."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.mail.models import MailboxMessage, OutboxMessage


async def list_mailbox(session: AsyncSession, *, before_id: int | None, limit: int) -> list[MailboxMessage]:
    stmt = select(MailboxMessage).order_by(MailboxMessage.id.desc()).limit(limit)
    if before_id:
        stmt = stmt.where(MailboxMessage.id < before_id)
    return list((await session.scalars(stmt)).all())


async def list_outbox(session: AsyncSession, *, status: str = "", before_id: int | None,
                      limit: int) -> list[OutboxMessage]:
    stmt = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(OutboxMessage.status == status)
    if before_id:
        stmt = stmt.where(OutboxMessage.id < before_id)
    return list((await session.scalars(stmt)).all())


async def outbox_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
    return {status: int(n) for status, n in rows.all()}
