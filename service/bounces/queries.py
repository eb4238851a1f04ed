"""Bounce SQL: storing an event once (the unique event key makes a second copy of a report a
no-op on both databases), the soft-bounce count, and look-ups. None of these commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.bounces.models import BounceEvent, WebhookNonce
from service.db import dialect_insert, insert_for, list_param, once_per_dialect, rowcount
from service.privacy.stores import PersonalDataStore, register_store
from service.validation import email_key


async def insert_event(session: AsyncSession, *, values: dict[str, Any]) -> int | None:
    """Store one event; its id, or None when an event with the same key is already stored."""
    stmt = (insert_for(session)(BounceEvent).values(**values).on_conflict_do_nothing(index_elements=["event_key"])
            .returning(BounceEvent.id))
    return (await session.execute(stmt)).scalar_one_or_none()


async def set_event_outcome(session: AsyncSession, *, event_id: int, outcome: str) -> None:
    await session.execute(update(BounceEvent).where(BounceEvent.id == event_id).values(outcome=outcome))


async def count_soft_bounces(session: AsyncSession, *, recipient_key: str, since: dt.datetime) -> int:
    """Soft bounces of this address that happened at or after `since`."""
    stmt = select(func.count()).select_from(BounceEvent).where(
        BounceEvent.recipient_key == recipient_key, BounceEvent.kind == "soft", BounceEvent.occurred_at >= since)
    return int(await session.scalar(stmt) or 0)


async def list_events(session: AsyncSession, *, subscriber_id: int | None = None, campaign_id: int | None = None,
                      limit: int = 100) -> Sequence[BounceEvent]:
    """Stored events, newest first; only one subscriber's or one campaign's when given."""
    stmt = select(BounceEvent)
    if subscriber_id is not None:
        stmt = stmt.where(BounceEvent.subscriber_id == subscriber_id)
    if campaign_id is not None:
        stmt = stmt.where(BounceEvent.campaign_id == campaign_id)
    stmt = stmt.order_by(BounceEvent.received_at.desc(), BounceEvent.id.desc()).limit(limit)
    return (await session.scalars(stmt)).all()


@once_per_dialect
def _soft_bounce_times(postgresql: bool) -> Any:
    return select(BounceEvent.recipient_key, BounceEvent.occurred_at).where(
        list_param(postgresql, BounceEvent.recipient_key, "keys"), BounceEvent.kind == "soft",
        BounceEvent.occurred_at >= bindparam("since"))


async def forget_inquiry_reports(session: AsyncSession, inquiry_ids: Sequence[int]) -> int:
    """Delete the reports about these inquiries' emails (erasure and retention of an inquiry)."""
    if not inquiry_ids:
        return 0
    result = await session.execute(delete(BounceEvent).where(BounceEvent.inquiry_id.in_(list(inquiry_ids))))
    return rowcount(result)


async def forget_address_reports(session: AsyncSession, address: str, until: dt.datetime | None = None) -> int:
    """Delete the reports about `address` (received at or before `until`; None: all), linked to a
    subscriber or not (erasure of a person)."""
    stmt = delete(BounceEvent).where(BounceEvent.recipient_key == email_key(address))
    if until is not None:
        stmt = stmt.where(BounceEvent.received_at <= until)
    result = await session.execute(stmt)
    return rowcount(result)


# Bounce and complaint reports quote an address and a diagnostic: they fall under the same
# retention, erasure and re-erasure after a restore as the stored mail (service.privacy.stores).
register_store(PersonalDataStore("bounces", forget_inquiries=forget_inquiry_reports,
                                 forget_address=forget_address_reports))


async def use_nonce(session: AsyncSession, *, key: str, now: dt.datetime, keep: dt.timedelta) -> bool:
    """Take a one-time value: True the first time, False when it was taken before (a replay).
    Values older than `keep` (past any fresh timestamp) are forgotten here too."""
    await session.execute(delete(WebhookNonce).where(WebhookNonce.seen_at < now - keep))
    stmt = (insert_for(session)(WebhookNonce).values(key=key, seen_at=now)
            .on_conflict_do_nothing(index_elements=["key"]).returning(WebhookNonce.key))
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def insert_events(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Store many events (distinct keys, every row the same columns); event key -> id of those
    stored now (a key stored before is left out). One statement compiled once, whatever the
    count: SQLAlchemy's "insertmanyvalues" sends the rows as multi-row INSERTs."""
    if not rows:
        return {}
    result = await (await session.connection()).execute(_insert_events(session), rows)
    return {key: event_id for key, event_id in result.all()}


@once_per_dialect
def _insert_events(postgresql: bool) -> Any:
    table = BounceEvent.__table__
    return (dialect_insert(postgresql)(table).on_conflict_do_nothing(index_elements=["event_key"])
            .returning(table.c.event_key, table.c.id))


async def set_event_outcomes(session: AsyncSession, outcomes: dict[str, list[int]]) -> None:
    """outcome -> the ids of the events that had it."""
    for outcome, ids in outcomes.items():
        await (await session.connection()).execute(_set_outcomes(session), {"ids": ids, "v_outcome": outcome})


@once_per_dialect
def _set_outcomes(postgresql: bool) -> Any:
    table = BounceEvent.__table__
    return update(table).where(list_param(postgresql, table.c.id, "ids")).values(outcome=bindparam("v_outcome"))


async def soft_bounce_times(session: AsyncSession, *, recipient_keys: Collection[str], since: dt.datetime
                            ) -> dict[str, list[dt.datetime]]:
    """When each of these addresses soft-bounced at or after `since`."""
    if not recipient_keys:
        return {}
    times: dict[str, list[dt.datetime]] = {}
    result = await (await session.connection()).execute(_soft_bounce_times(session),
                                                        {"keys": list(recipient_keys), "since": since})
    for key, at in result.all():
        times.setdefault(key, []).append(at)
    return times
