"""The send worker: the loops that deliver queued mail and run periodic jobs.

It runs inside `tidings serve` (an asyncio task) on the embedded default, and as `tidings
worker` processes in production; any number of them may share one PostgreSQL database, since
every job claims its rows with leases. A database or SMTP outage delays work, it never stops
the worker: it waits for the database before its loops start, and a failing loop logs one line,
waits (1, 2, 4 … 30 s, never less than a second) and tries again, saying when it recovered.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text

from service.db import (
    Stopped,
    describe_outage,
    is_database_outage,
    outage_delay,
    sleep_unless_stopped,
    transaction,
    utcnow,
    when_reachable,
)
from service.loops import Job, Loop, WorkerContext
from service.ratelimit import purge_rate_limits
from service.registry import domain_loops
from service.settings import Settings

__all__ = ["Job", "Loop", "WorkerContext", "default_loops", "run_loop", "run_worker"]

log = logging.getLogger("tidings.worker")


async def _housekeeping_job(ctx: WorkerContext) -> int:
    async with transaction(ctx.sessions) as session:
        await purge_rate_limits(session, now=utcnow())
    return 0


def default_loops(settings: Settings | None = None) -> list[Loop]:
    """Every loop a worker runs: the service's housekeeping, then each domain's (outbox, held
    purges, newsletter purge, campaigns and their schedule, inquiry retention, feed polling when
    FEED_URL is set, bounce report retention, the bounce mailbox when BOUNCE_MAILBOX_URL is), as
    `service.registry` collects them."""
    return [Loop("housekeeping", _housekeeping_job, 300.0), *domain_loops(settings)]


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
