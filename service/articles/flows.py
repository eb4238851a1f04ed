"""Importing articles: parse every source first, then write all of it in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from service.articles.ingest import IngestError, load_sources
from service.articles.queries import ImportResult, save_articles
from service.db import Sessions, transaction
from service.settings import Settings


async def import_articles(sessions: Sessions, settings: Settings, sources: Sequence[str]) -> ImportResult:
    """Import from `sources` (or FEED_URL); IngestError (one line) and nothing written on failure."""
    if not sources:
        if not settings.feed_url:
            raise IngestError("no feed given: pass a feed URL or file, or set FEED_URL")
        sources = [settings.feed_url]
    parsed = await load_sources(sources, deadline=settings.feed_fetch_deadline)
    async with transaction(sessions) as session:
        return await save_articles(session, articles=parsed, topics=settings.topics)
