"""Insight's writes: the batched counter upserts and the daily salt (reports: `service.insight.reports`)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import insert_for, keeps_lead_source_months, lock_names, rowcount
from service.insight.models import ANY_LINK, ClickCount, ClickReader, ClickReaderCount, ClickSalt, LeadSourceMonth

CountKey = tuple[int, int, dt.datetime, str]  # campaign, link, hour, kind
ReaderKey = tuple[int, int, dt.date, str]  # campaign, link, day, reader hash


async def add_click_counts(session: AsyncSession, counts: Mapping[CountKey, int]) -> None:
    """Add `counts` to the stored counters (one upsert, run for every row at once)."""
    if not counts:
        return
    insert = insert_for(session)(ClickCount)
    stmt = insert.on_conflict_do_update(
        index_elements=["campaign_id", "link", "hour", "kind"],
        set_={"clicks": ClickCount.clicks + insert.excluded.clicks},
    )
    await session.execute(stmt, [{"campaign_id": c, "link": link, "hour": h, "kind": k, "clicks": n}
                                 for (c, link, h, k), n in counts.items()])


async def add_click_readers(session: AsyncSession, readers: Iterable[ReaderKey]) -> None:
    """Record distinct readers; one already recorded for that link and day is kept once."""
    rows = [{"campaign_id": c, "link": link, "day": d, "reader": r} for c, link, d, r in readers]
    if not rows:
        return
    stmt = insert_for(session)(ClickReader).on_conflict_do_nothing(
        index_elements=["campaign_id", "link", "day", "reader"])
    await session.execute(stmt, rows)


async def todays_salt(session: AsyncSession, *, day: dt.date) -> str:
    """The salt of `day` (made by whichever process asks first); every older salt is deleted,
    so the hashes of past days can no longer be matched to an address."""
    await destroy_old_salts(session, today=day)
    stmt = insert_for(session)(ClickSalt).on_conflict_do_nothing(index_elements=["day"])
    await session.execute(stmt, [{"day": day, "salt": secrets.token_hex(32)}])
    return str(await session.scalar(select(ClickSalt.salt).where(ClickSalt.day == day)))


async def destroy_old_salts(session: AsyncSession, *, today: dt.date) -> None:
    """Delete the salts of the days before `today`."""
    await session.execute(delete(ClickSalt).where(ClickSalt.day < today))


async def roll_up_readers(session: AsyncSession, *, today: dt.date) -> int:
    """Count the reader hashes of the days before `today` into ClickReaderCount (per link, and
    per campaign over any link) and delete them: a hash is kept only for the day it was made.
    Returns the hashes deleted. Serialised, so two workers never count the same rows twice."""
    await lock_names(session, "insight-roll-up")
    past = ClickReader.day < today
    per_link = (await session.execute(
        select(ClickReader.campaign_id, ClickReader.link, ClickReader.day, func.count()).where(past)
        .group_by(ClickReader.campaign_id, ClickReader.link, ClickReader.day))).all()
    per_campaign = (await session.execute(
        select(ClickReader.campaign_id, ClickReader.day, func.count(ClickReader.reader.distinct())).where(past)
        .group_by(ClickReader.campaign_id, ClickReader.day))).all()
    rows = [{"campaign_id": c, "link": link, "day": d, "readers": int(n)} for c, link, d, n in per_link]
    rows += [{"campaign_id": c, "link": ANY_LINK, "day": d, "readers": int(n)} for c, d, n in per_campaign]
    if rows:
        insert = insert_for(session)(ClickReaderCount)
        await session.execute(insert.on_conflict_do_update(
            index_elements=["campaign_id", "link", "day"],
            set_={"readers": ClickReaderCount.readers + insert.excluded.readers}), rows)
    return rowcount(await session.execute(delete(ClickReader).where(past)))


async def readers_by_link(session: AsyncSession, *, campaign_id: int | None = None) -> dict[int, int]:
    """Distinct readers per link (of one campaign, or summed over every campaign): the counts of
    past days plus today's hashes (or any not rolled up yet)."""
    counted = (select(ClickReaderCount.link, func.sum(ClickReaderCount.readers))
               .where(ClickReaderCount.link != ANY_LINK).group_by(ClickReaderCount.link))
    current = select(ClickReader.link, func.count()).group_by(ClickReader.link)
    if campaign_id is not None:
        counted = counted.where(ClickReaderCount.campaign_id == campaign_id)
        current = current.where(ClickReader.campaign_id == campaign_id)
    found: dict[int, int] = {}
    for stmt in (counted, current):
        for link, n in (await session.execute(stmt)).all():
            found[int(link)] = found.get(int(link), 0) + int(n or 0)
    return found


async def campaign_readers(session: AsyncSession, *, campaign_id: int) -> int:
    """Distinct readers of any of a campaign's links (one per day: the salt rotates daily)."""
    return (await campaigns_readers(session, campaign_ids=[campaign_id])).get(campaign_id, 0)


async def campaigns_readers(session: AsyncSession, *, campaign_ids: Sequence[int]) -> dict[int, int]:
    """`campaign_readers` of each of `campaign_ids` (absent: none), in two grouped queries."""
    ids = list(dict.fromkeys(campaign_ids))
    if not ids:
        return {}
    found: dict[int, int] = {}
    past = (select(ClickReaderCount.campaign_id, func.sum(ClickReaderCount.readers))
            .where(ClickReaderCount.campaign_id.in_(ids), ClickReaderCount.link == ANY_LINK)
            .group_by(ClickReaderCount.campaign_id))
    pairs = (select(ClickReader.campaign_id, ClickReader.day, ClickReader.reader)
             .where(ClickReader.campaign_id.in_(ids)).distinct().subquery())
    current = select(pairs.c.campaign_id, func.count()).group_by(pairs.c.campaign_id)
    for stmt in (past, current):
        for campaign_id, n in (await session.execute(stmt)).all():
            found[int(campaign_id)] = found.get(int(campaign_id), 0) + int(n or 0)
    return found


_LEAD_DIMENSIONS = "month, status, source_key, source_page, referrer, utm_source, utm_campaign, topic"
_COMPACT = text(f"""
    WITH gone AS (DELETE FROM lead_source_months WHERE id <= :last RETURNING {_LEAD_DIMENSIONS}, inquiries)
    INSERT INTO lead_source_months ({_LEAD_DIMENSIONS}, inquiries)
    SELECT {_LEAD_DIMENSIONS}, sum(inquiries) FROM gone GROUP BY {_LEAD_DIMENSIONS} HAVING sum(inquiries) <> 0""")


async def compact_lead_source_months(session: AsyncSession) -> int:
    """Fold the rows the triggers appended to lead_source_months into one per counter (those
    summing to zero go); the rows there were. Rows appended meanwhile are left for next time,
    and inquiries are never waited for: the triggers only ever add rows. PostgreSQL only."""
    if not keeps_lead_source_months(session):
        return 0
    await lock_names(session, "insight-lead-months")
    last = await session.scalar(select(func.max(LeadSourceMonth.id)))
    if last is None:
        return 0
    before = int(await session.scalar(select(func.count()).where(LeadSourceMonth.id <= last)) or 0)
    await session.execute(_COMPACT, {"last": last})
    return before
