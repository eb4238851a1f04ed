"""Article queries: upsert imported articles (by guid, else link) and read them for digests."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.articles.ingest import ParsedArticle
from service.articles.models import Article, ArticleTopic
from service.db import utcnow


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def _norm(value: str) -> str:
    return re.sub(r"[\s_-]+", " ", value).strip().casefold()


def topics_for_tags(tags: Iterable[str], topics: Iterable[str]) -> list[str]:
    """The configured topics the tags name, case-insensitively ('ptsd' -> 'PTSD', 'chronic-pain'
    -> 'chronic pain'); tags that name no topic are kept on the article but map to nothing."""
    by_key = {_norm(t): t for t in topics}
    return sorted({by_key[_norm(tag)] for tag in tags if _norm(tag) in by_key})


async def save_articles(
    session: AsyncSession, *, articles: Sequence[ParsedArticle], topics: Sequence[str]
) -> ImportResult:
    """Insert new articles and update known ones in place (matched by guid, else by link)."""
    result = ImportResult()
    now = utcnow()
    seen: dict[str, Article] = {}
    for parsed in articles:
        # An article without a link (its feed gave no http(s) address) is matched by guid only.
        row = seen.get(parsed.guid) or (seen.get(parsed.link) if parsed.link else None)
        if row is None:
            same = Article.guid == parsed.guid
            row = (
                await session.scalars(
                    select(Article).where(or_(same, Article.link == parsed.link) if parsed.link else same)
                    .order_by(same.desc(), Article.id).limit(1)
                )
            ).first()
        mapped = topics_for_tags(parsed.tags, topics)
        values = {
            "link": parsed.link, "title": parsed.title, "summary": parsed.summary,
            "content_html": parsed.content_html, "image_url": parsed.image_url, "image_alt": parsed.image_alt,
            "published_at": parsed.published_at, "tags": list(parsed.tags), "source": parsed.source[:2000],
        }
        if row is None:
            row = Article(guid=parsed.guid, created_at=now, updated_at=now, **values)
            row.topic_rows = [ArticleTopic(topic=t) for t in mapped]
            session.add(row)
            result.created += 1
        else:
            changed = any(getattr(row, k) != v for k, v in values.items()) or row.topics != mapped
            if changed:
                for key, value in values.items():
                    setattr(row, key, value)
                if row.topics != mapped:
                    row.topic_rows = [ArticleTopic(topic=t) for t in mapped]
                row.updated_at = now
                result.updated += 1
            else:
                result.unchanged += 1
        seen[parsed.guid] = row
        if parsed.link:
            seen[parsed.link] = row
        await session.flush()
    return result


async def list_articles(session: AsyncSession, *, since: dt.datetime | None = None) -> Sequence[Article]:
    """Articles newest first; only those published or imported after `since` when given."""
    query = select(Article).order_by(Article.published_at.desc(), Article.id.desc())
    if since is not None:
        query = query.where(or_(Article.published_at > since, Article.created_at > since))
    return (await session.scalars(query)).all()
