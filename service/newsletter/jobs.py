"""The newsletter loops of the worker: purge sign-ups never confirmed, and held sign-ups older
than HELD_RETENTION_DAYS, and fold the subscriber counters the triggers append (per status and per day)."""

from __future__ import annotations

from service.db import transaction, utcnow
from service.loops import Loop, WorkerContext
from service.newsletter.counts import fold_subscriber_counts, fold_subscriber_days
from service.newsletter.flows import purge_held_signups, purge_unconfirmed
from service.settings import Settings


async def newsletter_purge_job(ctx: WorkerContext) -> int:
    async with transaction(ctx.sessions) as session:
        return await purge_unconfirmed(session, now=utcnow())


async def held_signup_purge_job(ctx: WorkerContext) -> int:
    async with transaction(ctx.sessions) as session:
        return await purge_held_signups(session, settings=ctx.settings, now=utcnow())


async def subscriber_counts_job(ctx: WorkerContext) -> int:
    async with transaction(ctx.sessions) as session:
        return await fold_subscriber_counts(session) + await fold_subscriber_days(session)


def loops(settings: Settings | None) -> list[Loop]:
    return [Loop("newsletter-purge", newsletter_purge_job, 3600.0),
            Loop("held-signup-purge", held_signup_purge_job, 3600.0),
            Loop("subscriber-counts", subscriber_counts_job, 10.0)]
