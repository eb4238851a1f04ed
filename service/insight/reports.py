"""The campaign report: what a sent campaign did (delivered, bounced, complained, unsubscribed
after it; clicks and distinct readers per link and over its first hours; click-through rate; the
inquiries that came with its utm_campaign), beside the campaigns sent before it. Read-only.

Click-through rate = distinct readers / delivered: the share of the people it reached who
followed at least one link (estimated: a reader is counted once per day, see service.insight.counter).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.bounces.stats import CampaignRates, campaigns_rates
from service.campaigns.models import Campaign
from service.campaigns.queries import campaign_article_titles
from service.campaigns.stats import unsubscribed_after
from service.inquiries.models import Inquiry
from service.insight.models import ARCHIVE_LINK, ClickCount
from service.insight.queries import campaigns_readers, readers_by_link

HOURS_SHOWN = 48
PREVIOUS_SHOWN = 5
FUNNEL = ("new", "contacted", "qualified", "closed")


@dataclass(frozen=True)
class LinkRow:
    link: int
    title: str
    clicks: int
    readers: int
    scanner_clicks: int


@dataclass(frozen=True)
class CampaignSummary:
    campaign: Campaign
    delivered: int
    clicks: int
    readers: int
    inquiries: int
    rates: CampaignRates | None = None
    inquiries_by_status: dict[str, int] = field(default_factory=dict)

    @property
    def ctr(self) -> float | None:
        return self.readers / self.delivered if self.delivered else None


@dataclass(frozen=True)
class CampaignReport:
    summary: CampaignSummary
    bounced: int
    complained: int
    unsubscribed_after: int
    scanners: dict[str, int]
    links: list[LinkRow]
    hours: list[tuple[dt.datetime, int]]
    later_clicks: int
    inquiries_by_status: dict[str, int]
    previous: list[CampaignSummary] = field(default_factory=list)


async def campaign_summaries(session: AsyncSession, campaigns: Sequence[Campaign]) -> list[CampaignSummary]:
    """Delivered, people's clicks, distinct readers and inquiries (utm_campaign = the slug, not
    held or spam) of each campaign; grouped queries for all of them at once, never one per campaign."""
    ids, slugs = [c.id for c in campaigns], [c.slug for c in campaigns]
    clicks = dict((await session.execute(
        select(ClickCount.campaign_id, func.sum(ClickCount.clicks))
        .where(ClickCount.campaign_id.in_(ids), ClickCount.kind == "person").group_by(ClickCount.campaign_id))).all())
    inquiries: dict[str, dict[str, int]] = {slug: dict.fromkeys(FUNNEL, 0) for slug in slugs}
    for slug, status, n in (await session.execute(
            select(Inquiry.utm_campaign, Inquiry.status, func.count())
            .where(Inquiry.utm_campaign.in_(slugs), Inquiry.status.in_(FUNNEL))
            .group_by(Inquiry.utm_campaign, Inquiry.status))).all():
        inquiries[slug][status] = int(n)
    all_rates = await campaigns_rates(session, campaign_ids=ids)
    readers = await campaigns_readers(session, campaign_ids=ids)
    found = []
    for c in campaigns:
        rates = all_rates.get(c.id)
        delivered = (rates.attempted - rates.bounced) if rates else 0
        found.append(CampaignSummary(c, delivered, int(clicks.get(c.id, 0) or 0), readers.get(c.id, 0),
                                     sum(inquiries[c.slug].values()), rates, inquiries[c.slug]))
    return found


async def campaign_report(session: AsyncSession, campaign: Campaign) -> CampaignReport:
    previous_rows = (await session.scalars(
        select(Campaign).where(Campaign.started_at.is_not(None), Campaign.id != campaign.id,
                               Campaign.started_at < (campaign.started_at or dt.datetime.max.replace(tzinfo=dt.UTC)))
        .order_by(Campaign.started_at.desc()).limit(PREVIOUS_SHOWN))).all()
    summary, *previous = await campaign_summaries(session, [campaign, *previous_rows])
    rates = summary.rates
    unsubscribed = await unsubscribed_after(session, [campaign])
    titles = await campaign_article_titles(session, campaign_id=campaign.id)
    titles[ARCHIVE_LINK] = "View in browser (the web version)"
    by_link: dict[int, dict[str, int]] = {}
    scanners: dict[str, int] = {}
    rows = await session.execute(select(ClickCount.link, ClickCount.kind, func.sum(ClickCount.clicks))
                                 .where(ClickCount.campaign_id == campaign.id)
                                 .group_by(ClickCount.link, ClickCount.kind))
    for link, kind, n in rows.all():
        counts = by_link.setdefault(link, {})
        counts[kind] = counts.get(kind, 0) + int(n or 0)
        if kind != "person":
            scanners[kind] = scanners.get(kind, 0) + int(n or 0)
    readers = await readers_by_link(session, campaign_id=campaign.id)
    links = [LinkRow(link, titles.get(link, f"Article {link} (no longer in the campaign)"),
                     by_link.get(link, {}).get("person", 0), int(readers.get(link, 0)),
                     sum(n for k, n in by_link.get(link, {}).items() if k != "person"))
             for link in [*(i for i in titles if i != ARCHIVE_LINK), *(i for i in by_link if i not in titles),
                          ARCHIVE_LINK]]
    hours, later = await _hours(session, campaign)
    return CampaignReport(
        summary=summary, bounced=rates.bounced if rates else 0, complained=rates.complained if rates else 0,
        unsubscribed_after=unsubscribed.get(campaign.id, 0), scanners=scanners, links=links, hours=hours,
        later_clicks=later, inquiries_by_status=summary.inquiries_by_status,
        previous=previous,
    )


async def _hours(session: AsyncSession, campaign: Campaign) -> tuple[list[tuple[dt.datetime, int]], int]:
    """Person clicks per hour over the first HOURS_SHOWN hours after the campaign started, and the rest."""
    found = {h: int(n) for h, n in (await session.execute(
        select(ClickCount.hour, func.sum(ClickCount.clicks))
        .where(ClickCount.campaign_id == campaign.id, ClickCount.kind == "person").group_by(ClickCount.hour))).all()}
    start = (campaign.started_at or min(found, default=None) or dt.datetime.now(dt.UTC)).replace(
        minute=0, second=0, microsecond=0)
    hours = [start + dt.timedelta(hours=i) for i in range(HOURS_SHOWN)]
    shown = set(hours)
    return [(h, found.get(h, 0)) for h in hours], sum(n for h, n in found.items() if h not in shown)
