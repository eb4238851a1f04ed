"""Helpers for campaign tests: subscribers in every state, the sample articles, a started digest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from service.articles.flows import import_articles
from service.articles.models import Article
from service.campaigns import queries as q
from service.campaigns.models import Delivery
from service.campaigns.sender import CampaignSender
from service.campaigns.throttle import TokenBucket
from service.db import utcnow
from service.mail.bulk import SmtpBulkTransport
from service.newsletter.models import Subscriber, SubscriberTopic
from service.settings import Settings
from tests.conftest import Database

SAMPLE = Path("/work/shared/sample-blog")
if not SAMPLE.exists():
    SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "sample-blog"


async def add_subscriber(
    db: Database, email: str, *, name: str = "", status: str = "confirmed", topics: Sequence[str] = ()
) -> int:
    async with db.sessions.begin() as session:
        row = Subscriber(email=email, email_key=email.lower(), name=name, status=status, confirmed_at=utcnow())
        row.topic_rows = [SubscriberTopic(topic=t) for t in topics]
        session.add(row)
        await session.flush()
        return row.id


async def sample_articles(db: Database, settings: Settings) -> list[Article]:
    await import_articles(db.sessions, settings, [str(SAMPLE / "feed.xml")])
    async with db.sessions() as session:
        return list((await session.scalars(select(Article).order_by(Article.published_at.desc()))).all())


async def make_campaign(
    db: Database, settings: Settings, *, subject: str = "This month at the clinic",
    audience_topics: Sequence[str] = (), start: bool = True,
) -> int:
    articles = await sample_articles(db, settings)
    async with db.sessions.begin() as session:
        campaign = await q.create_campaign(
            session, subject=subject, article_ids=[a.id for a in articles], now=utcnow(),
            preheader="Five articles on ketamine-assisted therapy", intro="Here is what we wrote.\n\nEnjoy!",
            audience_topics=audience_topics,
        )
        if start:
            await q.start_campaign(session, campaign_id=campaign.id, now=utcnow())
        return campaign.id


def sender_for(db: Database, settings: Settings, smtp_url: str, *, owner: str = "w1", **kw: object) -> CampaignSender:
    transport = SmtpBulkTransport.from_url(smtp_url, concurrency=2, timeout=5)
    kw.setdefault("bucket", TokenBucket(0))
    return CampaignSender(db.sessions, settings, transport, owner=owner, **kw)  # type: ignore[arg-type]


async def deliveries(db: Database, campaign_id: int) -> list[Delivery]:
    async with db.sessions() as session:
        rows = await session.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id)
                                     .order_by(Delivery.id))
        return list(rows.all())


async def subscriber(db: Database, subscriber_id: int) -> Subscriber:
    async with db.sessions() as session:
        row = await session.get(Subscriber, subscriber_id)
        assert row is not None
        return row
