"""Inquiries per status from the counters the triggers keep (`inquiry_counts`, migration
0014k_admincounts): exact in any transaction without counting a million rows, and the fold
that keeps those counters few. The dashboard and the inquiry list show these sums."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from service.db import fold_status_counts, status_counts
from service.inquiries.models import HELD, INQUIRY_STATUSES, InquiryCount

FOLD_AT_MOST = 50_000  # counter rows folded per run (the worker runs again at once while there are more)


async def inquiry_counts(session: AsyncSession) -> dict[str, int]:
    """How many inquiries have each status, held included (every status, 0 when none)."""
    return await status_counts(session, InquiryCount, (*INQUIRY_STATUSES, HELD))


async def fold_inquiry_counts(session: AsyncSession) -> int:
    """Fold the oldest appended counter rows into one per status; how many rows fewer there are now."""
    return await fold_status_counts(session, InquiryCount, lock="inquiries-inquiry-counts", limit=FOLD_AT_MOST)
