"""The mail loop of the worker: deliver the transactional outbox."""

from __future__ import annotations

import datetime as dt

from service.loops import Loop, WorkerContext
from service.mail.outbox import OutboxWorker
from service.settings import Settings


async def outbox_job(ctx: WorkerContext) -> int:
    return await OutboxWorker(ctx.sessions, ctx.mailer, owner=ctx.owner,
                              max_age=dt.timedelta(seconds=ctx.settings.outbox_max_age),
                              settings=ctx.settings).run_once()


def loops(settings: Settings | None) -> list[Loop]:
    return [Loop("outbox", outbox_job, 1.0)]
