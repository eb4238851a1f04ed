"""The inquiry loops of the worker: delete held inquiries older than HELD_RETENTION_DAYS (staff
neither released nor deleted them), and fold the per-status counters the triggers append."""

from __future__ import annotations

from service.db import transaction, utcnow
from service.inquiries.counts import fold_inquiry_counts
from service.inquiries.held import purge_held
from service.loops import Loop, WorkerContext
from service.settings import Settings


async def held_purge_job(ctx: WorkerContext) -> int:
    async with transaction(ctx.sessions) as session:
        return await purge_held(session, settings=ctx.settings, now=utcnow())


async def inquiry_counts_job(ctx: WorkerContext) -> int:
    async with transaction(ctx.sessions) as session:
        return await fold_inquiry_counts(session)


def loops(settings: Settings | None) -> list[Loop]:
    return [Loop("held-purge", held_purge_job, 3600.0), Loop("inquiry-counts", inquiry_counts_job, 10.0)]
