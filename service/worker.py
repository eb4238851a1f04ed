"""The send worker: the loops that deliver queued mail and run periodic jobs.

It runs inside `tidings serve` (an asyncio task) on the embedded default, and as `tidings
worker` processes in production; any number of them may share one PostgreSQL database, since
every job claims its rows with leases. A failing loop logs, waits and tries again: a database
or SMTP outage delays work, it never stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from service.db import Sessions, transaction, utcnow
from service.mail.outbox import OutboxWorker
from service.mail.transport import Mailer
from service.ratelimit import purge_rate_limits
from service.settings import Settings

log = logging.getLogger("tidings.worker")

Job = Callable[["WorkerContext"], Awaitable[int]]


@dataclass
class WorkerContext:
    settings: Settings
    sessions: Sessions
    mailer: Mailer
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")


@dataclass(frozen=True)
class Loop:
    """A job run again and again: at once while it finds work, every `interval` seconds otherwise."""

    name: str
    job: Job
    interval: float


async def _outbox_job(ctx: WorkerContext) -> int:
    return await OutboxWorker(ctx.sessions, ctx.mailer, owner=ctx.owner).run_once()


async def _housekeeping_job(ctx: WorkerContext) -> int:
    async with transaction(ctx.sessions) as session:
        await purge_rate_limits(session, now=utcnow())
    return 0


async def _newsletter_purge_job(ctx: WorkerContext) -> int:
    from service.newsletter.flows import purge_unconfirmed

    async with transaction(ctx.sessions) as session:
        return await purge_unconfirmed(session, now=utcnow())


async def _held_purge_job(ctx: WorkerContext) -> int:
    """Delete held inquiries and held signups older than HELD_RETENTION_DAYS."""
    from service.inquiries.held import purge_held
    from service.newsletter.flows import purge_held_signups

    async with transaction(ctx.sessions) as session:
        now = utcnow()
        await purge_held(session, settings=ctx.settings, now=now)
        await purge_held_signups(session, settings=ctx.settings, now=now)
    return 0


async def _feed_job(ctx: WorkerContext) -> int:
    from service.articles.flows import import_articles

    result = await import_articles(ctx.sessions, ctx.settings, [])
    if result.created or result.updated:
        log.info("feed: %s new, %s updated articles", result.created, result.updated)
    return 0


def default_loops(settings: Settings | None = None) -> list[Loop]:
    """Every loop a worker runs. Domains add theirs here."""
    from service.campaigns.jobs import campaign_schedule_job, campaign_send_job

    loops = [
        Loop("outbox", _outbox_job, 1.0),
        Loop("housekeeping", _housekeeping_job, 300.0),
        Loop("newsletter-purge", _newsletter_purge_job, 3600.0),
        Loop("held-purge", _held_purge_job, 3600.0),
        Loop("campaigns", campaign_send_job, 1.0),
        Loop("campaign-schedule", campaign_schedule_job, 30.0),
    ]
    if settings is not None and settings.feed_url:
        loops.append(Loop("feed", _feed_job, float(settings.feed_poll_seconds)))
    return loops


async def run_loop(loop: Loop, ctx: WorkerContext, stop: asyncio.Event) -> None:
    failures = 0
    while not stop.is_set():
        try:
            busy = await loop.job(ctx)
            failures = 0
        except Exception as exc:  # keep the worker alive through outages
            failures += 1
            busy = 0
            log.error("worker loop %s failed (%s in a row): %s: %s", loop.name, failures,
                      type(exc).__name__, exc)
        if busy:
            continue
        delay = loop.interval if not failures else min(30.0, loop.interval * 2 ** min(failures, 5))
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            pass


async def run_worker(ctx: WorkerContext, stop: asyncio.Event, loops: list[Loop] | None = None) -> None:
    """Run every loop until `stop` is set."""
    log.info("worker %s started", ctx.owner)
    await asyncio.gather(*(run_loop(loop, ctx, stop) for loop in (loops or default_loops(ctx.settings))))
    log.info("worker %s stopped", ctx.owner)
