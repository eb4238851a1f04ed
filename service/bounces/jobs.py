"""The bounce mailbox loop of the worker (only when BOUNCE_MAILBOX_URL is set): every
BOUNCE_MAILBOX_INTERVAL seconds, read the messages waiting in the mailbox, record each one's
bounces and complaints (`service.bounces.intake.process_report`, in its own transaction), then
delete or move (BOUNCE_MAILBOX_DONE) exactly the messages that were processed.

A message that cannot be processed (larger than the report limit, or its processing failed)
stays in the mailbox for the next round and is logged by its id alone, never its content. A
mailbox that cannot be reached raises `MailboxUnavailable`, which the worker logs in one line and
retries with its backoff; a database outage is raised the same way, after the messages already
recorded have been cleared from the mailbox. Any number of workers may poll one mailbox: a
report counts once, whoever reads it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from service.bounces.intake import MAX_REPORT_BYTES, process_report
from service.bounces.mailbox import (
    MAILBOX_ERRORS,
    MailboxSession,
    MailboxUnavailable,
    Waiting,
    open_session,
    unavailable,
)
from service.bounces.mailboxurl import MailboxConfig
from service.bounces.retention import expire_reports_job
from service.db import is_database_outage, transaction
from service.loops import Loop, WorkerContext
from service.settings import Settings

log = logging.getLogger("tidings.bounces")

BATCH = 200  # messages read per round; a busy round is followed by the next at once
LISTED = 5 * BATCH  # the oldest messages looked at per round (those too large to read stay among them)
T = TypeVar("T")


async def _call(config: MailboxConfig, what: str, fn: Callable[..., T], *args: object) -> T:
    """Run one blocking mailbox call in a thread; its failures become MailboxUnavailable."""
    try:
        return await asyncio.to_thread(fn, *args)
    except MailboxUnavailable:
        raise
    except MAILBOX_ERRORS as exc:
        raise unavailable(config, what, exc) from None


async def poll_mailbox(ctx: WorkerContext) -> int:
    """One round: the number of messages processed (and deleted or moved)."""
    config = ctx.settings.bounce_mailbox
    assert config is not None
    session = await asyncio.to_thread(open_session, config)
    processed: list[str] = []
    try:
        waiting = await _call(config, "cannot list the messages", session.waiting, LISTED)
        for item in _readable(waiting)[:BATCH]:
            if await _process_one(ctx, config, session, item):
                processed.append(item.id)
    finally:
        try:
            await _call(config, "cannot delete or move the processed messages", session.done, processed)
        except MailboxUnavailable:
            if processed:
                log.warning("bounce mailbox: %s processed messages stay until the next round (the mailbox "
                            "went away; they will count once)", len(processed))
            raise
        finally:
            await asyncio.to_thread(session.close)
    if processed:
        log.info("bounce mailbox: %s messages processed", len(processed))
    return len(processed)


def _readable(waiting: list[Waiting]) -> list[Waiting]:
    for item in waiting:
        if item.size > MAX_REPORT_BYTES:
            log.warning("bounce mailbox: message %s is larger than %s MB: not read, left in the mailbox", item.id,
                        MAX_REPORT_BYTES // (1024 * 1024))
    return [item for item in waiting if item.size <= MAX_REPORT_BYTES]


async def _process_one(ctx: WorkerContext, config: MailboxConfig, session: MailboxSession, item: Waiting) -> bool:
    """Record one message's events in its own transaction; False (logged by id) when that failed."""
    raw = await _call(config, f"cannot read message {item.id}", session.fetch, item.id)
    try:
        async with transaction(ctx.sessions) as db:
            result = await process_report(db, raw, settings=ctx.settings, source="mailbox")
    except Exception as exc:  # one bad message must not stop the others
        if is_database_outage(exc):
            raise
        log.error("bounce mailbox: message %s could not be processed (%s); left in the mailbox for the next round",
                  item.id, type(exc).__name__)
        return False
    log.info("bounce mailbox: message %s: %s", item.id, result.summary())
    return True


def loops(settings: Settings | None) -> list[Loop]:
    """The retention of unlinked reports always; the mailbox when BOUNCE_MAILBOX_URL is set."""
    retention = [Loop("bounce-retention", expire_reports_job, 3600.0)]
    if settings is None or settings.bounce_mailbox is None:
        return retention
    return [*retention, Loop("bounce-mailbox", poll_mailbox, float(settings.bounce_mailbox_interval))]
