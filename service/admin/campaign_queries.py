"""Read-only queries of the admin's campaign and subscriber pages that the campaigns domain has no
function for: the campaign list, the campaigns awaiting approval, a subscriber's deliveries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.campaigns.models import Campaign, Delivery, DigestRule
from service.campaigns.stats import CampaignStats, campaign_stats


@dataclass(frozen=True)
class CampaignRow:
    campaign: Campaign
    stats: CampaignStats

    @property
    def awaiting_approval(self) -> bool:
        c = self.campaign
        return c.status == "scheduled" and c.requires_approval and c.approved_at is None


async def list_campaigns(session: AsyncSession, *, before_id: int | None = None, limit: int = 25
                         ) -> list[CampaignRow]:
    """Newest first, each with its figures (campaign_stats: a few indexed counts per campaign)."""
    query = select(Campaign).order_by(Campaign.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Campaign.id < before_id)
    campaigns = (await session.scalars(query)).all()
    return [CampaignRow(c, await campaign_stats(session, campaign_id=c.id)) for c in campaigns]


async def awaiting_approval(session: AsyncSession) -> Sequence[Campaign]:
    return (await session.scalars(
        select(Campaign).where(Campaign.status == "scheduled", Campaign.requires_approval.is_(True),
                               Campaign.approved_at.is_(None)).order_by(Campaign.id)
    )).all()


async def list_rules(session: AsyncSession) -> Sequence[DigestRule]:
    return (await session.scalars(select(DigestRule).order_by(DigestRule.id))).all()


@dataclass(frozen=True)
class DeliveryRow:
    campaign_id: int
    subject: str
    status: str
    bounced: bool
    message_id: str | None
    sent_at: dt.datetime | None
    created_at: dt.datetime
    smtp_response: str | None


async def subscriber_deliveries(session: AsyncSession, *, subscriber_id: int, limit: int = 200
                                ) -> list[DeliveryRow]:
    """Every campaign delivery of one subscriber, newest first."""
    rows = await session.execute(
        select(Delivery.campaign_id, Campaign.subject, Delivery.status, Delivery.bounced, Delivery.message_id,
               Delivery.sent_at, Delivery.created_at, Delivery.smtp_response)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.subscriber_id == subscriber_id).order_by(Delivery.id.desc()).limit(limit)
    )
    return [DeliveryRow(*r) for r in rows.all()]
