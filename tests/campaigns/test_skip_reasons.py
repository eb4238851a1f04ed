"""A campaign page says who was skipped and why: the reason is stored on the delivery where the
skip is decided (when queueing: no article on their topics; just before sending: unsubscribed,
bounced, topics changed) and shown in words with counts, and the recipients of one reason on request."""

from __future__ import annotations

from typing import Any

from service.admin.models import StaffUser
from service.newsletter.flows import mark_bounced, unsubscribe_subscriber, update_preferences
from service.settings import Settings
from tests.conftest import Database
from tests.factories import add_subscriber, deliveries, make_campaign, make_staff, sender_for, signed_in_client
from tests.smtp import SmtpServer


async def test_the_campaign_page_says_who_was_skipped_and_why(app: Any, db: Database, settings: Settings,
                                                              smtp: SmtpServer) -> None:
    await add_subscriber(db, "ana@example.org")
    await add_subscriber(db, "nia@example.org", topics=["other"])  # no article is about "other"
    olu = await add_subscriber(db, "olu@example.org")
    pat = await add_subscriber(db, "pat@example.org")
    qin = await add_subscriber(db, "qin@example.org", topics=["OCD"])
    campaign_id = await make_campaign(db, settings)
    async with db.sessions.begin() as session:  # after queueing, before sending
        assert await unsubscribe_subscriber(session, subscriber_id=olu, source="test")
        assert await mark_bounced(session, subscriber_id=pat, reason="550 5.1.1 no such user")
        assert await update_preferences(session, settings=settings, subscriber_id=qin, topics=["other"])

    sender = sender_for(db, settings, smtp.url)
    while await sender.run_once():
        pass
    await sender.transport.close()

    assert [r for m in smtp.received for r in m.recipients] == ["ana@example.org"]
    reasons = {d.email: (d.status, d.skip_reason) for d in await deliveries(db, campaign_id)}
    assert reasons == {"ana@example.org": ("sent", None), "nia@example.org": ("skipped", "no_article"),
                       "olu@example.org": ("skipped", "unsubscribed"), "pat@example.org": ("skipped", "bounced"),
                       "qin@example.org": ("skipped", "no_article")}

    admin: StaffUser = await make_staff(db)
    async with signed_in_client(app, admin) as c:
        page = (await c.get(f"/admin/campaigns/{campaign_id}")).text
        assert "4 recipients were skipped (never sent, and not counted as failed):" in page
        assert "2</a>: none of its articles is on the topics they chose" in page
        assert "1</a>: they unsubscribed after it was queued" in page
        assert "1</a>: their address bounced (suppressed) after it was queued" in page
        assert "nia@example.org" not in page  # who, only on request
        one = (await c.get(f"/admin/campaigns/{campaign_id}?skipped=no_article")).text
        everyone = (await c.get(f"/admin/campaigns/{campaign_id}?skipped=all")).text
        unknown = (await c.get(f"/admin/campaigns/{campaign_id}?skipped=nonsense")).text
    assert "nia@example.org" in one and "qin@example.org" in one and "olu@example.org" not in one
    assert all(f"{who}@example.org" in everyone for who in ("nia", "olu", "pat", "qin"))
    assert "ana@example.org" not in everyone
    assert "Nobody was skipped for this reason." in unknown
