"""Where readers and clients come from, in aggregate: the content report (per article: newsletter
clicks and readers, inquiries sent from it or from the page right after it, signups made on it)
and the lead sources (inquiries by source page, referrer site, utm source and campaign, topic and
month, each with how far they got: new, contacted, qualified, closed). Read-only.

Pages are compared without their query and fragment (`page_key`): an article reached through a
digest carries utm fields, and is still that article. Held and spam inquiries are no leads and
are left out."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.articles.models import Article
from service.db import hash_aggregates, keeps_lead_source_months, month_bucket
from service.inquiries.models import Inquiry
from service.insight.models import ARCHIVE_LINK, ClickCount, LeadSourceMonth
from service.insight.queries import readers_by_link
from service.newsletter.models import Subscriber

FUNNEL = ("new", "contacted", "qualified", "closed")
ARTICLES_SHOWN = 200
ROWS_SHOWN = 50
DIMENSIONS = {"page": "Source page", "site": "Referrer site", "utm_source": "utm_source",
              "utm_campaign": "utm_campaign", "topic": "Topic", "month": "Month"}
NONE = "(none)"


def page_key(url: str | None) -> str:
    """A page as compared here: host (lower-case) and path without a trailing slash; '' when none."""
    if not url:
        return ""
    parts = urlsplit(url.strip())
    if not parts.netloc:
        return ""
    return f"{parts.netloc.lower()}{parts.path.rstrip('/')}"


def site_of(url: str | None) -> str:
    return urlsplit(url.strip()).netloc.lower() if url and url.strip() else ""


def _leads() -> Any:
    return Inquiry.status.in_(FUNNEL)


@dataclass(frozen=True)
class ContentRow:
    article: Article
    clicks: int
    readers: int
    inquiries: int
    signups: int


async def content_report(session: AsyncSession, *, limit: int = ARTICLES_SHOWN) -> list[ContentRow]:
    """The newest `limit` articles with their newsletter clicks (people only), distinct readers,
    inquiries (sent from the article, or from the page the reader opened right after it) and signups."""
    articles = (await session.scalars(select(Article).order_by(Article.published_at.desc(), Article.id.desc())
                                      .limit(limit))).all()
    clicks = dict((await session.execute(
        select(ClickCount.link, func.sum(ClickCount.clicks))
        .where(ClickCount.kind == "person", ClickCount.link != ARCHIVE_LINK).group_by(ClickCount.link))).all())
    readers = await readers_by_link(session)
    by_key = {page_key(a.link): a.id for a in articles if page_key(a.link)}
    inquiries: dict[int, int] = {}
    if keeps_lead_source_months(session):  # counted already, per month: no scan of the inquiries
        m = LeadSourceMonth
        pairs = await session.execute(select(m.source_page, m.referrer, func.sum(m.inquiries))
                                      .where(m.status.in_(FUNNEL)).group_by(m.source_page, m.referrer)
                                      .having(func.sum(m.inquiries) > 0))
    else:
        pairs = await session.execute(select(Inquiry.source_page, Inquiry.referrer, func.count()).where(_leads())
                                      .group_by(Inquiry.source_page, Inquiry.referrer))
    for source, referrer, n in pairs.all():
        article_id = by_key.get(page_key(source)) or by_key.get(page_key(referrer))
        if article_id is not None:
            inquiries[article_id] = inquiries.get(article_id, 0) + int(n)
    signups: dict[int, int] = {}
    pages = await session.execute(select(Subscriber.signup_page, func.count())
                                  .where(Subscriber.signup_page.is_not(None)).group_by(Subscriber.signup_page))
    for signup_page, n in pages.all():
        article_id = by_key.get(page_key(signup_page))
        if article_id is not None:
            signups[article_id] = signups.get(article_id, 0) + int(n)
    return [ContentRow(a, int(clicks.get(a.id, 0) or 0), int(readers.get(a.id, 0) or 0), inquiries.get(a.id, 0),
                       signups.get(a.id, 0)) for a in articles]


@dataclass
class SourceRow:
    value: str
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FUNNEL, 0))

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def _rows(found: dict[tuple[str, str], int], *, order_by_value: bool, limit: int | None) -> list[SourceRow]:
    rows: dict[str, SourceRow] = {}
    for (value, status), n in found.items():
        row = rows.get(value)
        if row is None:
            row = rows[value] = SourceRow(value)
        row.by_status[status] += n
    if order_by_value:
        return sorted(rows.values(), key=lambda r: r.value)
    ordered = sorted(rows.values(), key=lambda r: (-r.total, r.value))
    return ordered if limit is None else ordered[:limit]


async def lead_sources(session: AsyncSession, *, since: dt.datetime, limit: int | None = ROWS_SHOWN
                       ) -> dict[str, list[SourceRow]]:
    """Inquiries since `since` by each of DIMENSIONS, each row with its count per funnel status;
    the `limit` values with the most inquiries per dimension (None: every value; months: all).
    One scan, grouped by every dimension at once (combinations number at most the inquiries, in
    practice a few thousand), then split per dimension here: each distinct page and referrer is
    reduced (`page_key`, `site_of`) once, and each (value, status) summed in place."""
    found: dict[str, dict[tuple[str, str], int]] = {name: defaultdict(int) for name in DIMENSIONS}
    pages: dict[str | None, str] = {}
    sites: dict[str | None, str] = {}
    by_page, by_site = found["page"], found["site"]
    others = [found[name] for name in ("utm_source", "utm_campaign", "topic", "month")]
    for page, referrer, source, campaign, topic, when, status, n in await _source_counts(session, since=since):
        if (key := pages.get(page)) is None:
            key = pages[page] = page_key(page) or NONE
        if (site := sites.get(referrer)) is None:
            site = sites[referrer] = site_of(referrer) or NONE
        by_page[key, status] += n
        by_site[site, status] += n
        for counts, value in zip(others, (source, campaign, topic, when), strict=True):
            counts[str(value or "") or NONE, status] += n
    return {name: _rows(counts, order_by_value=name == "month", limit=limit) for name, counts in found.items()}


def month_after(when: dt.datetime) -> dt.datetime:
    """The first instant (UTC) of the calendar month after the one `when` is in."""
    first = when.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + dt.timedelta(days=32)).replace(day=1)


async def _source_counts(session: AsyncSession, *, since: dt.datetime) -> list[Any]:
    """Leads since `since` as (page, referrer, utm source, utm campaign, topic, month 'YYYY-MM',
    status, inquiries) rows, one or more per combination. Where lead_source_months is kept, its
    counters give the whole months and only the inquiries of the first, partial month are grouped."""
    await hash_aggregates(session)
    month = month_bucket(session, Inquiry.created_at)
    columns = (Inquiry.source_page, Inquiry.referrer, Inquiry.utm_source, Inquiry.utm_campaign, Inquiry.topic, month,
               Inquiry.status)
    live = select(*columns, func.count()).where(_leads(), Inquiry.created_at >= since)
    if not keeps_lead_source_months(session):
        return list((await session.execute(live.group_by(*columns))).all())
    boundary = month_after(since)
    rows: list[Any] = list((await session.execute(live.where(Inquiry.created_at < boundary).group_by(*columns))).all())
    m = LeadSourceMonth
    counters = (m.source_page, m.referrer, m.utm_source, m.utm_campaign, m.topic, m.month, m.status)
    counted = await session.execute(
        select(*counters, func.sum(m.inquiries)).where(m.month >= boundary.date(), m.status.in_(FUNNEL))
        .group_by(*counters).having(func.sum(m.inquiries) > 0))
    rows += [(*r[:5], f"{r[5]:%Y-%m}", *r[6:]) for r in counted.all()]
    return rows
