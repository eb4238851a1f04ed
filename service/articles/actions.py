"""Importing articles as an action shared by the admin's "Import now" and `tidings articles
import`: the import, then its audit row (`articles_import`: the counts, or the feed's error) for
whoever acted (an `Actor`: a staff user, or `cli:<user>`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.admin.audit import Actor, record_audit
from service.articles.flows import import_articles
from service.articles.ingest import IngestError
from service.articles.queries import ImportResult
from service.db import Sessions, transaction
from service.settings import Settings


async def import_articles_as(sessions: Sessions, settings: Settings, sources: Sequence[str], *,
                             actor: Actor) -> ImportResult:
    """Import from `sources` (or FEED_URL) and audit it in a transaction of its own; a failed
    import (IngestError, nothing written) is audited with its one-line reason and raised again."""
    try:
        result = await import_articles(sessions, settings, sources)
    except IngestError as exc:
        await _audit(sessions, actor, {"error": str(exc)[:300]})
        raise
    await _audit(sessions, actor, {"new": result.created, "updated": result.updated})
    return result


async def _audit(sessions: Sessions, actor: Actor, detail: dict[str, Any]) -> None:
    async with transaction(sessions) as session:
        await record_audit(session, by=actor, action="articles_import", detail=detail)
