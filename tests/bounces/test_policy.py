"""What a bounce or complaint does, end to end from a real send: the VERP address the SMTP
server saw names the delivery; a hard bounce suppresses at once, soft ones at the limit, a
complaint for good; the same report twice counts once; a forged, unknown or missing return
token on an emailed report changes nothing; a bounced automatic answer flags the inquiry."""

from __future__ import annotations

import datetime as dt

import httpx

from service.bounces.returnpath import ReturnToken, make_token, read_address
from service.db import utcnow
from service.inquiries.models import Inquiry
from service.mail.outbox import OutboxWorker
from service.mail.transport import SmtpTransport
from service.settings import Settings
from tests.bounces.helpers import audit_rows, event, record_one, stored_events, token_of
from tests.campaigns.helpers import add_subscriber, deliveries, make_campaign, sender_for, subscriber
from tests.conftest import Database
from tests.inquiries.conftest import posted_id
from tests.newsletter.helpers import signup
from tests.smtp import SmtpServer


async def _send_campaign(db: Database, settings: Settings, smtp: SmtpServer) -> int:
    campaign_id = await make_campaign(db, settings)
    sender = sender_for(db, settings, smtp.url)
    assert await sender.run_campaign(campaign_id) == "sent"
    await sender.transport.close()
    return campaign_id


async def _deliver_outbox(db: Database, settings: Settings, smtp: SmtpServer) -> int:
    worker = OutboxWorker(db.sessions, SmtpTransport(smtp.url, timeout=5), owner="t", settings=settings)
    try:
        return await worker.drain()
    finally:
        await worker.mailer.close()


async def test_campaign_is_sent_from_a_verp_address_and_a_hard_bounce_suppresses_at_once(
        db: Database, settings: Settings, smtp: SmtpServer) -> None:
    ana = await add_subscriber(db, "ana@example.org")
    ben = await add_subscriber(db, "ben@example.org")
    campaign_id = await _send_campaign(db, settings, smtp)
    rows = {r.email: r for r in await deliveries(db, campaign_id)}
    senders = {m.recipients[0]: m.sender for m in smtp.received}
    assert read_address(settings, senders["ben@example.org"]) == ReturnToken("delivery", rows["ben@example.org"].id)
    assert senders["ana@example.org"] != senders["ben@example.org"]
    assert all(s.endswith("@bounces.clinic.test") for s in senders.values())

    bounce = event("hard", "ben@example.org", token=token_of(senders["ben@example.org"]), status="5.1.1",
                   diagnostic="smtp; 550 5.1.1 no such user")
    outcome = await record_one(db, settings, bounce)
    assert (outcome.action, outcome.subscriber_id) == ("suppressed", ben)
    gone = await subscriber(db, ben)
    assert gone.status == "bounced" and "5.1.1" in (gone.last_bounce or "")
    assert (await subscriber(db, ana)).status == "confirmed"
    (stored,) = await stored_events(db)
    assert (stored.campaign_id, stored.delivery_id) == (campaign_id, rows["ben@example.org"].id)
    assert stored.subscriber_id == ben
    assert stored.outcome == "suppressed"
    assert {r.email: r.bounced for r in await deliveries(db, campaign_id)} == {"ana@example.org": False,
                                                                               "ben@example.org": True}
    (audit,) = await audit_rows(db, "subscriber_bounced")
    assert audit.actor_email == "bounce:lmtp" and audit.target_id == str(ben)
    assert "ben@" not in str(audit.detail)

    smtp.handler.reset()
    await _send_campaign(db, settings, smtp)  # the next campaign does not mail the bounced address
    assert [m.recipients for m in smtp.received] == [["ana@example.org"]]


async def test_the_same_report_twice_counts_once(db: Database, settings: Settings, smtp: SmtpServer) -> None:
    sid = await add_subscriber(db, "cy@example.org")
    await _send_campaign(db, settings, smtp)
    token = token_of(smtp.received[0].sender)
    first = await record_one(db, settings, event("soft", "cy@example.org", token=token, key="report-1"))
    again = await record_one(db, settings, event("soft", "cy@example.org", token=token, key="report-1"))
    assert first.action == "counted" and again.action == "duplicate" and not again.stored
    assert len(await stored_events(db)) == 1
    again_hard = await record_one(db, settings, event("hard", "cy@example.org", token=token, key="report-1"))
    assert again_hard.action == "duplicate" and (await subscriber(db, sid)).status == "confirmed"


async def test_soft_bounces_suppress_at_the_limit_within_the_window(
        db: Database, settings: Settings, smtp: SmtpServer) -> None:
    sid = await add_subscriber(db, "dee@example.org")
    await _send_campaign(db, settings, smtp)
    token = token_of(smtp.received[0].sender)
    old = utcnow() - dt.timedelta(days=settings.soft_bounce_days + 1)
    assert (await record_one(db, settings, event("soft", "x", token=token, at=old))).action == "counted"
    for _ in range(settings.soft_bounce_limit - 1):
        outcome = await record_one(db, settings, event("soft", "x", token=token, status="4.2.2",
                                                       diagnostic="mailbox full"))
        assert outcome.action == "counted"
    assert (await subscriber(db, sid)).status == "confirmed"  # the old one is outside SOFT_BOUNCE_DAYS
    outcome = await record_one(db, settings, event("soft", "x", token=token, status="4.2.2", diagnostic="mailbox full"))
    assert outcome.action == "suppressed"
    row = await subscriber(db, sid)
    assert row.status == "bounced" and "3 soft bounces in 30 days" in (row.last_bounce or "")
    assert [r.bounced for r in await deliveries(db, (await stored_events(db))[0].campaign_id or 0)] == [False]


async def test_a_complaint_unsubscribes_for_good(
        client: httpx.AsyncClient, db: Database, settings: Settings, smtp: SmtpServer) -> None:
    sid = await add_subscriber(db, "eve@example.org")
    await _send_campaign(db, settings, smtp)
    outcome = await record_one(db, settings, event("complaint", "eve@example.org", source="mailbox",
                                                   token=token_of(smtp.received[0].sender), diagnostic="abuse"))
    assert outcome.action == "unsubscribed"
    row = await subscriber(db, sid)
    assert row.status == "complained" and row.complained_at is not None and row.confirmed_at is not None
    (audit,) = await audit_rows(db, "subscriber_complained")
    assert audit.actor_email == "bounce:mailbox"

    smtp.handler.reset()
    await _send_campaign(db, settings, smtp)
    assert smtp.received == []  # never mailed again by a campaign
    await signup(client, "eve@example.org")  # nor by a signup in their name
    assert await _deliver_outbox(db, settings, smtp) == 0 and smtp.received == []
    assert (await subscriber(db, sid)).status == "complained"


async def test_forged_unknown_or_missing_return_tokens_change_nothing(
        db: Database, settings: Settings, smtp: SmtpServer) -> None:
    sid = await add_subscriber(db, "fay@example.org")
    await _send_campaign(db, settings, smtp)
    token = token_of(smtp.received[0].sender)
    forged = token[:-1] + ("a" if token[-1] != "a" else "b")
    attempts = [
        event("hard", "fay@example.org", token=forged),
        event("hard", "fay@example.org", token=make_token(settings, "delivery", 999_999)),
        event("hard", "fay@example.org", token=make_token(settings, "outbox", 999_999)),
        event("complaint", "fay@example.org", token=make_token(settings.with_(secret_key="z" * 40), "delivery", 1)),
        event("complaint", "fay@example.org", source="pipe"),  # an emailed report not to our return path
    ]
    for attempt in attempts:
        outcome = await record_one(db, settings, attempt)
        assert outcome.action == "rejected" and not outcome.stored and outcome.reason
    assert await stored_events(db) == []
    assert (await subscriber(db, sid)).status == "confirmed"


async def test_a_provider_event_is_matched_by_message_id_or_by_address(
        db: Database, settings: Settings, smtp: SmtpServer) -> None:
    gil = await add_subscriber(db, "gil@example.org")
    hal = await add_subscriber(db, "hal@example.org")
    campaign_id = await _send_campaign(db, settings, smtp)
    message_id = next(m.message["Message-ID"] for m in smtp.received if m.recipients == ["gil@example.org"])
    by_id = await record_one(db, settings, event("hard", "Gil@Example.org", source="ses", message_id=message_id))
    by_address = await record_one(db, settings, event("complaint", "hal@example.org", source="postmark"))
    assert (by_id.action, by_id.subscriber_id) == ("suppressed", gil)
    assert (by_address.action, by_address.subscriber_id) == ("unsubscribed", hal)
    first, second = await stored_events(db)
    assert first.campaign_id == campaign_id and first.delivery_id is not None
    assert second.campaign_id is None and second.subscriber_id == hal
    unknown = await record_one(db, settings, event("hard", "nobody@example.org", source="webhook"))
    assert unknown.action == "recorded" and unknown.subscriber_id is None


async def test_a_bounced_automatic_answer_flags_the_inquiry(
        client: httpx.AsyncClient, db: Database, settings: Settings, smtp: SmtpServer) -> None:
    inquiry_id = await posted_id(client, db, email="ivy@example.org")
    assert await _deliver_outbox(db, settings, smtp) == 2  # the staff notification and the automatic answer
    (answer,) = [m for m in smtp.received if m.recipients == ["ivy@example.org"]]
    outcome = await record_one(db, settings, event("hard", "ivy@example.org", token=token_of(answer.sender),
                                                   status="5.1.1", diagnostic="550 5.1.1 user unknown"))
    assert (outcome.action, outcome.inquiry_id) == ("flagged", inquiry_id)
    async with db.sessions() as session:
        inquiry = await session.get(Inquiry, inquiry_id)
    assert inquiry is not None and inquiry.bounced_at is not None and "5.1.1" in (inquiry.bounce_diagnostic or "")
    (audit,) = await audit_rows(db, "inquiry_bounced")
    assert audit.target_id == str(inquiry_id) and audit.actor_email == "bounce:lmtp"
    (staff,) = [m for m in smtp.received if m.recipients == ["staff@clinic.test"]]
    staff_outcome = await record_one(db, settings, event("hard", "staff@clinic.test", token=token_of(staff.sender)))
    assert staff_outcome.action == "recorded"  # the staff notice bouncing flags nothing


async def test_without_a_return_path_the_envelope_sender_is_mail_from(
        client: httpx.AsyncClient, db: Database, settings: Settings, smtp: SmtpServer) -> None:
    off = settings.with_(return_path=None)
    await add_subscriber(db, "jo@example.org")
    await _send_campaign(db, off, smtp)
    await signup(client, "kim@example.org")
    assert await _deliver_outbox(db, off, smtp) == 1
    assert [m.sender for m in smtp.received] == ["hello@clinic.test", "hello@clinic.test"]


async def test_erasing_the_subscriber_takes_their_bounce_history(
        db: Database, settings: Settings, smtp: SmtpServer) -> None:
    from sqlalchemy import update

    from service.bounces.models import BounceEvent
    from service.privacy.erase import erase_subscriber
    from service.tokens import Tokens

    sid = await add_subscriber(db, "lou@example.org")
    await _send_campaign(db, settings, smtp)
    await record_one(db, settings, event("soft", "lou@example.org", token=token_of(smtp.received[0].sender)))
    # a provider's report about the same address before it was linked to anyone (another spelling)
    await record_one(db, settings, event("complaint", "LOU@example.org", source="webhook", message_id="<x@y>"))
    await record_one(db, settings, event("hard", "other@example.org", source="webhook"))
    async with db.sessions.begin() as session:
        await session.execute(update(BounceEvent).values(subscriber_id=None).where(BounceEvent.source == "webhook"))
    assert len(await stored_events(db)) == 3
    async with db.sessions.begin() as session:
        assert await erase_subscriber(session, tokens=Tokens(settings), subscriber_id=sid)
    assert [e.recipient for e in await stored_events(db)] == ["other@example.org"]
