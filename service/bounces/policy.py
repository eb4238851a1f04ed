"""What a bounce or complaint does, written once; every intake (LMTP, pipe, mailbox, webhooks)
calls `record`.

- The same report twice counts once: the event key is unique, a second copy changes nothing.
- A report from a route anybody can write to (an email: LMTP, a pipe, the bounce mailbox)
  counts only with a verified return token (`service.bounces.returnpath`): a forged or unknown
  token, or none, changes nothing. Provider webhooks are authenticated by their signature before
  they get here, so their events are matched by our Message-ID, else by the address.
- hard: the subscriber is suppressed at once (status "bounced", `newsletter.flows.mark_bounced`),
  the delivery counts as bounced in its campaign.
- soft: suppressed once SOFT_BOUNCE_LIMIT soft bounces of the address happened within
  SOFT_BOUNCE_DAYS (counting only those since the subscriber last confirmed).
- complaint: unsubscribed for good (status "complained", with the time beside the consent
  evidence on the subscriber's row; `newsletter.flows.mark_complained`).
- A hard bounce (or a soft one reaching the limit) of an inquiry's automatic answer flags the
  inquiry: the address does not work, staff should call.
Every change staff can see writes an audit row by `bounce:<source>`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from email.utils import parseaddr

from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.audit import Actor, record_audit
from service.bounces import queries
from service.bounces.events import EMAIL_SOURCES, MailEvent
from service.bounces.returnpath import read_token
from service.campaigns.queries import DeliveryRef, find_delivery, mark_delivery_bounced
from service.db import utcnow
from service.inquiries.queries import flag_inquiry_bounced
from service.mail.outbox import OutboxRef, find_outbox_message
from service.newsletter import flows as newsletter
from service.newsletter import queries as subscribers
from service.settings import Settings
from service.validation import email_key

AUTOREPLY_KIND = "inquiry_autoreply"


@dataclass(frozen=True)
class Outcome:
    """What `record` did. `action`: rejected (nothing changed: a forged, unknown or missing return
    token on an emailed report), duplicate (already recorded), recorded (stored, nothing else to
    do), counted (a soft bounce below the limit), suppressed, unsubscribed (a complaint), flagged
    (only an inquiry was flagged)."""

    action: str
    reason: str = ""
    event_id: int | None = None
    subscriber_id: int | None = None
    inquiry_id: int | None = None

    @property
    def stored(self) -> bool:
        return self.event_id is not None


@dataclass(frozen=True)
class _Target:
    address: str
    delivery: DeliveryRef | None = None
    outbox: OutboxRef | None = None


async def _target(session: AsyncSession, event: MailEvent, settings: Settings) -> _Target | str:
    """The message the event is about, or why it cannot count."""
    if event.return_token is not None:
        token = read_token(settings, event.return_token)
        if token is None:
            return "the return path's token does not verify"
        if token.kind == "delivery":
            delivery = await find_delivery(session, delivery_id=token.id)
            return _Target(delivery.email, delivery=delivery) if delivery else "no such campaign delivery"
        outbox = await find_outbox_message(session, row_id=token.id)
        return _Target(parseaddr(outbox.recipient)[1], outbox=outbox) if outbox else "no such outbox message"
    if event.source in EMAIL_SOURCES:
        return "an emailed report without our return path"
    delivery = await find_delivery(session, message_id=event.message_id) if event.message_id else None
    if delivery is not None and email_key(delivery.email) == email_key(event.recipient):
        return _Target(delivery.email, delivery=delivery)
    outbox = await find_outbox_message(session, message_id=event.message_id) if event.message_id else None
    if outbox is not None and email_key(parseaddr(outbox.recipient)[1]) == email_key(event.recipient):
        return _Target(parseaddr(outbox.recipient)[1], outbox=outbox)
    return _Target(event.recipient)


async def record(session: AsyncSession, event: MailEvent, *, settings: Settings) -> Outcome:
    """Record one event and apply the policy, in the caller's transaction; idempotent."""
    target = await _target(session, event, settings)
    if isinstance(target, str):
        return Outcome("rejected", reason=target)
    sub = None
    if target.delivery is not None:
        sub = await subscribers.get_subscriber(session, subscriber_id=target.delivery.subscriber_id)
    elif target.address:
        sub = await subscribers.get_subscriber_by_email(session, email=target.address)
    inquiry_id = target.outbox.inquiry_id if target.outbox else None
    event_id = await queries.insert_event(session, values={
        "event_key": event.event_key, "kind": event.kind, "source": event.source,
        "recipient": target.address[:320], "recipient_key": email_key(target.address)[:320],
        "occurred_at": event.occurred_at, "received_at": utcnow(), "diagnostic": event.diagnostic,
        "status": event.status, "message_id": (event.message_id or None) and event.message_id[:255],
        "outcome": "recorded", "subscriber_id": sub.id if sub else None,
        "campaign_id": target.delivery.campaign_id if target.delivery else None,
        "delivery_id": target.delivery.id if target.delivery else None,
        "outbox_message_id": target.outbox.id if target.outbox else None, "inquiry_id": inquiry_id,
    })
    if event_id is None:
        return Outcome("duplicate", reason="this report was recorded before")
    action = await _apply(session, event, settings=settings, event_id=event_id, target=target,
                          subscriber_id=sub.id if sub else None, status=sub.status if sub else None,
                          confirmed_at=sub.confirmed_at if sub else None)
    if action != "recorded":
        await queries.set_event_outcome(session, event_id=event_id, outcome=action)
    return Outcome(action, event_id=event_id, subscriber_id=sub.id if sub else None, inquiry_id=inquiry_id)


async def _apply(session: AsyncSession, event: MailEvent, *, settings: Settings, event_id: int, target: _Target,
                 subscriber_id: int | None, status: str | None, confirmed_at: dt.datetime | None) -> str:
    actor = Actor(name=f"bounce:{event.source}")
    detail = {"event": event_id, "kind": event.kind, "status": event.status, "from": status}
    reason = f"{event.status} {event.diagnostic}".strip() if event.status else event.diagnostic
    if event.kind == "complaint":
        if subscriber_id is None or status == "complained":
            return "recorded"
        await newsletter.mark_complained(session, subscriber_id=subscriber_id, reason=f"complaint: {reason}")
        await record_audit(session, by=actor, action="subscriber_complained", target_type="subscriber",
                           target_id=subscriber_id, detail=detail)
        return "unsubscribed"
    dead = event.kind == "hard"
    if not dead:
        since = utcnow() - dt.timedelta(days=settings.soft_bounce_days)
        if confirmed_at is not None and confirmed_at > since:
            since = confirmed_at
        count = await queries.count_soft_bounces(session, recipient_key=email_key(target.address), since=since)
        dead = count >= settings.soft_bounce_limit
        reason = f"{count} soft bounces in {settings.soft_bounce_days} days; the last: {reason}"
    if not dead:
        return "counted"
    if dead and event.kind == "hard" and target.delivery is not None:
        await mark_delivery_bounced(session, delivery_id=target.delivery.id)
    action = "recorded"
    if target.outbox is not None and target.outbox.kind == AUTOREPLY_KIND and target.outbox.inquiry_id is not None:
        if await flag_inquiry_bounced(session, inquiry_id=target.outbox.inquiry_id, diagnostic=reason, now=utcnow()):
            await record_audit(session, by=actor, action="inquiry_bounced", target_type="inquiry",
                               target_id=target.outbox.inquiry_id, detail=detail)
            action = "flagged"
    if subscriber_id is not None and status not in ("bounced", "complained"):
        await newsletter.mark_bounced(session, subscriber_id=subscriber_id, reason=reason)
        await record_audit(session, by=actor, action="subscriber_bounced", target_type="subscriber",
                           target_id=subscriber_id, detail=detail)
        action = "suppressed"
    return action
