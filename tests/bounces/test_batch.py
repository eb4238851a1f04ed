"""`record_many`: a batch gives exactly what recording its events one by one in that order gives
(outcomes, stored events, subscribers, deliveries, inquiries, audit rows), with duplicates in
and out of the batch, every kind, an unknown address, forged and missing tokens, soft bounces
reaching the limit inside the batch and an inquiry flagged once."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.models import AuditEvent
from service.bounces.events import MailEvent
from service.bounces.models import BounceEvent
from service.bounces.policy import record, record_many
from service.bounces.returnpath import make_token
from service.campaigns.models import Delivery
from service.inquiries.models import Inquiry
from service.mail.outbox import OutboxWorker
from service.mail.transport import SmtpTransport
from service.newsletter.models import Subscriber
from service.settings import Settings
from tests.bounces.helpers import event, record_one, token_of
from tests.conftest import Database
from tests.factories import add_subscriber, make_campaign, posted_id, sender_for
from tests.smtp import SmtpServer

PEOPLE = ("ana", "ben", "dee", "eve", "fay")


async def _world(client: httpx.AsyncClient, db: Database, settings: Settings, smtp: SmtpServer) -> dict[str, str]:
    """Subscribers who got a campaign and an inquiry's automatic answer; each one's return token."""
    for name in PEOPLE:
        await add_subscriber(db, f"{name}@example.org")
    sender = sender_for(db, settings, smtp.url)
    assert await sender.run_campaign(await make_campaign(db, settings)) == "sent"
    await sender.transport.close()
    await posted_id(client, db, email="ivy@example.org")
    worker = OutboxWorker(db.sessions, SmtpTransport(smtp.url, timeout=5), owner="t", settings=settings)
    try:
        await worker.drain()
    finally:
        await worker.mailer.close()
    return {m.recipients[0].partition("@")[0]: token_of(m.sender) for m in smtp.received}


def _events(settings: Settings, tokens: dict[str, str]) -> list[MailEvent]:
    forged = tokens["ben"][:-1] + ("a" if tokens["ben"][-1] != "a" else "b")
    soft = [event("soft", "x", token=tokens["dee"], key=f"dee-{n}", status="4.2.2", diagnostic="mailbox full")
            for n in range(settings.soft_bounce_limit)]
    return [
        event("hard", "x", token=tokens["ana"], key="ana-1", status="5.1.1", diagnostic="no such user"),
        event("hard", "x", token=tokens["ana"], key="ana-1"),  # the same report again, in the batch
        event("hard", "x", token=tokens["ben"], key="before"),  # recorded before the batch
        *soft,
        event("complaint", "x", source="mailbox", token=tokens["eve"], key="eve-1", diagnostic="abuse"),
        event("hard", "x", token=tokens["eve"], key="eve-2"),  # a complaint is never overwritten
        event("hard", "x", token=tokens["fay"], key="fay-1"),
        event("complaint", "fay@example.org", source="postmark", key="fay-2"),  # by address
        event("hard", "nobody@example.org", source="webhook", key="nobody"),  # unknown address
        event("hard", "x", token=forged, key="forged"),
        event("hard", "ben@example.org", token=forged, key="ben-1"),  # rejected, then the real one
        event("soft", "x", token=tokens["ben"], key="ben-1"),
        event("complaint", "ben@example.org", source="pipe", key="pipe"),  # emailed, no return path
        event("hard", "x", token=make_token(settings, "delivery", 999_999), key="unknown-delivery"),
        event("hard", "x", token=tokens["ivy"], key="ivy-1", status="5.1.1", diagnostic="user unknown"),
        event("hard", "x", token=tokens["ivy"], key="ivy-2"),  # flagged once
    ]


async def _state(session: AsyncSession) -> dict[str, Any]:
    """What a user could notice, without ids and times that differ between runs."""
    keys = {i: k for i, k in (await session.execute(select(BounceEvent.id, BounceEvent.event_key))).all()}
    events = (await session.execute(select(
        BounceEvent.event_key, BounceEvent.kind, BounceEvent.source, BounceEvent.recipient_key, BounceEvent.outcome,
        BounceEvent.subscriber_id, BounceEvent.delivery_id, BounceEvent.outbox_message_id, BounceEvent.inquiry_id,
        BounceEvent.status, BounceEvent.diagnostic).order_by(BounceEvent.event_key))).all()
    subs = (await session.execute(select(
        Subscriber.email, Subscriber.status, Subscriber.last_bounce, Subscriber.bounced_at.is_not(None),
        Subscriber.complained_at.is_not(None)).order_by(Subscriber.email))).all()
    bounced = (await session.scalars(select(Delivery.email).where(Delivery.bounced).order_by(Delivery.email))).all()
    inquiries = (await session.execute(select(Inquiry.id, Inquiry.bounce_diagnostic, Inquiry.bounced_at.is_not(None))
                                       .order_by(Inquiry.id))).all()
    audits = sorted((a.actor_email, a.action, a.target_type, a.target_id,
                     tuple(sorted({**a.detail, "event": keys.get(a.detail.get("event"))}.items())))
                    for a in (await session.scalars(select(AuditEvent).where(AuditEvent.actor_email.like("bounce:%"))))
                    .all())
    return {"events": events, "subscribers": subs, "bounced deliveries": list(bounced), "inquiries": inquiries,
            "audit": audits}


async def _run(db: Database, settings: Settings, events: list[MailEvent], *, batch: bool
               ) -> tuple[list[tuple[str, str, int | None, int | None]], dict[str, Any]]:
    """The outcomes and the state after recording; rolled back, so the next run starts the same."""
    async with db.sessions() as session:
        if batch:
            outcomes = await record_many(session, events, settings=settings)
        else:
            outcomes = [await record(session, e, settings=settings) for e in events]
        state = await _state(session)
        await session.rollback()
    return [(o.action, o.reason, o.subscriber_id, o.inquiry_id) for o in outcomes], state


async def test_a_batch_gives_exactly_what_one_by_one_gives(
        client: httpx.AsyncClient, db: Database, settings: Settings, smtp: SmtpServer) -> None:
    tokens = await _world(client, db, settings, smtp)
    await record_one(db, settings, event("soft", "x", token=tokens["ben"], key="before"))
    events = _events(settings, tokens)

    one_by_one, expected = await _run(db, settings, events, batch=False)
    batched, state = await _run(db, settings, events, batch=True)

    assert batched == one_by_one
    assert state == expected
    limit = settings.soft_bounce_limit
    assert [a for a, *_ in batched] == [
        "suppressed", "duplicate", "duplicate", *["counted"] * (limit - 1), "suppressed",
        "unsubscribed", "recorded", "suppressed", "unsubscribed", "recorded", "rejected", "rejected", "counted",
        "rejected", "rejected", "flagged", "recorded"]
    statuses = {email: status for email, status, *_ in state["subscribers"]}
    assert statuses == {"ana@example.org": "bounced", "ben@example.org": "confirmed", "dee@example.org": "bounced",
                        "eve@example.org": "complained", "fay@example.org": "complained"}
    assert state["bounced deliveries"] == ["ana@example.org", "eve@example.org", "fay@example.org"]
    assert [flagged for *_, flagged in state["inquiries"]] == [True]
    assert len(state["audit"]) == 6  # ana, dee, eve, fay bounced, fay complained, the inquiry flagged
