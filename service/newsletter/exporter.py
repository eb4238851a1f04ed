"""CSV export of subscribers with their status, topics and all consent evidence, streamed in
id order (keyset pages), so memory stays flat. Its columns are exactly what the importer
reads, and the importer undoes the formula escaping: an export imports back unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.csvfile import CsvWriter
from service.newsletter.models import SUBSCRIBER_STATUSES, Subscriber, SubscriberTopic

EXPORT_COLUMNS = (
    "email", "name", "status", "topics", "signup_at", "signup_ip", "signup_user_agent", "signup_source",
    "consent_text", "confirmed_at", "confirm_ip", "created_at", "status_changed_at", "unsubscribed_at",
    "bounced_at", "complained_at", "last_bounce",
)
PAGE = 2000


async def export_rows(session: AsyncSession, *, status: str | None = None,
                      ids: Collection[int] | None = None) -> AsyncIterator[list[Any]]:
    """The header, then one row of values per subscriber (optionally of one status, or only the
    ones in `ids`), in id order; `service.csvfile` turns them into cells."""
    if status is not None and status not in SUBSCRIBER_STATUSES:
        raise ValueError(f"status must be one of {', '.join(SUBSCRIBER_STATUSES)}")
    yield list(EXPORT_COLUMNS)
    fields = [getattr(Subscriber, c) for c in EXPORT_COLUMNS if c != "topics"]
    last = 0
    while True:
        stmt = select(Subscriber.id, *fields).where(Subscriber.id > last).order_by(Subscriber.id).limit(PAGE)
        if status is not None:
            stmt = stmt.where(Subscriber.status == status)
        if ids is not None:
            stmt = stmt.where(Subscriber.id.in_(list(ids)))
        rows = (await session.execute(stmt)).all()
        if not rows:
            return
        ids = [r[0] for r in rows]
        topics: dict[int, list[str]] = {}
        for sid, topic in (await session.execute(
                select(SubscriberTopic.subscriber_id, SubscriberTopic.topic)
                .where(SubscriberTopic.subscriber_id.in_(ids)).order_by(SubscriberTopic.topic))).all():
            topics.setdefault(sid, []).append(topic)
        for r in rows:
            values = dict(zip([c for c in EXPORT_COLUMNS if c != "topics"], r[1:], strict=True))
            values["topics"] = ";".join(topics.get(r[0], []))
            yield [values[c] for c in EXPORT_COLUMNS]
        last = ids[-1]


async def export_subscribers(session: AsyncSession, out: IO[str], *, status: str | None = None) -> int:
    """Write the CSV to `out` (formula-safe cells); returns the number of subscribers written."""
    writer = CsvWriter(out)
    count = -1
    async for row in export_rows(session, status=status):
        writer.writerow(row)
        count += 1
    return count
