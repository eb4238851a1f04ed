"""Retention of the bounce and complaint reports that belong to nobody we keep: a report about an
address that is no subscriber's and about no inquiry's email (a provider's webhook naming an
address we never had, a bounce of the staff notification) quotes an address and a server's
message, so it is deleted INQUIRY_RETENTION_DAYS after it was received. Reports about a
subscriber stay with the subscriber (their history, beside the consent evidence) and go when
they are erased; reports about an inquiry go with the inquiry (service.privacy.stores)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.audit import record_audit
from service.bounces.models import BounceEvent
from service.db import transaction, utcnow
from service.settings import Settings

if TYPE_CHECKING:
    from service.loops import WorkerContext

log = logging.getLogger("tidings.privacy")

BATCH = 1000


async def expire_unlinked_reports(session: AsyncSession, *, settings: Settings, now: dt.datetime,
                                  limit: int = BATCH) -> int:
    """Delete up to `limit` reports about no subscriber and no inquiry, received before the
    retention cutoff, with one audit row (the count only); returns how many went."""
    cutoff = now - dt.timedelta(days=settings.inquiry_retention_days)
    ids = list((await session.scalars(
        select(BounceEvent.id).where(BounceEvent.subscriber_id.is_(None), BounceEvent.inquiry_id.is_(None),
                                     BounceEvent.received_at < cutoff).order_by(BounceEvent.id).limit(limit))).all())
    if not ids:
        return 0
    await session.execute(delete(BounceEvent).where(BounceEvent.id.in_(ids)))
    await record_audit(session, action="bounce_retention", target_type="bounce_event", ip="worker",
                       detail={"deleted": len(ids), "retention_days": settings.inquiry_retention_days})
    return len(ids)


async def expire_reports_job(ctx: WorkerContext) -> int:
    """The worker loop's job: one batch per transaction; busy (non-zero) while more are due."""
    async with transaction(ctx.sessions) as session:
        gone = await expire_unlinked_reports(session, settings=ctx.settings, now=utcnow())
    if gone:
        log.info("retention: %s bounce reports about no subscriber or inquiry deleted", gone)
    return gone
