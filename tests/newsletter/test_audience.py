"""The topic rule is written once in Python (`topics_match`, which picks a digest's articles per
recipient) and once in SQL (`wants_topics`, which queues a campaign): they must agree, both for
an audience given as a list and for the topics of a digest's articles."""

from __future__ import annotations

import itertools

from sqlalchemy import delete, select

from service.articles.models import ArticleTopic
from service.campaigns import queries as q
from service.campaigns.models import Delivery
from service.db import utcnow
from service.newsletter.audience import campaign_audience, topics_match
from service.newsletter.models import Subscriber
from service.settings import Settings
from tests.conftest import Database
from tests.factories import add_subscriber, sample_articles

TOPIC_SETS: list[tuple[str, ...]] = [(), ("OCD",), ("PTSD",), ("OCD", "PTSD"), ("anxiety",)]


async def _subscribers(db: Database) -> dict[str, tuple[str, ...]]:
    """One confirmed subscriber per topic set, and one pending subscriber who wants everything."""
    chosen = {f"s{i}@example.org": topics for i, topics in enumerate(TOPIC_SETS)}
    for email, topics in chosen.items():
        await add_subscriber(db, email, topics=topics)
    await add_subscriber(db, "pending@example.org", status="pending")
    return chosen


def test_the_rule_itself() -> None:
    assert topics_match([], ["OCD"]) and topics_match(["OCD"], []) and topics_match([], [])
    assert topics_match(["OCD", "PTSD"], ["PTSD"]) and not topics_match(["OCD"], ["PTSD", "anxiety"])


async def test_audience_in_sql_agrees_with_the_rule(db: Database) -> None:
    chosen = await _subscribers(db)
    for audience in TOPIC_SETS:
        async with db.sessions() as session:
            found = set((await session.scalars(select(Subscriber.email).where(campaign_audience(audience)))).all())
        assert found == {e for e, topics in chosen.items() if topics_match(topics, audience)}, audience


async def test_queued_or_skipped_agrees_with_the_articles_picked_per_recipient(
    db: Database, settings: Settings
) -> None:
    chosen = await _subscribers(db)
    articles = await sample_articles(db, settings)
    for article_topics in itertools.islice(itertools.product(TOPIC_SETS, repeat=2), 0, None, 3):
        async with db.sessions.begin() as session:  # the first two articles get these topics, the rest go
            await session.execute(delete(ArticleTopic))
            for article, topics in zip(articles[:2], article_topics, strict=True):
                session.add_all(ArticleTopic(article_id=article.id, topic=t) for t in topics)
        async with db.sessions.begin() as session:
            campaign = await q.create_campaign(session, subject="Digest", article_ids=[a.id for a in articles[:2]],
                                               now=utcnow())
            await q.start_campaign(session, campaign_id=campaign.id, now=utcnow())
            campaign_id = campaign.id
        async with db.sessions() as session:
            rows = dict((await session.execute(
                select(Delivery.email, Delivery.status).where(Delivery.campaign_id == campaign_id))).all())
        wanted = {e: "queued" if any(topics_match(topics, t) for t in article_topics) else "skipped"
                  for e, topics in chosen.items()}
        assert rows == wanted, article_topics
