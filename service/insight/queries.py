"""Insight's writes: the batched counter upserts and the daily salt (reports: `service.insight.reports`)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Mapping

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import insert_for
from service.insight.models import ClickCount, ClickReader, ClickSalt

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
