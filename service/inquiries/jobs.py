"""The inquiry loop of the worker: delete held inquiries older than HELD_RETENTION_DAYS (staff
neither released nor deleted them)."""

from __future__ import annotations

from service.db import transaction, utcnow
from service.inquiries.held import purge_held
from service.loops import Loop, WorkerContext
from service.settings import Settings


async def held_purge_job(ctx: WorkerContext) -> int:
    async with transaction(ctx.sessions) as session:
        return await purge_held(session, settings=ctx.settings, now=utcnow())


def loops(settings: Settings | None) -> list[Loop]:
    return [Loop("held-purge", held_purge_job, 3600.0)]
