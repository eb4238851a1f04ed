"""What happens when a day is over: its salt is destroyed and its reader hashes are counted into
daily figures and deleted, while the reports show the same readers before and after."""

from __future__ import annotations

import csv
import datetime as dt
import io

import httpx
from sqlalchemy import select

from service.campaigns import queries as q
from service.db import utcnow
from service.insight.jobs import loops
from service.insight.models import ClickReader, ClickSalt
from service.loops import WorkerContext
from service.mail.transport import mailer_for
from service.settings import Settings
from tests.conftest import Database
from tests.factories import sample_articles


async def _readers(client: httpx.AsyncClient, campaign_id: int) -> dict[tuple[str, str], str]:
    r = await client.get(f"/admin/reports/campaigns/{campaign_id}.csv")
    rows = list(csv.reader(io.StringIO(r.text)))[1:]
    return {(m, item): v for m, item, v in rows if m in ("readers", "readers_by_link")}


async def test_a_past_days_hashes_and_salt_are_gone_and_its_readers_still_counted(
    db: Database, settings: Settings, admin_client: httpx.AsyncClient
) -> None:
    a, b = (await sample_articles(db, settings))[:2]
    today = utcnow().date()
    yesterday = today - dt.timedelta(days=1)
    async with db.sessions.begin() as session:
        campaign = await q.create_campaign(session, subject="Digest", article_ids=[a.id, b.id], now=utcnow())
        await q.start_campaign(session, campaign_id=campaign.id, now=utcnow())
        c = campaign.id
        session.add_all([
            ClickReader(campaign_id=c, link=a.id, day=yesterday, reader="a" * 16),
            ClickReader(campaign_id=c, link=a.id, day=yesterday, reader="b" * 16),
            ClickReader(campaign_id=c, link=b.id, day=yesterday, reader="a" * 16),
            ClickReader(campaign_id=c, link=a.id, day=today, reader="c" * 16),
            ClickSalt(day=yesterday, salt="11" * 32), ClickSalt(day=today, salt="22" * 32),
        ])
    before = await _readers(admin_client, c)
    assert before[("readers", "")] == "3"  # a and b yesterday, c today
    assert before[("readers_by_link", a.title)] == "3" and before[("readers_by_link", b.title)] == "1"

    (end_of_day,) = loops(settings)
    ctx = WorkerContext(settings=settings, sessions=db.sessions, mailer=mailer_for(settings, db.sessions))
    await end_of_day.job(ctx)
    await end_of_day.job(ctx)  # a second run counts nothing twice

    assert await _readers(admin_client, c) == before
    async with db.sessions() as session:
        assert [r.day for r in (await session.scalars(select(ClickReader))).all()] == [today]
        assert [s.day for s in (await session.scalars(select(ClickSalt))).all()] == [today]
