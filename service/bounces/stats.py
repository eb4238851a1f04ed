"""What staff see of bounces: the list of reports (newest first, by kind, keyset pages), one
subscriber's history, and a campaign's bounce and complaint rates with the thresholds the big
mailbox providers hold bulk senders to. Read-only; none of these commit.

Rates are per recipient the campaign actually tried (deliveries sent or failed; skipped ones
never left): a recipient bounced when the server refused it at send time or a hard or soft
bounce report names its delivery; a recipient complained when a complaint names the campaign.
Complaints come only from feedback loops (ARF reports, providers' webhooks): Gmail sends no
per-message reports, only aggregates in its Postmaster Tools, so the true rate may be higher.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, distinct, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from service.bounces.events import KINDS
from service.bounces.models import BounceEvent
from service.campaigns.counts import delivery_counts
from service.campaigns.models import Campaign, Delivery

# Above these the providers start to filter (Gmail and Yahoo ask bulk senders to stay under 0.3 %
# complaints and recommend 0.1 %); a bounce rate above 2 % says the list is rotting.
COMPLAINT_WARN = 0.001
BOUNCE_WARN = 0.02
Cursor = tuple[dt.datetime, int]


@dataclass(frozen=True)
class BounceRow:
    event: BounceEvent
    campaign_subject: str | None


async def list_bounces(session: AsyncSession, *, kind: str = "", after: Cursor | None = None,
                       limit: int = 50) -> list[BounceRow]:
    """One page of stored reports, newest received first, after the keyset cursor `after`."""
    stmt = select(BounceEvent, Campaign.subject).outerjoin(Campaign, Campaign.id == BounceEvent.campaign_id)
    if kind:
        stmt = stmt.where(BounceEvent.kind == kind)
    if after is not None:
        stmt = stmt.where(tuple_(BounceEvent.received_at, BounceEvent.id)
                          < tuple_(bindparam(None, after[0], type_=BounceEvent.received_at.type), after[1]))
    stmt = stmt.order_by(BounceEvent.received_at.desc(), BounceEvent.id.desc()).limit(limit)
    return [BounceRow(event, subject) for event, subject in (await session.execute(stmt)).all()]


async def subscriber_bounces(session: AsyncSession, *, subscriber_id: int, limit: int = 100) -> list[BounceRow]:
    """One subscriber's reports, newest first (their bounce history)."""
    stmt = (select(BounceEvent, Campaign.subject).outerjoin(Campaign, Campaign.id == BounceEvent.campaign_id)
            .where(BounceEvent.subscriber_id == subscriber_id)
            .order_by(BounceEvent.received_at.desc(), BounceEvent.id.desc()).limit(limit))
    return [BounceRow(event, subject) for event, subject in (await session.execute(stmt)).all()]


async def count_by_kind(session: AsyncSession) -> dict[str, int]:
    rows = (await session.execute(select(BounceEvent.kind, func.count()).group_by(BounceEvent.kind))).all()
    counts = dict.fromkeys(KINDS, 0)
    counts.update({kind: int(n) for kind, n in rows})
    return counts


@dataclass(frozen=True)
class CampaignRates:
    campaign_id: int
    subject: str
    attempted: int  # deliveries sent or failed
    bounced: int
    complained: int

    @property
    def bounce_rate(self) -> float:
        return self.bounced / self.attempted if self.attempted else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complained / self.attempted if self.attempted else 0.0

    @property
    def bounce_warning(self) -> bool:
        return self.bounce_rate > BOUNCE_WARN

    @property
    def complaint_warning(self) -> bool:
        return self.complaint_rate > COMPLAINT_WARN


async def campaign_rates(session: AsyncSession, *, campaign_id: int) -> CampaignRates | None:
    """A campaign's bounce and complaint rates; None when there is no such campaign."""
    return (await campaigns_rates(session, campaign_ids=[campaign_id])).get(campaign_id)


async def campaigns_rates(session: AsyncSession, *, campaign_ids: Sequence[int]) -> dict[int, CampaignRates]:
    """The bounce and complaint rates of each of `campaign_ids` that exists, in three grouped
    queries whatever their number (report pages list a dozen campaigns at once)."""
    ids = list(dict.fromkeys(campaign_ids))
    if not ids:
        return {}
    subjects = dict((await session.execute(select(Campaign.id, Campaign.subject).where(Campaign.id.in_(ids)))).all())
    tried = and_(Delivery.campaign_id.in_(subjects), Delivery.status.in_(("sent", "failed")))
    counts = {c: (f.by_status["sent"] + f.by_status["failed"], f.bounced["sent"] + f.bounced["failed"])
              for c, f in (await delivery_counts(session, list(subjects))).items()}
    # Deliveries not flagged at send time that a later hard or soft report names: found from the
    # (few) reports, so the campaign's deliveries are not probed one by one.
    reported = dict((await session.execute(
        select(Delivery.campaign_id, func.count(distinct(Delivery.id)))
        .join(BounceEvent, BounceEvent.delivery_id == Delivery.id)
        .where(tried, Delivery.bounced.is_not(True), BounceEvent.kind.in_(("hard", "soft")))
        .group_by(Delivery.campaign_id))).all())
    complained = dict((await session.execute(
        select(BounceEvent.campaign_id, func.count(distinct(BounceEvent.recipient_key)))
        .where(BounceEvent.campaign_id.in_(subjects), BounceEvent.kind == "complaint")
        .group_by(BounceEvent.campaign_id))).all())
    found = {}
    for cid, subject in subjects.items():
        attempted, bounced = counts.get(cid, (0, 0))
        found[cid] = CampaignRates(cid, subject, attempted, bounced + int(reported.get(cid, 0)),
                                   int(complained.get(cid, 0)))
    return found


async def last_sent_campaign_rates(session: AsyncSession) -> CampaignRates | None:
    """The rates of the campaign sent last (None before the first one is sent)."""
    last = await session.scalar(select(Campaign.id).where(Campaign.status == "sent", Campaign.sent_at.is_not(None))
                                .order_by(Campaign.sent_at.desc(), Campaign.id.desc()).limit(1))
    return await campaign_rates(session, campaign_id=last) if last is not None else None


def percent(rate: float) -> str:
    """0.00123 -> '0.12 %'."""
    return f"{rate * 100:.2f} %"

