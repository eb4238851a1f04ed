"""Insight's worker loop: destroy the reader-hash salts of past days even when nobody clicks
(the app also does it whenever it makes a new day's salt), count the past days' reader hashes
into daily counts, deleting the hashes, and fold the lead-source rows the inquiries' triggers
appended (PostgreSQL)."""

from __future__ import annotations

from service.db import transaction, utcnow
from service.insight.queries import compact_lead_source_months, destroy_old_salts, roll_up_readers
from service.loops import Loop, WorkerContext
from service.settings import Settings


async def _end_of_day_job(ctx: WorkerContext) -> int:
    async with transaction(ctx.sessions) as session:
        today = utcnow().date()
        await destroy_old_salts(session, today=today)
        await roll_up_readers(session, today=today)
    async with transaction(ctx.sessions) as session:
        await compact_lead_source_months(session)
    return 0


def loops(settings: Settings | None = None) -> list[Loop]:
    return [Loop("insight-days", _end_of_day_job, 600.0)]
