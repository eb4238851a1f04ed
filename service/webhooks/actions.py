"""What an admin does to webhook endpoints, as action functions (the admin pages call them; an
API or command would too): each changes the endpoint in the caller's transaction and writes its
audit row. Bad input raises EndpointError naming the field, and changes nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.audit import Actor, record_audit
from service.settings import Settings
from service.webhooks import queries as q
from service.webhooks.events import EVENTS
from service.webhooks.guard import RefusedEndpoint, check_url, resolve
from service.webhooks.models import WebhookDelivery, WebhookEndpoint
from service.webhooks.signing import ROTATION_OVERLAP, new_secret


class EndpointError(ValueError):
    """Input that cannot be used: the field and what is wrong with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


async def check_endpoint_url(settings: Settings, url: str) -> str:
    """The URL, checked as a delivery would check it (scheme, then every address its host has
    now), or EndpointError. A delivery checks again each time: DNS may change."""
    url = url.strip()
    if not url:
        raise EndpointError("url", "enter the URL that receives the events")
    try:
        target = check_url(url, allow_http=settings.webhook_allow_http)
        await resolve(target, allow_private=settings.webhook_allow_private)
    except RefusedEndpoint as exc:
        raise EndpointError("url", str(exc)) from None
    except OSError as exc:
        raise EndpointError("url", str(exc)) from None
    return url


def check_events(events: Iterable[str]) -> str:
    chosen = sorted(set(events))
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown:
        raise EndpointError("events", f"unknown event {unknown[0]!r}; expected some of {', '.join(EVENTS)}")
    if not chosen:
        raise EndpointError("events", "choose at least one event")
    return "," + ",".join(chosen) + ","


def _description(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > 200:
        raise EndpointError("description", "the description is longer than 200 characters")
    return text


async def register_endpoint(session: AsyncSession, *, settings: Settings, actor: Actor, url: str,
                            events: Iterable[str], description: str = "",
                            now: dt.datetime) -> tuple[WebhookEndpoint, str]:
    """A new endpoint (not trusted with health data) and its secret, which is shown only now."""
    endpoint = WebhookEndpoint(url=await check_endpoint_url(settings, url), events=check_events(events),
                               description=_description(description), secret=new_secret(), created_at=now,
                               trusted=False, enabled=True)
    session.add(endpoint)
    await session.flush()
    await _audit(session, "webhook_create", endpoint.id, actor, {"url": endpoint.url, "events": endpoint.event_list()})
    return endpoint, endpoint.secret


async def update_endpoint(session: AsyncSession, *, settings: Settings, actor: Actor, endpoint: WebhookEndpoint,
                          url: str, events: Iterable[str], description: str = "") -> None:
    """Change an endpoint's URL, events and description."""
    new_url = await check_endpoint_url(settings, url) if url.strip() != endpoint.url else endpoint.url
    new_events, new_description = check_events(events), _description(description)
    endpoint.url, endpoint.events, endpoint.description = new_url, new_events, new_description
    await session.flush()
    await _audit(session, "webhook_edit", endpoint.id, actor, {"url": endpoint.url, "events": endpoint.event_list()})


async def rotate_secret(session: AsyncSession, *, actor: Actor, endpoint: WebhookEndpoint, now: dt.datetime) -> str:
    """A new secret (returned once); the old one keeps signing too for ROTATION_OVERLAP (24 h)."""
    endpoint.previous_secret, endpoint.previous_secret_until = endpoint.secret, now + ROTATION_OVERLAP
    endpoint.secret = new_secret()
    await session.flush()
    await _audit(session, "webhook_rotate_secret", endpoint.id, actor,
                 {"previous_valid_until": endpoint.previous_secret_until.isoformat()})
    return endpoint.secret


async def set_trusted(session: AsyncSession, *, actor: Actor, endpoint: WebhookEndpoint, trusted: bool) -> None:
    """Trust an endpoint with health data (inquiries' topic, message, contact details), or stop."""
    if endpoint.trusted != trusted:
        endpoint.trusted = trusted
        await session.flush()
        await _audit(session, "webhook_trust" if trusted else "webhook_distrust", endpoint.id, actor,
                     {"url": endpoint.url})


async def set_enabled(session: AsyncSession, *, actor: Actor, endpoint: WebhookEndpoint, enabled: bool,
                      now: dt.datetime) -> None:
    """Enable (its failing streak forgotten) or disable an endpoint; a disabled one gets nothing
    (its queued deliveries wait until it is enabled, or fail after their day)."""
    if endpoint.enabled == enabled:
        return
    endpoint.enabled = enabled
    endpoint.failing_since = None
    endpoint.disabled_at = None if enabled else now
    endpoint.disabled_reason = None if enabled else f"disabled by {actor.name or 'staff'}"
    await session.flush()
    await _audit(session, "webhook_enable" if enabled else "webhook_disable", endpoint.id, actor, {"url": endpoint.url})


async def delete_endpoint(session: AsyncSession, *, actor: Actor, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint and its delivery log."""
    ident, url = endpoint.id, endpoint.url
    await session.delete(endpoint)
    await session.flush()
    await _audit(session, "webhook_delete", ident, actor, {"url": url})


async def send_again(session: AsyncSession, *, actor: Actor, delivery_id: int, now: dt.datetime) -> WebhookDelivery:
    """Queue a delivery again (same webhook-id, same payload); q.RedeliveryError says why not."""
    row = await q.redeliver(session, delivery_id=delivery_id, now=now)
    await _audit(session, "webhook_redeliver", row.endpoint_id, actor, {"delivery": row.id, "event": row.event})
    return row


async def send_test(session: AsyncSession, *, actor: Actor, endpoint: WebhookEndpoint,
                    now: dt.datetime) -> WebhookDelivery:
    """Queue a `webhook.test` event to one endpoint."""
    row = await q.queue_test_event(session, endpoint_id=endpoint.id, now=now)
    await _audit(session, "webhook_test", endpoint.id, actor, {"delivery": row.id})
    return row


async def _audit(session: AsyncSession, action: str, endpoint_id: int, actor: Actor,
                 detail: dict[str, object]) -> None:
    await record_audit(session, action=action, by=actor, target_type="webhook", target_id=endpoint_id, detail=detail)
