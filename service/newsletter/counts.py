"""Subscribers per status (`subscriber_counts`, migration 0013m_counters) and confirmed and
unsubscribed per day (`subscriber_days`, 0014k_admincounts) from the counters the triggers
keep: exact in any transaction without counting a million rows, and the folds that keep those
counters few. The sums are what the dashboard and the subscriber list show."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import as_date, fold_status_counts, status_counts, take_oldest
from service.newsletter.models import SUBSCRIBER_STATUSES, SubscriberCount, SubscriberDay

FOLD_AT_MOST = 50_000  # counter rows folded per run (the worker runs again at once while there are more)


async def subscribers_by_status(session: AsyncSession) -> dict[str, int]:
    """How many subscribers have each status (every status, 0 when none)."""
    return await status_counts(session, SubscriberCount, SUBSCRIBER_STATUSES)


async def fold_subscriber_counts(session: AsyncSession) -> int:
    """Fold the oldest appended counter rows into one per status; how many rows fewer there are now."""
    return await fold_status_counts(session, SubscriberCount, lock="newsletter-subscriber-counts",
                                    limit=FOLD_AT_MOST)


async def subscribers_per_day(session: AsyncSession, *, since: dt.date) -> dict[dt.date, tuple[int, int]]:
    """Per UTC day from `since` on: (confirmed, unsubscribed) that day; days with neither are absent."""
    rows = await session.execute(select(SubscriberDay.day, func.sum(SubscriberDay.confirmed),
                                        func.sum(SubscriberDay.unsubscribed))
                                 .where(SubscriberDay.day >= since).group_by(SubscriberDay.day))
    return {as_date(day): (int(c or 0), int(u or 0)) for day, c, u in rows.all()}


async def fold_subscriber_days(session: AsyncSession) -> int:
    """Fold the oldest appended day counters into one per day (zero sums go); how many rows
    fewer there are now (0: nothing to fold)."""
    gone = await take_oldest(session, SubscriberDay, SubscriberDay.day, SubscriberDay.confirmed,
                             SubscriberDay.unsubscribed, lock="newsletter-subscriber-days", limit=FOLD_AT_MOST)
    sums: dict[dt.date, list[int]] = {}
    for day, confirmed, unsubscribed in gone:
        total = sums.setdefault(as_date(day), [0, 0])
        total[0] += int(confirmed)
        total[1] += int(unsubscribed)
    kept = [{"day": d, "confirmed": c, "unsubscribed": u} for d, (c, u) in sums.items() if c or u]
    if kept:
        await session.execute(insert(SubscriberDay), kept)
    return len(gone) - len(kept)
