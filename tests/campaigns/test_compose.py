"""Composing digests: `digest create` takes every article since the last digest, the preview
shows what a given subscriber gets, the archive shows sent digests without personal parts, and
the embedded default (local mailbox, in-process worker loops) delivers a campaign too."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import func, select, update

from service.articles.models import Article
from service.campaigns import queries as q
from service.campaigns.flows import create_digest, render_preview
from service.campaigns.jobs import campaign_schedule_job, campaign_send_job
from service.campaigns.models import Campaign
from service.campaigns.stats import campaign_stats
from service.db import utcnow
from service.mail.message import parse_raw
from service.mail.models import MailboxMessage
from service.mail.transport import LocalMailboxTransport
from service.settings import Settings
from service.worker import WorkerContext, default_loops
from tests.conftest import Database
from tests.factories import add_subscriber, make_campaign, sample_articles


async def test_digest_create_takes_articles_since_the_last_digest(db: Database, settings: Settings) -> None:
    articles = await sample_articles(db, settings)
    async with db.sessions.begin() as session:
        first = await create_digest(session, settings, now=utcnow(), subject="All so far")
        assert [r.article_id for r in first.article_rows] == [a.id for a in articles]  # newest first
        await q.start_campaign(session, campaign_id=first.id, now=utcnow())
    async with db.sessions.begin() as session:
        with pytest.raises(q.CampaignError, match="no new articles since the last digest"):
            await create_digest(session, settings, now=utcnow())
    async with db.sessions.begin() as session:  # an article published since then: only that one
        new = Article(guid="new-1", link="https://blog.example.com/new/", title="Brand new", summary="s",
                      content_html="<p>x</p>", published_at=utcnow() + dt.timedelta(minutes=1), tags=[])
        session.add(new)
        await session.flush()
        second = await create_digest(session, settings, now=utcnow())
        assert [r.article_id for r in second.article_rows] == [new.id]


async def test_preview_as_a_subscriber_shows_only_their_articles(db: Database, settings: Settings) -> None:
    await add_subscriber(db, "olu@example.org", name="Olu", topics=["OCD"])
    campaign_id = await make_campaign(db, settings, start=False)
    async with db.sessions() as session:
        subject, html, text = await render_preview(session, settings=settings, campaign_id=campaign_id,
                                                   email="OLU@example.org")
        assert subject == "This month at the clinic"
        assert "Hello Olu," in text and text.count("Read more:") == 1
        assert "http://testserver/unsubscribe/" in html and "The Therapeutic Benefits of Ketamine" in html
        _s, everyone, _t = await render_preview(session, settings=settings, campaign_id=campaign_id)
        assert everyone.count(">Read more<") == 5 and "Hello," in everyone
        with pytest.raises(q.CampaignError, match="no subscriber"):
            await render_preview(session, settings=settings, campaign_id=campaign_id, email="nobody@example.org")


async def test_audience_topics_limit_who_is_queued(db: Database, settings: Settings) -> None:
    await add_subscriber(db, "all@example.org")
    await add_subscriber(db, "pain@example.org", topics=["chronic pain"])
    await add_subscriber(db, "ocd@example.org", topics=["OCD"])
    campaign_id = await make_campaign(db, settings, audience_topics=["chronic pain"])
    async with db.sessions() as session:
        stats = await campaign_stats(session, campaign_id=campaign_id, now=utcnow())
        emails = set((await session.scalars(select(q.Delivery.email))).all())
    assert emails == {"all@example.org", "pain@example.org"} and stats.queued == 2


async def test_archive_shows_sent_digests_without_personal_parts(
    db: Database, settings: Settings, client: httpx.AsyncClient
) -> None:
    await add_subscriber(db, "ana@example.org", name="Ana")
    draft_id = await make_campaign(db, settings, subject="Not yet", start=False)
    sent_id = await make_campaign(db, settings, subject="Sent <b>digest</b>")
    async with db.sessions() as session:
        sent = await session.get(Campaign, sent_id)
        draft = await session.get(Campaign, draft_id)
        assert sent is not None and draft is not None
    index = await client.get("/archive")
    assert index.status_code == 200
    assert "Sent &lt;b&gt;digest&lt;/b&gt;" in index.text and "Not yet" not in index.text
    page = await client.get(f"/archive/{sent.slug}")
    assert page.status_code == 200
    assert "The Science of Ketamine Therapy" in page.text and "Read more" in page.text
    assert "Ana" not in page.text and "unsubscribe" not in page.text.lower()
    assert 'style="' not in page.text  # the CSP forbids inline styles on pages
    assert (await client.get(f"/archive/{draft.slug}")).status_code == 404
    assert (await client.get("/archive/no-such-digest")).status_code == 404


async def test_worker_loops_send_a_campaign_into_the_local_mailbox(db: Database, settings: Settings) -> None:
    assert {"campaigns", "campaign-schedule"} <= {loop.name for loop in default_loops(settings)}
    assert "feed" in {loop.name for loop in default_loops(settings.with_(feed_url="https://blog.example.com/feed"))}
    for i in range(3):
        await add_subscriber(db, f"m{i}@example.org")
    campaign_id = await make_campaign(db, settings, start=False)
    async with db.sessions.begin() as session:  # scheduled for a moment ago
        await session.execute(update(Campaign).values(status="scheduled", scheduled_at=utcnow()))
    ctx = WorkerContext(settings=settings, sessions=db.sessions, mailer=LocalMailboxTransport(db.sessions),
                        owner="loop-test")
    await campaign_schedule_job(ctx)
    while await campaign_send_job(ctx):
        pass
    await campaign_send_job(ctx)
    async with db.sessions() as session:
        rows = (await session.scalars(select(MailboxMessage).order_by(MailboxMessage.recipients))).all()
        campaign = await session.get(Campaign, campaign_id)
    assert [r.recipients for r in rows] == ["m0@example.org", "m1@example.org", "m2@example.org"]
    assert campaign is not None and campaign.status == "sent"
    message = parse_raw(rows[0].raw)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(q.Delivery)) == 3
