"""The webhook loops of the worker: deliver due deliveries; purge the delivery log."""

from __future__ import annotations

import datetime as dt

from service.db import transaction, utcnow
from service.loops import Loop, WorkerContext
from service.settings import Settings
from service.webhooks.delivery import WebhookWorker
from service.webhooks.queries import purge_delivery_log


async def deliver_job(ctx: WorkerContext) -> int:
    worker = ctx.kept("webhooks", lambda: WebhookWorker(ctx.sessions, ctx.settings, owner=ctx.owner))
    return await worker.run_once()


async def retention_job(ctx: WorkerContext) -> int:
    """Delete the deliveries of events older than INQUIRY_RETENTION_DAYS (payloads and answers)."""
    before = utcnow() - dt.timedelta(days=ctx.settings.inquiry_retention_days)
    async with transaction(ctx.sessions) as session:
        return await purge_delivery_log(session, before=before)


def loops(settings: Settings | None) -> list[Loop]:
    return [Loop("webhooks", deliver_job, 1.0), Loop("webhook-retention", retention_job, 3600.0)]
