"""Campaign stats for the CLI and the admin: counts per delivery status, bounces, unsubscribes
among the recipients since the campaign started, and the rate and ETA while it is sending."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.campaigns.counts import DeliveryCounts, delivery_counts
from service.campaigns.models import Campaign, Delivery
from service.campaigns.queries import get_campaign, list_campaigns
from service.db import utcnow
from service.newsletter.models import Subscriber

RATE_WINDOW = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class CampaignStats:
    status: str
    total: int
    queued: int  # queued or being sent
    sent: int
    failed: int
    bounced: int
    skipped: int
    unsubscribed_after: int
    rate: float | None  # messages per second over the last minute, while sending
    eta_seconds: float | None

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped


async def campaign_stats(session: AsyncSession, *, campaign_id: int, now: dt.datetime | None = None
                         ) -> CampaignStats:
    """Counts per delivery status, bounces, unsubscribes among its recipients since it started,
    and the send rate with an ETA while it is sending (for the admin)."""
    campaign = await get_campaign(session, campaign_id=campaign_id)
    return (await campaigns_stats(session, [campaign], now=now))[campaign.id]


async def campaigns_stats(session: AsyncSession, campaigns: Sequence[Campaign], *, now: dt.datetime | None = None
                          ) -> dict[int, CampaignStats]:
    """`campaign_stats` of each of `campaigns`, in two grouped queries whatever their number:
    the counters the triggers keep (`service.campaigns.counts`), never the deliveries themselves."""
    now = now or utcnow()
    ids = [c.id for c in campaigns]
    if not ids:
        return {}
    counts = await delivery_counts(session, ids, sent_since=now - RATE_WINDOW)
    unsubscribed = await unsubscribed_after(session, campaigns)
    found = {}
    for campaign in campaigns:
        figures = counts.get(campaign.id) or DeliveryCounts()
        by_status = figures.by_status
        queued = by_status["queued"]
        rate = eta = None
        if campaign.status == "sending":
            window = min(RATE_WINDOW, now - campaign.started_at) if campaign.started_at else RATE_WINDOW
            seconds = max(window.total_seconds(), 1.0)
            rate = figures.sent_since / seconds
            eta = queued / rate if rate > 0 else None
        found[campaign.id] = CampaignStats(
            status=campaign.status, total=sum(by_status.values()), queued=queued, sent=by_status.get("sent", 0),
            failed=by_status.get("failed", 0), bounced=sum(figures.bounced.values()),
            skipped=by_status.get("skipped", 0), unsubscribed_after=int(unsubscribed.get(campaign.id, 0)),
            rate=rate, eta_seconds=eta,
        )
    return found


async def unsubscribed_after(session: AsyncSession, campaigns: Sequence[Campaign]) -> dict[int, int]:
    """How many of each campaign's recipients (sent to) unsubscribed after it started; absent: none.

    The earliest start is also given as a constant: compared only with the joined campaign's
    start, the planner cannot tell how many subscribers qualify, guesses a third of them, and
    reads every subscriber (90–280 ms with 100,000); with the constant it reads the few who
    unsubscribed since, by the unsubscribed_at index (under a millisecond for a recent campaign)."""
    started = [c.started_at for c in campaigns if c.started_at is not None]
    if not started:
        return {}
    rows = await session.execute(
        select(Delivery.campaign_id, func.count()).select_from(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id).join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.campaign_id.in_([c.id for c in campaigns]), Delivery.status == "sent",
               Campaign.started_at.is_not(None), Subscriber.unsubscribed_at > Campaign.started_at,
               Subscriber.unsubscribed_at > min(started))
        .group_by(Delivery.campaign_id))
    return {int(cid): int(n) for cid, n in rows.all()}


@dataclass(frozen=True)
class CampaignRow:
    """A campaign of the admin's list with its figures."""

    campaign: Campaign
    stats: CampaignStats

    @property
    def awaiting_approval(self) -> bool:
        c = self.campaign
        return c.status == "scheduled" and c.requires_approval and c.approved_at is None


async def campaign_rows(session: AsyncSession, *, before_id: int | None = None, limit: int = 25
                        ) -> list[CampaignRow]:
    """`list_campaigns`, each with its figures (`campaigns_stats`: grouped counts for the whole page)."""
    campaigns = await list_campaigns(session, before_id=before_id, limit=limit)
    stats = await campaigns_stats(session, campaigns)
    return [CampaignRow(c, stats[c.id]) for c in campaigns]
