"""The send worker: the loops that deliver queued mail and run periodic jobs.

It runs inside `tidings serve` (an asyncio task) on the embedded default, and as `tidings
worker` processes in production; any number of them may share one PostgreSQL database, since
every job claims its rows with leases. A database or SMTP outage delays work, it never stops
the worker: it waits for the database before its loops start, and a failing loop logs one line,
waits (1, 2, 4 … 30 s, never less than a second) and tries again, saying when it recovered.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import text

from service.db import (
    Sessions,
    Stopped,
    describe_outage,
    is_database_outage,
    outage_delay,
    sleep_unless_stopped,
    transaction,
    utcnow,
    when_reachable,
)
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
    return await OutboxWorker(ctx.sessions, ctx.mailer, owner=ctx.owner,
                              max_age=dt.timedelta(seconds=ctx.settings.outbox_max_age)).run_once()


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
    from service.privacy.retention import expire_inquiries_job

    loops = [
        Loop("outbox", _outbox_job, 1.0),
        Loop("housekeeping", _housekeeping_job, 300.0),
        Loop("newsletter-purge", _newsletter_purge_job, 3600.0),
        Loop("held-purge", _held_purge_job, 3600.0),
        Loop("campaigns", campaign_send_job, 1.0),
        Loop("campaign-schedule", campaign_schedule_job, 30.0),
        Loop("inquiry-retention", expire_inquiries_job, 3600.0),
    ]
    if settings is not None and settings.feed_url:
        loops.append(Loop("feed", _feed_job, float(settings.feed_poll_seconds)))
    return loops


async def run_loop(loop: Loop, ctx: WorkerContext, stop: asyncio.Event) -> None:
    """Run `loop` until `stop` is set. A failure (a database outage or anything else) is logged in
    one line and retried after a backoff (never less than a second, so a failing loop cannot
    spin); the first success after failures logs that the loop recovered."""
    failures = 0
    while not stop.is_set():
        try:
            busy = await loop.job(ctx)
        except Exception as exc:  # keep the worker alive through outages and bugs alike
            failures += 1
            delay = outage_delay(failures, first=min(loop.interval, 30.0))
            _log_failure(loop, exc, failures, delay)
            await sleep_unless_stopped(stop, delay)
            continue
        if failures:
            log.warning("worker loop %s recovered after %s failed attempts", loop.name, failures)
            failures = 0
        if not busy:
            await sleep_unless_stopped(stop, loop.interval)


def _log_failure(loop: Loop, exc: Exception, failures: int, delay: float) -> None:
    if is_database_outage(exc):
        log.warning("worker loop %s: database not reachable (%s), retrying in %g s", loop.name,
                    describe_outage(exc), delay)
    else:
        log.error("worker loop %s failed (%s in a row): %s: %s; retrying in %g s", loop.name, failures,
                  type(exc).__name__, exc, delay)


async def _ping(ctx: WorkerContext) -> None:
    async with ctx.sessions() as session:
        await session.execute(text("SELECT 1"))


async def wait_until_ready(ctx: WorkerContext, stop: asyncio.Event) -> bool:
    """Wait until the database answers (retrying with backoff, one log line per attempt); False
    when `stop` was set first."""
    try:
        await when_reachable(lambda: _ping(ctx), stop=stop, logger=log)
    except Stopped:
        return False
    return True


async def run_worker(ctx: WorkerContext, stop: asyncio.Event, loops: list[Loop] | None = None) -> None:
    """Wait for the database, then run every loop until `stop` is set. Nothing a database outage
    does ends it: not at start, not in a loop."""
    log.info("worker %s starting", ctx.owner)
    if not await wait_until_ready(ctx, stop):
        log.info("worker %s stopped before the database answered", ctx.owner)
        return
    log.info("worker %s started", ctx.owner)
    await asyncio.gather(*(run_loop(loop, ctx, stop) for loop in (loops or default_loops(ctx.settings))))
    log.info("worker %s stopped", ctx.owner)
