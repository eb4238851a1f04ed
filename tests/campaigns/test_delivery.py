"""A digest of the sample feed reaches every confirmed subscriber in its audience exactly once,
with both parts, the right articles, a working unsubscribe link and the bulk-mail headers; the
failure paths (4xx, dropped connections, 5xx) do what an operator expects."""

from __future__ import annotations

import re
from collections import Counter

from service.campaigns import queries as q
from service.campaigns.models import Campaign
from service.campaigns.stats import campaign_stats
from service.db import utcnow
from service.newsletter.flows import unsubscribe_subscriber
from service.newsletter.tokens import read_unsubscribe_token
from service.settings import Settings
from service.tokens import Tokens
from tests.conftest import Database
from tests.factories import add_subscriber, deliveries, make_campaign, sender_for, subscriber
from tests.smtp import SmtpServer


def _parts(message):  # type: ignore[no-untyped-def]
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


async def test_digest_reaches_each_confirmed_subscriber_once_with_their_articles(
    db: Database, settings: Settings, smtp: SmtpServer
) -> None:
    everyone = await add_subscriber(db, "ana@example.org", name="Ana")
    ocd = await add_subscriber(db, "olu@example.org", name="Olu", topics=["OCD"])
    pain = await add_subscriber(db, "pat@example.org", topics=["chronic pain"])
    nothing = await add_subscriber(db, "nia@example.org", topics=["other"])
    for status in ("pending", "unsubscribed", "bounced", "complained"):
        await add_subscriber(db, f"{status}@example.org", status=status)
    campaign_id = await make_campaign(db, settings)

    sender = sender_for(db, settings, smtp.url)
    while await sender.run_once():
        pass
    await sender.transport.close()

    by_rcpt = Counter(r for m in smtp.received for r in m.recipients)
    assert by_rcpt == {"ana@example.org": 1, "olu@example.org": 1, "pat@example.org": 1}
    messages = {m.recipients[0]: m.message for m in smtp.received}
    tokens = Tokens(settings)
    for address, sid in (("ana@example.org", everyone), ("olu@example.org", ocd), ("pat@example.org", pain)):
        msg = messages[address]
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
        assert msg["Subject"] == "This month at the clinic"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Id"] == f"{settings.org_name} <{settings.list_id}>"  # RFC 2919, as in the welcome
        assert msg["Precedence"] == "bulk"
        assert msg["Feedback-ID"].startswith(f"{campaign_id}:")
        url = re.fullmatch(r"<(http://testserver/unsubscribe/(\S+))>", msg["List-Unsubscribe"])
        assert url and read_unsubscribe_token(tokens, url.group(2)) == sid
        text, html = _parts(msg)
        assert url.group(1) in text and url.group(1) in html  # visible unsubscribe / preferences link
        assert "Read more" in html and 'role="article"' in html and "<style" in html
    ana_text, _ = _parts(messages["ana@example.org"])
    assert ana_text.count("Read more: http://testserver/r/") == 5  # counted links (tests/insight)
    assert "Hello Ana," in ana_text
    olu_text, olu_html = _parts(messages["olu@example.org"])
    assert olu_text.count("Read more:") == 1 and "The Therapeutic Benefits of Ketamine" in olu_html
    pat_text, _ = _parts(messages["pat@example.org"])
    assert pat_text.count("Read more:") == 2 and "The Science of Ketamine Therapy" in pat_text
    assert len({m.message["Message-ID"] for m in smtp.received}) == 3

    rows = {r.email: r for r in await deliveries(db, campaign_id)}
    assert set(rows) == {"ana@example.org", "olu@example.org", "pat@example.org", "nia@example.org"}
    assert rows["nia@example.org"].status == "skipped"
    assert rows["ana@example.org"].status == "sent"
    assert rows["ana@example.org"].message_id == messages["ana@example.org"]["Message-ID"]
    assert rows["ana@example.org"].smtp_response.startswith("2.0.0 queued")
    assert nothing not in {m.recipients[0] for m in smtp.received}
    async with db.sessions() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None and campaign.status == "sent" and campaign.sent_at is not None


async def test_subscriber_name_with_html_is_escaped(db: Database, settings: Settings, smtp: SmtpServer) -> None:
    await add_subscriber(db, "eve@example.org", name='<script>alert("x")</script> Eve')
    await make_campaign(db, settings)
    sender = sender_for(db, settings, smtp.url)
    while await sender.run_once():
        pass
    await sender.transport.close()
    (received,) = smtp.received
    _text, html = _parts(received.message)
    assert "<script>" not in html
    assert 'Hello &lt;script&gt;alert("x")&lt;/script&gt; Eve,' in html


async def test_4xx_and_dropped_connections_are_retried_until_delivered(
    db: Database, settings: Settings, smtp: SmtpServer
) -> None:
    for i in range(6):
        await add_subscriber(db, f"r{i}@example.org")
    campaign_id = await make_campaign(db, settings)
    smtp.handler.behaviour.data_failures = ["451 4.3.0 try later", "452 4.2.2 mailbox full"]
    smtp.handler.behaviour.drop_connections = 2
    sender = sender_for(db, settings, smtp.url, backoff_base=0.01, backoff_cap=0.02)
    assert await sender.run_campaign(campaign_id) == "sent"
    await sender.transport.close()
    assert Counter(r for m in smtp.received for r in m.recipients) == {f"r{i}@example.org": 1 for i in range(6)}
    rows = await deliveries(db, campaign_id)
    assert all(r.status == "sent" for r in rows)
    assert sum(r.attempts for r in rows) == 6 + 4


async def test_5xx_on_recipient_fails_and_suppresses_the_address(
    db: Database, settings: Settings, smtp: SmtpServer
) -> None:
    good = await add_subscriber(db, "good@example.org")
    gone = await add_subscriber(db, "gone@example.org")
    campaign_id = await make_campaign(db, settings)
    smtp.handler.behaviour.refuse_recipients = {"gone@example.org": "550 5.1.1 no such user"}
    sender = sender_for(db, settings, smtp.url)
    assert await sender.run_campaign(campaign_id) == "sent"
    await sender.transport.close()
    assert [m.recipients for m in smtp.received] == [["good@example.org"]]
    rows = {r.subscriber_id: r for r in await deliveries(db, campaign_id)}
    assert rows[good].status == "sent"
    assert rows[gone].status == "failed" and rows[gone].bounced and "550 5.1.1" in (rows[gone].smtp_response or "")
    suppressed = await subscriber(db, gone)
    assert suppressed.status == "bounced" and suppressed.bounced_at is not None
    assert "550" in (suppressed.last_bounce or "")
    async with db.sessions() as session:
        stats = await campaign_stats(session, campaign_id=campaign_id, now=utcnow())
    assert (stats.sent, stats.failed, stats.bounced) == (1, 1, 1)


async def test_5xx_on_the_message_fails_without_suppressing(db: Database, settings: Settings, smtp: SmtpServer) -> None:
    sid = await add_subscriber(db, "ana@example.org")
    campaign_id = await make_campaign(db, settings)
    smtp.handler.behaviour.data_failures = ["554 5.7.1 message rejected"]
    sender = sender_for(db, settings, smtp.url)
    assert await sender.run_campaign(campaign_id) == "sent"
    (row,) = await deliveries(db, campaign_id)
    assert row.status == "failed" and not row.bounced
    assert (await subscriber(db, sid)).status == "confirmed"


async def test_queueing_twice_never_adds_a_second_delivery(db: Database, settings: Settings) -> None:
    await add_subscriber(db, "ana@example.org")
    campaign_id = await make_campaign(db, settings)
    async with db.sessions.begin() as session:
        campaign = await q.get_campaign(session, campaign_id=campaign_id)
        assert await q.queue_deliveries(session, campaign=campaign, now=utcnow()) == 0
    assert len(await deliveries(db, campaign_id)) == 1


async def test_queueing_again_adds_only_those_without_a_delivery_and_the_counts_stay_exact(
    db: Database, settings: Settings
) -> None:
    await add_subscriber(db, "ana@example.org")
    campaign_id = await make_campaign(db, settings)  # queued: Ana
    await add_subscriber(db, "olu@example.org")
    for _ in range(2):  # the first run adds Olu, the second nobody
        async with db.sessions.begin() as session:
            campaign = await q.get_campaign(session, campaign_id=campaign_id)
            await q.queue_deliveries(session, campaign=campaign, now=utcnow())
    rows = await deliveries(db, campaign_id)
    assert sorted(row.email for row in rows) == ["ana@example.org", "olu@example.org"]
    async with db.sessions() as session:
        stats = await campaign_stats(session, campaign_id=campaign_id, now=utcnow())
    assert (stats.total, stats.queued) == (2, 2)


async def test_subscriber_who_unsubscribes_after_queueing_is_not_mailed(
    db: Database, settings: Settings, smtp: SmtpServer
) -> None:
    await add_subscriber(db, "ana@example.org")
    gone = await add_subscriber(db, "olu@example.org")
    campaign_id = await make_campaign(db, settings)
    async with db.sessions.begin() as session:
        assert await unsubscribe_subscriber(session, subscriber_id=gone, source="test")

    sender = sender_for(db, settings, smtp.url)
    while await sender.run_once():
        pass
    await sender.transport.close()

    assert [r for m in smtp.received for r in m.recipients] == ["ana@example.org"]
    rows = {r.email: r for r in await deliveries(db, campaign_id)}
    assert rows["olu@example.org"].status == "skipped"
    assert rows["olu@example.org"].smtp_response == "not sent: the subscriber is unsubscribed"
    assert rows["ana@example.org"].status == "sent"
