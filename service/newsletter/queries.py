"""Newsletter SQL in one place: look-ups, the staff's filtered list, status changes, topics,
suppression and the purge of unconfirmed signups. Functions take the caller's session and never commit."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import (
    Cursor,
    email_domain,
    insert_for,
    like_pattern,
    list_param,
    newest_first,
    once_per_dialect,
    rowcount,
    utcnow,
)
from service.newsletter.models import SUPPRESSED_STATUSES, Subscriber, SubscriberTopic, Suppression
from service.tokens import Tokens
from service.validation import email_key
from service.webhooks.events import SUBSCRIBER_EVENTS, is_wanted, queue_subscriber_status


def suppression_hashes(tokens: Tokens, email: str) -> list[str]:
    """The keyed hashes of an address under every accepted key (newest first)."""
    return tokens.keyed_hashes("suppression", email_key(email))


async def get_subscriber(session: AsyncSession, *, subscriber_id: int, for_update: bool = False) -> Subscriber | None:
    stmt = select(Subscriber).where(Subscriber.id == subscriber_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def get_subscriber_by_email(session: AsyncSession, *, email: str, for_update: bool = False) -> Subscriber | None:
    stmt = select(Subscriber).where(Subscriber.email_key == email_key(email))
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


@dataclass(frozen=True)
class SubscriberFilter:
    """The staff's subscriber list and export: by status, by topic, by a substring of address or name."""

    status: str = ""
    topic: str = ""
    q: str = ""

    def query_args(self) -> dict[str, str]:
        return {k: v for k, v in {"status": self.status, "topic": self.topic, "q": self.q}.items() if v}


def filtered_subscribers(flt: SubscriberFilter) -> Select[Subscriber]:
    """The subscribers `flt` matches, unordered (the list pages it, the count counts it)."""
    stmt = select(Subscriber)
    if flt.status:
        stmt = stmt.where(Subscriber.status == flt.status)
    if flt.topic:
        stmt = stmt.where(exists().where(SubscriberTopic.subscriber_id == Subscriber.id,
                                         SubscriberTopic.topic == flt.topic))
    if flt.q.strip():
        pattern = like_pattern(flt.q.strip().lower())
        name = Subscriber.name.ilike(pattern, escape="\\")
        domain = search_domain(flt.q)
        if domain is not None:
            # The addresses at that domain (an index look-up on PostgreSQL: a domain's trigrams are
            # in most addresses, and the trigram index would read most of itself), or the name.
            stmt = stmt.where(or_(email_domain(Subscriber.email_key) == domain, name))
        else:
            # Substring of the address or the name; trigram indexes on PostgreSQL.
            stmt = stmt.where(or_(Subscriber.email_key.ilike(pattern, escape="\\"), name))
    return stmt


_DOMAIN = re.compile(r"@((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9])")


def search_domain(q: str) -> str | None:
    """The domain a search is for ("@example.org", any case), or None when it is not one. Only
    the leading "@" says so: "john.doe" or "example.org" alone may be part of an address
    (john.doe@…, …@mail.example.org) and stay substring searches."""
    found = _DOMAIN.fullmatch(q.strip().lower())
    return found.group(1) if found else None


async def list_subscribers(session: AsyncSession, *, flt: SubscriberFilter, after: Cursor | None,
                           limit: int) -> list[Subscriber]:
    """One page of subscribers, newest first, after the keyset cursor `after`."""
    stmt = newest_first(filtered_subscribers(flt), Subscriber.created_at, Subscriber.id, after, limit)
    return list((await session.scalars(stmt)).all())


# A search or topic matches more: the list says "More than 1,000 subscribers". Counting up to
# 10,000 matches cost 50-500 ms with a million subscribers (a heap row each), more than the page.
COUNT_CAP = 1_000


async def count_subscribers(session: AsyncSession, *, flt: SubscriberFilter, cap: int = COUNT_CAP
                            ) -> tuple[int, bool]:
    """How many subscribers match `flt` (all pages), and whether there are more than that: by
    status or all, exact from the counters (`service.newsletter.counts`); with a search or a
    topic, counted up to `cap` (counting a million matches would cost more than the page)."""
    from service.newsletter.counts import subscribers_by_status

    if not flt.q.strip() and not flt.topic:
        counts = await subscribers_by_status(session)
        return (counts.get(flt.status, 0) if flt.status else sum(counts.values())), False
    query = filtered_subscribers(flt).with_only_columns(Subscriber.id).limit(cap + 1).subquery()
    n = int(await session.scalar(select(func.count()).select_from(query)) or 0)
    return min(n, cap), n > cap


async def insert_pending_subscriber(session: AsyncSession, *, email: str, now: dt.datetime) -> None:
    """Create a bare pending row for `email` unless one exists (safe under concurrent signups)."""
    stmt = (
        insert_for(session)(Subscriber)
        .values(email=email, email_key=email_key(email), name="", status="pending", created_at=now,
                status_changed_at=now)
        .on_conflict_do_nothing(index_elements=["email_key"])
    )
    await session.execute(stmt)


async def is_suppressed(session: AsyncSession, *, tokens: Tokens, email: str) -> bool:
    """True when the address was erased (its keyed hash is on the suppression list)."""
    hashes = suppression_hashes(tokens, email)
    found = await session.scalar(select(Suppression.email_hash).where(Suppression.email_hash.in_(hashes)).limit(1))
    return found is not None


async def add_suppression(session: AsyncSession, *, tokens: Tokens, email: str, reason: str) -> None:
    stmt = (
        insert_for(session)(Suppression)
        .values(email_hash=tokens.keyed_hash("suppression", email_key(email)), reason=reason, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["email_hash"])
    )
    await session.execute(stmt)


async def remove_suppression(session: AsyncSession, *, tokens: Tokens, email: str) -> None:
    await session.execute(delete(Suppression).where(Suppression.email_hash.in_(suppression_hashes(tokens, email))))


async def set_topics(session: AsyncSession, *, subscriber: Subscriber, topics: Iterable[str]) -> None:
    """Replace the subscriber's topics (an empty list means every topic)."""
    wanted = sorted(set(topics))
    subscriber.topic_rows = [SubscriberTopic(subscriber_id=subscriber.id, topic=t) for t in wanted]
    await session.flush()


async def set_status(session: AsyncSession, *, subscriber: Subscriber, status: str, now: dt.datetime,
                     announce: bool = True) -> None:
    """Give the subscriber `status` (stamping its time) and queue its webhook event when it is a
    change (`announce=False`: a status restored, not a new event)."""
    changed = subscriber.status != status
    subscriber.status = status
    subscriber.status_changed_at = now
    if status == "unsubscribed":
        subscriber.unsubscribed_at = now
    elif status == "bounced":
        subscriber.bounced_at = now
    elif status == "complained":
        subscriber.complained_at = now
    await session.flush()
    if changed and announce:
        await queue_subscriber_status(session, subscriber_id=subscriber.id, email=subscriber.email, status=status,
                                      now=now)


async def delete_subscriber(session: AsyncSession, *, subscriber_id: int) -> None:
    await session.execute(delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == subscriber_id))
    await session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))


def _expired_pending(cutoff: dt.datetime) -> ColumnElement[bool]:
    # Only rows whose (last) confirmation email went out before the cutoff: that link is dead.
    # Imported pending rows that were never sent one stay until somebody sends it.
    return (Subscriber.status == "pending") & (Subscriber.confirmation_sent_at < cutoff)


async def purge_held_signups(session: AsyncSession, *, source_prefix: str, before: dt.datetime) -> int:
    """Delete held signups (pending, never sent a confirmation, source starting with
    `source_prefix`) recorded before `before`; how many went."""
    stmt = delete(Subscriber).where(
        Subscriber.status == "pending", Subscriber.confirmation_sent_at.is_(None),
        Subscriber.signup_source.startswith(source_prefix, autoescape=True), Subscriber.signup_at < before,
    )
    result = await session.execute(stmt.execution_options(synchronize_session=False))
    return rowcount(result)


async def purge_expired_pending(session: AsyncSession, *, cutoff: dt.datetime, limit: int = 500) -> int:
    """Delete unconfirmed signups whose confirmation link has expired; a row that was once
    unsubscribed, bounced or complained goes back to that status instead (its record stays)."""
    rows: Sequence[Subscriber] = (
        await session.scalars(select(Subscriber).where(_expired_pending(cutoff)).limit(limit))
    ).all()
    now = utcnow()
    gone: list[int] = []
    for row in rows:
        previous = _previous_suppressed_status(row)
        if previous is None:
            gone.append(row.id)
        else:
            await set_status(session, subscriber=row, status=previous[0], now=now, announce=False)
            # keep the original time of that status change
            setattr(row, f"{previous[0]}_at", previous[1])
    if gone:
        await session.execute(delete(SubscriberTopic).where(SubscriberTopic.subscriber_id.in_(gone)))
        await session.execute(delete(Subscriber).where(Subscriber.id.in_(gone)))
    await session.flush()
    return len(rows)


def _previous_suppressed_status(row: Subscriber) -> tuple[str, dt.datetime] | None:
    stamps = [(s, getattr(row, f"{s}_at")) for s in SUPPRESSED_STATUSES if getattr(row, f"{s}_at") is not None]
    return max(stamps, key=lambda item: item[1]) if stamps else None


async def mark_status_by(session: AsyncSession, *, subscriber_id: int | None, email: str | None, status: str,
                         reason: str | None, now: dt.datetime) -> bool:
    """Move one subscriber (by id or address) to a suppressed status; False when not found."""
    if subscriber_id is None and not email:
        raise ValueError("give subscriber_id or email")
    if subscriber_id is not None:
        where = Subscriber.id == subscriber_id
    else:
        where = Subscriber.email_key == email_key(email or "")
    found = (await session.execute(select(Subscriber.id, Subscriber.email, Subscriber.status).where(where)
                                   .with_for_update())).first()
    if found is None:
        return False
    values: dict[str, object] = {"status": status, "status_changed_at": now, f"{status}_at": now}
    if reason is not None:
        values["last_bounce"] = reason[:2000]
    stmt = update(Subscriber).where(Subscriber.id == found.id)
    if status != "complained":  # a complaint is the strongest signal; a bounce never overwrites it
        stmt = stmt.where(Subscriber.status != "complained")
    if rowcount(await session.execute(stmt.values(**values))) and found.status != status:
        await queue_subscriber_status(session, subscriber_id=found.id, email=found.email, status=status, now=now)
    return True


async def iter_subscriber_identities(session: AsyncSession, *, batch: int = 1000
                                     ) -> AsyncIterator[list[tuple[int, str, dt.datetime]]]:
    """Every subscriber's (id, address, created_at), in batches by id (for the erasure ledger)."""
    after = 0
    while True:
        stmt = (select(Subscriber.id, Subscriber.email, Subscriber.created_at).where(Subscriber.id > after)
                .order_by(Subscriber.id).limit(batch))
        rows = [(int(i), str(e), c) for i, e, c in (await session.execute(stmt)).all()]
        if not rows:
            return
        yield rows
        after = rows[-1][0]


async def subscriber_states(session: AsyncSession, *, ids: Collection[int], email_keys: Collection[str]
                            ) -> list[Any]:
    """(id, email_key, status, confirmed_at) of the subscribers with these ids or address keys:
    what a batch of bounces needs, without loading whole rows."""
    if not ids and not email_keys:
        return []
    return list((await (await session.connection()).execute(
        _subscriber_states(session), {"ids": list(ids), "keys": list(email_keys)})).all())


@once_per_dialect
def _subscriber_states(postgresql: bool) -> Any:
    return (select(Subscriber.id, Subscriber.email_key, Subscriber.status, Subscriber.confirmed_at)
            .where(or_(list_param(postgresql, Subscriber.id, "ids"),
                       list_param(postgresql, Subscriber.email_key, "keys"))))


async def set_statuses(session: AsyncSession, *, status: str, changes: list[dict[str, Any]]) -> None:
    """`mark_status_by` for many subscribers at once: each dict has `sid` and the values
    (status, status_changed_at, <status>_at, last_bounce); a bounce never overwrites a complaint."""
    if not changes:
        return
    columns = tuple(k for k in changes[0] if k != "sid")
    params = [{"sid": c["sid"], **{f"v_{k}": c[k] for k in columns}} for c in changes]
    conn = await session.connection()
    await conn.execute(_set_status(status, columns), params)
    # Webhook events (the bounce policy passes only real changes: see bounces.policy._apply); the
    # addresses are read only when an endpoint wants the event, since this runs per bounce batch.
    event = SUBSCRIBER_EVENTS.get(status)
    if event is None or not await is_wanted(session, event=event):
        return
    emails = dict((await session.execute(select(Subscriber.id, Subscriber.email)
                                         .where(Subscriber.id.in_([c["sid"] for c in changes])))).all())
    for change in changes:
        if change["sid"] in emails:
            await queue_subscriber_status(session, subscriber_id=change["sid"], email=emails[change["sid"]],
                                          status=status, now=change.get("status_changed_at") or utcnow())


@functools.cache
def _set_status(status: str, columns: tuple[str, ...]) -> Any:
    """The UPDATE of `set_statuses`, built once per status and columns."""
    table = Subscriber.__table__
    stmt = update(table).where(table.c.id == bindparam("sid"))
    if status != "complained":
        stmt = stmt.where(table.c.status != "complained")
    return stmt.values({k: bindparam(f"v_{k}") for k in columns})
