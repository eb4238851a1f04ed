"""Campaign stats for the CLI and the admin: counts per delivery status, bounces, unsubscribes
among the recipients since the campaign started, and the rate and ETA while it is sending."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

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
    now = now or utcnow()
    campaign = await get_campaign(session, campaign_id=campaign_id)
    counts: dict[str, int] = dict((await session.execute(
        select(Delivery.status, func.count()).where(Delivery.campaign_id == campaign_id).group_by(Delivery.status)
    )).all())
    bounced = await session.scalar(
        select(func.count()).where(Delivery.campaign_id == campaign_id, Delivery.bounced.is_(True))
    ) or 0
    unsubscribed = 0
    if campaign.started_at is not None:
        unsubscribed = await session.scalar(
            select(func.count()).select_from(Delivery).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.campaign_id == campaign_id, Delivery.status == "sent",
                   Subscriber.unsubscribed_at > campaign.started_at)
        ) or 0
    queued = counts.get("queued", 0) + counts.get("sending", 0)
    rate = eta = None
    if campaign.status == "sending":
        recent = await session.scalar(
            select(func.count()).where(Delivery.campaign_id == campaign_id, Delivery.status == "sent",
                                       Delivery.sent_at > now - RATE_WINDOW)
        ) or 0
        window = min(RATE_WINDOW, now - campaign.started_at) if campaign.started_at else RATE_WINDOW
        seconds = max(window.total_seconds(), 1.0)
        rate = recent / seconds
        eta = queued / rate if rate > 0 else None
    return CampaignStats(
        status=campaign.status, total=sum(counts.values()), queued=queued, sent=counts.get("sent", 0),
        failed=counts.get("failed", 0), bounced=bounced, skipped=counts.get("skipped", 0),
        unsubscribed_after=unsubscribed, rate=rate, eta_seconds=eta,
    )


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
    """`list_campaigns`, each with its figures (campaign_stats: a few indexed counts per campaign)."""
    campaigns = await list_campaigns(session, before_id=before_id, limit=limit)
    return [CampaignRow(c, await campaign_stats(session, campaign_id=c.id)) for c in campaigns]
