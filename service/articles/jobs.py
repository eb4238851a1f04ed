"""The articles loop of the worker: poll FEED_URL (only when it is set)."""

from __future__ import annotations

import logging

from service.articles.flows import import_articles
from service.loops import Loop, WorkerContext
from service.settings import Settings

log = logging.getLogger("tidings.worker")


async def feed_job(ctx: WorkerContext) -> int:
    result = await import_articles(ctx.sessions, ctx.settings, [])
    if result.created or result.updated:
        log.info("feed: %s new, %s updated articles", result.created, result.updated)
    return 0


def loops(settings: Settings | None) -> list[Loop]:
    if settings is None or not settings.feed_url:
        return []
    return [Loop("feed", feed_job, float(settings.feed_poll_seconds))]
