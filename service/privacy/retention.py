"""Retention: closed and spam inquiries are deleted INQUIRY_RETENTION_DAYS after their last change
(status change or note), with their notes, events and every stored copy of their emails. The
worker runs `expire_inquiries_job` hourly; the audit log records how many went, never who."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.audit import record_audit
from service.db import transaction, utcnow
from service.inquiries.removal import expired_inquiry_ids
from service.privacy.erase import remove_inquiries
from service.settings import Settings
from service.tokens import Tokens

if TYPE_CHECKING:
    from service.loops import WorkerContext

log = logging.getLogger("tidings.privacy")

BATCH = 200


async def expire_inquiries(session: AsyncSession, *, settings: Settings, now: dt.datetime,
                           limit: int = BATCH) -> int:
    """Delete up to `limit` inquiries past their retention, with one audit row (the count and the
    retention; no id, name or address); returns how many went."""
    cutoff = now - dt.timedelta(days=settings.inquiry_retention_days)
    ids = await expired_inquiry_ids(session, cutoff=cutoff, limit=limit)
    if not ids:
        return 0
    gone = await remove_inquiries(session, tokens=Tokens(settings), inquiry_ids=ids, reason="retention", now=now)
    await record_audit(session, action="inquiry_retention", target_type="inquiry", ip="worker",
                       detail={"deleted": gone, "retention_days": settings.inquiry_retention_days})
    return gone


async def expire_inquiries_job(ctx: WorkerContext) -> int:
    """The worker loop's job: one batch per transaction; busy (non-zero) while more are due."""
    async with transaction(ctx.sessions) as session:
        gone = await expire_inquiries(session, settings=ctx.settings, now=utcnow())
    if gone:
        log.info("retention: %s closed or spam inquiries deleted", gone)
    return gone
