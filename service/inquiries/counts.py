"""Inquiries per status from the counters the triggers keep (`inquiry_counts`, migration
0014k_admincounts): exact in any transaction without counting a million rows, and the fold
that keeps those counters few. The dashboard and the inquiry list show these sums."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import take_oldest
from service.inquiries.models import HELD, INQUIRY_STATUSES, InquiryCount

FOLD_AT_MOST = 50_000  # counter rows folded per run (the worker runs again at once while there are more)


async def inquiry_counts(session: AsyncSession) -> dict[str, int]:
    """How many inquiries have each status, held included (every status, 0 when none)."""
    rows = await session.execute(select(InquiryCount.status, func.sum(InquiryCount.n)).group_by(InquiryCount.status))
    found = {status: int(n or 0) for status, n in rows.all()}
    return {status: found.get(status, 0) for status in (*INQUIRY_STATUSES, HELD)}


async def fold_inquiry_counts(session: AsyncSession) -> int:
    """Fold the oldest appended counter rows into one per status (zero sums go); how many rows
    fewer there are now (0: nothing to fold)."""
    gone = await take_oldest(session, InquiryCount, InquiryCount.status, InquiryCount.n,
                             lock="inquiries-inquiry-counts", limit=FOLD_AT_MOST)
    sums: Counter[str] = Counter()
    for status, n in gone:
        sums[status] += int(n)
    kept = [{"status": s, "n": n} for s, n in sums.items() if n]
    if kept:
        await session.execute(insert(InquiryCount), kept)
    return len(gone) - len(kept)
