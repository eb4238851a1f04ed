"""Campaign figures counted in grouped queries (service.campaigns.stats): unsubscribes after a
campaign started are counted per campaign from its own start, however many campaigns are asked."""

from __future__ import annotations

import datetime as dt

from service.campaigns.models import Campaign, Delivery
from service.campaigns.stats import campaigns_stats, unsubscribed_after
from service.db import utcnow
from tests.conftest import Database
from tests.factories import add_subscriber


async def test_unsubscribed_after_counts_each_campaigns_recipients_who_left_after_its_own_start(
    db: Database,
) -> None:
    now = utcnow()
    early, late = now - dt.timedelta(days=30), now - dt.timedelta(days=5)
    left = {  # email: when the subscriber unsubscribed (None: still subscribed)
        "before@example.org": now - dt.timedelta(days=40),
        "between@example.org": now - dt.timedelta(days=10),
        "after@example.org": now - dt.timedelta(days=1),
        "stays@example.org": None,
        "failed@example.org": now - dt.timedelta(days=1),
    }
    ids = {email: await add_subscriber(db, email, unsubscribed_at=at) for email, at in left.items()}
    async with db.sessions.begin() as session:
        campaigns = [Campaign(slug=slug, subject=slug, status="sent", started_at=at)
                     for slug, at in (("early", early), ("late", late), ("draft", None))]
        session.add_all(campaigns)
        await session.flush()
        for c in campaigns[:2]:
            session.add_all(Delivery(campaign_id=c.id, subscriber_id=sid, email=email,
                                     status="failed" if email.startswith("failed") else "sent")
                            for email, sid in ids.items())
    early_c, late_c, draft_c = campaigns
    async with db.sessions() as session:
        found = await unsubscribed_after(session, campaigns)
        assert found == {early_c.id: 2, late_c.id: 1}  # between and after; after only (failed: never sent)
        assert await unsubscribed_after(session, [late_c]) == {late_c.id: 1}
        assert await unsubscribed_after(session, [draft_c]) == {}
        stats = await campaigns_stats(session, campaigns)
    assert [stats[c.id].unsubscribed_after for c in campaigns] == [2, 1, 0]
