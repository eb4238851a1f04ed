"""Shared steps of the webhook tests: an endpoint registered through the real action, and the
delivery rows as stored."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from service.admin.audit import Actor
from service.db import utcnow
from service.settings import Settings
from service.webhooks.actions import register_endpoint
from service.webhooks.delivery import WebhookWorker
from service.webhooks.events import EVENTS
from service.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import Database
from tests.webhooks.receiver import Receiver

ADMIN = Actor(name="admin@clinic.test", ip="203.0.113.7")


async def add_endpoint(db: Database, settings: Settings, receiver: Receiver, *,
                       events: Sequence[str] = tuple(EVENTS), trusted: bool = False, url: str | None = None) -> int:
    async with db.sessions.begin() as session:
        endpoint, secret = await register_endpoint(session, settings=settings, actor=ADMIN, url=url or receiver.url,
                                                   events=events, now=utcnow())
        endpoint.trusted = trusted
    receiver.secrets.append(secret)
    return endpoint.id


async def deliveries(db: Database) -> list[WebhookDelivery]:
    async with db.sessions() as session:
        return list((await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).all())


async def endpoint(db: Database, endpoint_id: int) -> WebhookEndpoint:
    async with db.sessions() as session:
        found = await session.get(WebhookEndpoint, endpoint_id)
    assert found is not None
    return found


async def drain(db: Database, settings: Settings, owner: str = "w1", **kw: object) -> int:
    worker = WebhookWorker(db.sessions, settings, owner=owner, **kw)  # type: ignore[arg-type]
    try:
        return await worker.drain()
    finally:
        worker.close()
