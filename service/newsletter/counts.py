"""Subscribers per status from the counters the triggers keep (`subscriber_counts`, migration
0013m_counters): exact in any transaction without counting a million rows, and the fold that
keeps those counters few. The sums are what the dashboard and the subscriber list show."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import take_oldest
from service.newsletter.models import SUBSCRIBER_STATUSES, SubscriberCount

FOLD_AT_MOST = 50_000  # counter rows folded per run (the worker runs again at once while there are more)


async def subscribers_by_status(session: AsyncSession) -> dict[str, int]:
    """How many subscribers have each status (every status, 0 when none)."""
    rows = await session.execute(select(SubscriberCount.status, func.sum(SubscriberCount.n))
                                 .group_by(SubscriberCount.status))
    found = {status: int(n or 0) for status, n in rows.all()}
    return {status: found.get(status, 0) for status in SUBSCRIBER_STATUSES}


async def fold_subscriber_counts(session: AsyncSession) -> int:
    """Fold the oldest appended counter rows into one per status (zero sums go); how many rows
    fewer there are now (0: nothing to fold)."""
    gone = await take_oldest(session, SubscriberCount, SubscriberCount.status, SubscriberCount.n,
                             lock="newsletter-subscriber-counts", limit=FOLD_AT_MOST)
    sums: Counter[str] = Counter()
    for status, n in gone:
        sums[status] += int(n)
    kept = [{"status": s, "n": n} for s, n in sums.items() if n]
    if kept:
        await session.execute(insert(SubscriberCount), kept)
    return len(gone) - len(kept)
