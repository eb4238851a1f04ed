"""SQL for removing inquiries for good: the ones whose retention has run out, and erasure.

Kept apart from queries.py (the write path of submissions) so the two change independently.
The privacy package (`service.privacy`) calls these, and removes the inquiry's copies in other
stores (its emails) first. None of these commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import rowcount
from service.inquiries.models import Inquiry, InquiryEvent

# Statuses after which an inquiry's data is no longer needed (see INQUIRY_RETENTION_DAYS).
FINISHED_STATUSES = ("closed", "spam")


async def expired_inquiry_ids(session: AsyncSession, *, cutoff: dt.datetime, limit: int) -> list[int]:
    """Closed and spam inquiries untouched since `cutoff`: neither their status nor a note changed
    at or after it (a note is a change too: someone is still working on it)."""
    recent_event = (
        select(InquiryEvent.id)
        .where(InquiryEvent.inquiry_id == Inquiry.id, InquiryEvent.created_at >= cutoff)
        .exists()
    )
    stmt = (
        select(Inquiry.id)
        .where(Inquiry.status.in_(FINISHED_STATUSES), Inquiry.status_changed_at < cutoff, ~recent_event)
        .order_by(Inquiry.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # two workers never take the same batch (PostgreSQL)
    )
    return list((await session.scalars(stmt)).all())


async def inquiry_identities(session: AsyncSession, *, inquiry_ids: Sequence[int]) -> list[tuple[int, str]]:
    """(id, dedupe key) of each inquiry: what the erasure ledger hashes to recognise it again."""
    stmt = select(Inquiry.id, Inquiry.dedupe_key).where(Inquiry.id.in_(list(inquiry_ids))).order_by(Inquiry.id)
    return [(int(i), str(k)) for i, k in (await session.execute(stmt)).all()]


async def iter_inquiry_identities(session: AsyncSession, *, batch: int = 1000) -> AsyncIterator[list[tuple[int, str]]]:
    """Every inquiry's (id, dedupe key), in batches by id (for applying the ledger after a restore)."""
    after = 0
    while True:
        stmt = (select(Inquiry.id, Inquiry.dedupe_key).where(Inquiry.id > after).order_by(Inquiry.id)
                .limit(batch))
        rows = [(int(i), str(k)) for i, k in (await session.execute(stmt)).all()]
        if not rows:
            return
        yield rows
        after = rows[-1][0]


async def delete_inquiries(session: AsyncSession, *, inquiry_ids: Sequence[int]) -> int:
    """Delete the inquiries with their status changes and notes; returns how many went."""
    ids = list(inquiry_ids)
    if not ids:
        return 0
    await session.execute(delete(InquiryEvent).where(InquiryEvent.inquiry_id.in_(ids)))
    result = await session.execute(delete(Inquiry).where(Inquiry.id.in_(ids)))
    return rowcount(result)
