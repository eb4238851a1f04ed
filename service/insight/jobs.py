"""Insight's worker loop: destroy the reader-hash salts of past days even when nobody clicks
(the app also does it whenever it makes a new day's salt)."""

from __future__ import annotations

from service.db import transaction, utcnow
from service.insight.queries import destroy_old_salts
from service.loops import Loop, WorkerContext
from service.settings import Settings


async def _destroy_old_salts_job(ctx: WorkerContext) -> int:
    async with transaction(ctx.sessions) as session:
        await destroy_old_salts(session, today=utcnow().date())
    return 0


def loops(settings: Settings | None = None) -> list[Loop]:
    return [Loop("insight-salts", _destroy_old_salts_job, 600.0)]
