"""The events endpoints can subscribe to, their payloads, and `queue_event`: the hook the domain
functions call in the transaction of the event, so that an event is queued if and only if it
happened (the durable outbox pattern).

Health data stays home by default: `inquiry.created` carries the inquiry's id, contact method,
attribution and admin link; its topic, message and contact details go only to endpoints an
admin has marked as trusted with them. One INSERT … SELECT writes the row of every enabled
endpoint that chose the event, each with the payload its trust allows; with no endpoint it
inserts nothing and costs one statement."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, bindparam, case, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import UTCDateTime, utcnow
from service.webhooks.models import WebhookDelivery, WebhookEndpoint
from service.webhooks.signing import new_msg_id

if TYPE_CHECKING:
    from service.inquiries.models import Inquiry
    from service.settings import Settings

EVENTS: dict[str, str] = {
    "inquiry.created": "a new inquiry (held ones when staff release them)",
    "inquiry.status_changed": "an inquiry moved to another status",
    "subscriber.confirmed": "a newsletter subscriber confirmed",
    "subscriber.unsubscribed": "a subscriber unsubscribed (or staff unsubscribed them)",
    "subscriber.bounced": "a subscriber's address bounced and is suppressed",
    "subscriber.complained": "a subscriber complained (marked as spam) or staff suppressed them",
    "campaign.sent": "a campaign finished sending",
}
TEST_EVENT = "webhook.test"
SUBSCRIBER_EVENTS = {"confirmed": "subscriber.confirmed", "unsubscribed": "subscriber.unsubscribed",
                     "bounced": "subscriber.bounced", "complained": "subscriber.complained"}
RETRY_WINDOW = dt.timedelta(days=1)

_E = WebhookEndpoint.__table__.c
_COLUMNS = ["endpoint_id", "msg_id", "event", "created_at", "payload", "status", "attempts", "next_attempt_at",
            "retry_until", "inquiry_id", "person"]


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def payload_body(event: str, at: dt.datetime, data: dict[str, Any]) -> str:
    """The JSON body of an event, in the Standard Webhooks shape {type, timestamp, data}."""
    return json.dumps({"type": event, "timestamp": iso(at), "data": data}, ensure_ascii=False, separators=(",", ":"))


async def queue_event(session: AsyncSession, *, event: str, data: dict[str, Any],
                      trusted_data: dict[str, Any] | None = None, inquiry_id: int | None = None,
                      person: str | None = None, now: dt.datetime | None = None) -> None:
    """Queue `event` for every enabled endpoint that chose it, in the caller's transaction.
    `trusted_data` (health data) goes to trusted endpoints instead of `data`; `inquiry_id` and
    `person` (an address key) name whose data the payload holds, for erasure."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    now = now or utcnow()
    params: dict[str, Any] = {
        "p_msg": new_msg_id(), "p_event": event, "p_now": now, "p_until": now + RETRY_WINDOW,
        "p_body": payload_body(event, now, data), "p_inquiry": inquiry_id, "p_person": person,
        "p_like": _like(event)}
    if trusted_data is not None:
        params["p_trusted"] = payload_body(event, now, trusted_data)
    if session.new or session.dirty or session.deleted:  # what session.execute would flush first
        await session.flush()
    # Core on the session's connection: the ORM's execute path costs more than this statement
    connection = await session.connection()
    await connection.execute(_INSERT_TRUSTED if trusted_data is not None else _INSERT, params)


def _like(event: str) -> str:
    """The LIKE pattern of `event` in an endpoint's comma-framed event list."""
    return "%," + event.replace("/", "//").replace("%", "/%").replace("_", "/_") + ",%"


def _insert_statement(*, trusted: bool) -> Any:
    """INSERT … SELECT of one event for every enabled endpoint that chose it, built once (the
    hook runs in every request that changes something; building it each time cost more than
    running it)."""
    now = bindparam("p_now", type_=UTCDateTime)
    payload: Any = bindparam("p_body", type_=String)
    if trusted:
        payload = case((_E.trusted, bindparam("p_trusted", type_=String)), else_=payload)
    rows = select(
        _E.id, bindparam("p_msg", type_=String), bindparam("p_event", type_=String), now, payload,
        literal("queued", String), literal(0, Integer), now, bindparam("p_until", type_=UTCDateTime),
        bindparam("p_inquiry", type_=Integer), bindparam("p_person", type_=String),
    ).where(_E.enabled.is_(True), _E.events.like(bindparam("p_like", type_=String), escape="/"))
    return WebhookDelivery.__table__.insert().from_select(_COLUMNS, rows)


_INSERT = _insert_statement(trusted=False)
_INSERT_TRUSTED = _insert_statement(trusted=True)


async def is_wanted(session: AsyncSession, *, event: str) -> bool:
    """Whether any enabled endpoint chose `event` (to skip building a costly payload)."""
    found = await session.scalar(select(_E.id).where(_E.enabled.is_(True),
                                                     _E.events.contains(f",{event},", autoescape=True)).limit(1))
    return found is not None


# -- the payloads of each event ------------------------------------------------------------------


def inquiry_created_data(settings: Settings, inquiry: Inquiry) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what every endpoint gets, what a trusted one gets) for a stored inquiry."""
    data: dict[str, Any] = {
        "id": inquiry.id, "created_at": iso(inquiry.created_at), "contact_method": inquiry.contact_method,
        "attribution": {"source_page": inquiry.source_page, "referrer": inquiry.referrer,
                        "utm_source": inquiry.utm_source, "utm_medium": inquiry.utm_medium,
                        "utm_campaign": inquiry.utm_campaign, "utm_term": inquiry.utm_term,
                        "utm_content": inquiry.utm_content},
        "admin_url": f"{settings.base_url}/admin/inquiries/{inquiry.id}",
    }
    trusted = {**data, "name": inquiry.name, "email": inquiry.email, "phone": inquiry.phone, "topic": inquiry.topic,
               "message": inquiry.message, "newsletter_optin": inquiry.newsletter_optin,
               "language": inquiry.language}
    return data, trusted


async def queue_inquiry_created(session: AsyncSession, *, settings: Settings, inquiry: Inquiry) -> None:
    from service.validation import email_key

    data, trusted = inquiry_created_data(settings, inquiry)
    await queue_event(session, event="inquiry.created", data=data, trusted_data=trusted, inquiry_id=inquiry.id,
                      person=email_key(inquiry.email))


async def queue_inquiry_status_changed(session: AsyncSession, *, inquiry_id: int, from_status: str,
                                       to_status: str, now: dt.datetime) -> None:
    await queue_event(session, event="inquiry.status_changed", inquiry_id=inquiry_id, now=now,
                      data={"id": inquiry_id, "from_status": from_status, "to_status": to_status,
                            "changed_at": iso(now)})


async def queue_subscriber_status(session: AsyncSession, *, subscriber_id: int, email: str, status: str,
                                  now: dt.datetime) -> None:
    """The event of a subscriber's new status, when it has one (pending has none)."""
    from service.validation import email_key

    event = SUBSCRIBER_EVENTS.get(status)
    if event is not None:
        await queue_event(session, event=event, person=email_key(email), now=now,
                          data={"id": subscriber_id, "email": email, "status": status, "changed_at": iso(now)})
