"""The lead sources on PostgreSQL come from monthly counters kept by triggers (migration
0012a_leadmonths) plus the inquiries of the first, partial month; on SQLite from the inquiries
alone. Either way the report equals the inquiries counted one by one, after inserts, status
changes, edits and deletes made by any path (here plain SQL, as an import or a fix would)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import delete, select, update

from service.db import utcnow
from service.inquiries.models import Inquiry
from service.insight.models import LeadSourceMonth
from service.insight.queries import compact_lead_source_months
from service.insight.sources import DIMENSIONS, FUNNEL, NONE, lead_sources, month_after, page_key, site_of
from tests.conftest import Database
from tests.factories import add_inquiries, inquiry_row

STATUSES = ("new", "contacted", "qualified", "closed", "held", "spam")


async def _expected(db: Database, since: dt.datetime) -> dict[str, dict[str, dict[str, int]]]:
    """The report computed from every stored inquiry, one at a time."""
    found: dict[str, dict[str, dict[str, int]]] = {name: defaultdict(lambda: dict.fromkeys(FUNNEL, 0))
                                                   for name in DIMENSIONS}
    async with db.sessions() as session:
        for i in (await session.scalars(select(Inquiry))).all():
            if i.status not in FUNNEL or i.created_at < since:
                continue
            values = {"page": page_key(i.source_page), "site": site_of(i.referrer), "utm_source": i.utm_source,
                      "utm_campaign": i.utm_campaign, "topic": i.topic,
                      "month": f"{i.created_at.astimezone(dt.UTC):%Y-%m}"}
            for name, value in values.items():
                found[name][value or NONE][i.status] += 1
    return {name: dict(rows) for name, rows in found.items()}


async def _report(db: Database, since: dt.datetime) -> dict[str, dict[str, dict[str, int]]]:
    async with db.sessions() as session:
        found = await lead_sources(session, since=since, limit=None)
    return {name: {r.value: r.by_status for r in rows} for name, rows in found.items()}


async def test_the_lead_sources_equal_the_inquiries_counted_one_by_one_through_every_kind_of_change(
    db: Database,
) -> None:
    now = utcnow()
    since = now - dt.timedelta(days=31 * 6)
    first_month_end = month_after(since)
    moments = [since + dt.timedelta(hours=1), first_month_end - dt.timedelta(seconds=1), first_month_end,
               first_month_end + dt.timedelta(days=40), now - dt.timedelta(days=3), now,
               since - dt.timedelta(seconds=1), since - dt.timedelta(days=90)]
    rows = [inquiry_row(i, created_at=moments[i % len(moments)], status=STATUSES[i % len(STATUSES)],
                        topic=("anxiety", "PTSD", "depression")[i % 3],
                        source_page=f"https://blog.clinic.test/posts/{i % 4}/?utm_source=x" if i % 5 else "",
                        referrer=("https://www.google.com/search?q=k", "", "https://Duck.example/")[i % 3],
                        utm_source="newsletter" if i % 2 else "", utm_campaign=f"digest-{i % 3}" if i % 2 else "")
            for i in range(96)]
    ids = await add_inquiries(db, rows)
    async with db.sessions() as session:  # PostgreSQL: counted by the triggers, as the inquiries were stored
        counters = (await session.scalars(select(LeadSourceMonth))).all()
    assert sum(c.inquiries for c in counters) == (len(rows) if db.is_postgres else 0)
    assert await _report(db, since) == await _expected(db, since)

    async with db.sessions.begin() as session:  # status changes, an edit, deletes, one more inquiry
        await session.execute(update(Inquiry).where(Inquiry.id.in_(ids[:30])).values(status="closed"))
        await session.execute(update(Inquiry).where(Inquiry.id.in_(ids[30:40])).values(status="held"))
        await session.execute(update(Inquiry).where(Inquiry.id == ids[42]).values(
            source_page="https://blog.clinic.test/contact", created_at=now - dt.timedelta(days=1)))
        await session.execute(delete(Inquiry).where(Inquiry.id.in_(ids[50:70])))
    await add_inquiries(db, [inquiry_row(500, created_at=now, referrer="https://www.google.com/")])
    expected = await _expected(db, since)
    assert await _report(db, since) == expected
    assert expected["page"]["blog.clinic.test/contact"] == {"new": 1, "contacted": 0, "qualified": 0, "closed": 0}

    async with db.sessions.begin() as session:  # the worker folds the appended rows into one per counter
        appended = len((await session.scalars(select(LeadSourceMonth))).all())
        assert await compact_lead_source_months(session) == appended
    async with db.sessions() as session:
        folded = (await session.scalars(select(LeadSourceMonth))).all()
    assert len({(c.month, c.status, c.source_key) for c in folded}) == len(folded) <= appended
    assert await _report(db, since) == expected

    async with db.sessions.begin() as session:
        await session.execute(delete(Inquiry))
        await compact_lead_source_months(session)
    assert await _report(db, since) == {name: {} for name in DIMENSIONS}
    async with db.sessions() as session:  # counters at zero go when folded
        assert (await session.scalars(select(LeadSourceMonth))).all() == []
