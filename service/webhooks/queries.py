"""Webhook SQL: the endpoints, the worker's leased claims and recorded outcomes, the delivery
log the admin shows, "send again", test events, retention and erasure. Functions take the
caller's session and never commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import rowcount
from service.privacy.stores import PersonalDataStore, register_store
from service.validation import email_key
from service.webhooks.events import RETRY_WINDOW, TEST_EVENT, payload_body
from service.webhooks.models import WebhookDelivery, WebhookEndpoint
from service.webhooks.signing import new_msg_id

D = WebhookDelivery.__table__.c
E = WebhookEndpoint.__table__.c


# -- the worker's claims and outcomes --------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    id: int
    endpoint_id: int
    msg_id: str
    payload: str | None
    attempts: int
    retry_until: dt.datetime


def _due(now: dt.datetime) -> Any:
    return or_(and_(D.status == "queued", D.next_attempt_at <= now),
               and_(D.status == "sending", D.lease_expires_at < now))


async def claim_deliveries(session: AsyncSession, *, owner: str, limit: int, lease: dt.timedelta,
                           now: dt.datetime, skip_endpoints: Sequence[int] = ()) -> list[Claim]:
    """Lease up to `limit` due deliveries of enabled endpoints (queued and due, or sending with an
    expired lease: a dead worker's), except those of `skip_endpoints`. Rows locked by another
    worker's claim are skipped."""
    enabled = select(E.id).where(E.enabled.is_(True))
    if skip_endpoints:
        enabled = enabled.where(E.id.not_in(list(skip_endpoints)))
    # One statement: the locked sub-select picks the rows, the UPDATE leases them (PostgreSQL
    # skips rows another worker's claim holds; SQLite's writers take turns anyway).
    due = (select(D.id).where(_due(now), D.endpoint_id.in_(enabled)).order_by(D.id).limit(limit)
           .with_for_update(skip_locked=True))
    rows = await session.execute(
        update(WebhookDelivery.__table__).where(D.id.in_(due.scalar_subquery()), _due(now))
        .values(status="sending", lease_owner=owner, lease_expires_at=now + lease, attempts=D.attempts + 1,
                last_attempt_at=now)
        .returning(D.id, D.endpoint_id, D.msg_id, D.payload, D.attempts, D.retry_until)
    )
    return sorted((Claim(*row) for row in rows.all()), key=lambda c: c.id)


@dataclass(frozen=True)
class EndpointKeys:
    id: int
    url: str
    secrets: tuple[str, ...]
    failing_since: dt.datetime | None


async def endpoint_keys(session: AsyncSession, *, ids: Sequence[int], now: dt.datetime) -> dict[int, EndpointKeys]:
    """URL and signing secrets in force (the previous one too, during its overlap) of endpoints."""
    rows = await session.execute(select(E.id, E.url, E.secret, E.previous_secret, E.previous_secret_until,
                                        E.failing_since).where(E.id.in_(list(ids))))
    out: dict[int, EndpointKeys] = {}
    for ident, url, secret, previous, until, failing_since in rows.all():
        keys = (secret, previous) if previous and until is not None and until > now else (secret,)
        out[ident] = EndpointKeys(ident, url, keys, failing_since)
    return out


_DONE = (update(WebhookDelivery.__table__)
         .where(D.id == bindparam("b_id"), D.lease_owner == bindparam("b_owner"), D.status == "sending")
         .values(status=bindparam("b_status"), next_attempt_at=bindparam("b_next"),
                 delivered_at=bindparam("b_delivered"), response_status=bindparam("b_code"),
                 response_body=bindparam("b_body"), duration_ms=bindparam("b_ms"), last_error=bindparam("b_error"),
                 lease_owner=None, lease_expires_at=None))


async def record_outcomes(session: AsyncSession, *, owner: str, outcomes: Sequence[dict[str, Any]]) -> None:
    """Write a batch's outcomes in one statement; each dict has id, status (delivered, queued
    for a retry, failed), next, delivered, code, body, ms, error. Fenced on the lease owner:
    a worker whose lease was taken over cannot overwrite the newer owner's result."""
    if outcomes:
        conn = await session.connection()
        await conn.execute(_DONE, [{f"b_{k}": v for k, v in o.items()} | {"b_owner": owner} for o in outcomes])


async def note_endpoint_health(session: AsyncSession, *, succeeded: Sequence[int], failed: Sequence[int],
                               now: dt.datetime) -> None:
    """An endpoint that answered clears its failing streak; one that failed starts it (once)."""
    if succeeded:
        await session.execute(update(WebhookEndpoint.__table__).where(E.id.in_(list(succeeded)),
                                                                      E.failing_since.is_not(None))
                              .values(failing_since=None))
    if failed:
        await session.execute(update(WebhookEndpoint.__table__).where(E.id.in_(list(failed)),
                                                                      E.failing_since.is_(None))
                              .values(failing_since=now))


async def disable_failing_endpoints(session: AsyncSession, *, ids: Sequence[int], failing_for: dt.timedelta,
                                    now: dt.datetime) -> list[tuple[int, str]]:
    """Disable the endpoints among `ids` that have failed for `failing_for` without a delivery
    going through, failing their queued deliveries; (id, url) of each one disabled."""
    if not ids:
        return []
    reason = f"every delivery failed for {int(failing_for.total_seconds() // 3600)} hours"
    rows = (await session.execute(
        update(WebhookEndpoint.__table__)
        .where(E.id.in_(list(ids)), E.enabled.is_(True), E.failing_since <= now - failing_for)
        .values(enabled=False, disabled_at=now, disabled_reason=reason)
        .returning(E.id, E.url)
    )).all()
    gone = [int(r[0]) for r in rows]
    if gone:
        await session.execute(update(WebhookDelivery.__table__)
                              .where(D.endpoint_id.in_(gone), D.status == "queued")
                              .values(status="failed", last_error=f"not sent: the endpoint was disabled ({reason})"))
    return [(int(i), str(u)) for i, u in rows]


# -- staff's actions on deliveries ---------------------------------------------------------------


class RedeliveryError(ValueError):
    """This delivery cannot be sent again (says why)."""


async def redeliver(session: AsyncSession, *, delivery_id: int, now: dt.datetime) -> WebhookDelivery:
    """Queue a delivered or failed delivery again, with its own webhook-id and payload."""
    row = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if row is None:
        raise RedeliveryError(f"no delivery {delivery_id}")
    if row.status in ("queued", "sending"):
        raise RedeliveryError(f"delivery {delivery_id} is {row.status} already")
    if row.payload is None:
        raise RedeliveryError(f"delivery {delivery_id} is past the delivery log's retention: its payload is gone")
    row.status, row.next_attempt_at, row.retry_until = "queued", now, now + RETRY_WINDOW
    row.lease_owner = row.lease_expires_at = None
    await session.flush()
    return row


async def queue_test_event(session: AsyncSession, *, endpoint_id: int, now: dt.datetime) -> WebhookDelivery:
    """A `webhook.test` delivery to one endpoint, whatever events it chose."""
    row = WebhookDelivery(
        endpoint_id=endpoint_id, msg_id=new_msg_id(), event=TEST_EVENT, created_at=now, status="queued", attempts=0,
        next_attempt_at=now, retry_until=now + RETRY_WINDOW,
        payload=payload_body(TEST_EVENT, now, {"endpoint_id": endpoint_id,
                                               "message": "A test event from Tidings: the signature checks out."}))
    session.add(row)
    await session.flush()
    return row


async def list_deliveries(session: AsyncSession, *, endpoint_id: int, limit: int = 50,
                          before_id: int | None = None) -> list[WebhookDelivery]:
    stmt = (select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.id.desc()).limit(limit))
    if before_id:
        stmt = stmt.where(WebhookDelivery.id < before_id)
    return list((await session.scalars(stmt)).all())


async def delivery_counts(session: AsyncSession) -> dict[int, dict[str, int]]:
    """Per endpoint, its deliveries by status."""
    out: dict[int, dict[str, int]] = {}
    rows = await session.execute(select(D.endpoint_id, D.status, func.count()).group_by(D.endpoint_id, D.status))
    for endpoint_id, status, n in rows.all():
        out.setdefault(int(endpoint_id), {})[str(status)] = int(n)
    return out


async def list_endpoints(session: AsyncSession) -> list[WebhookEndpoint]:
    return list((await session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))).all())


async def disabled_by_failures(session: AsyncSession) -> int:
    """How many endpoints the worker disabled for failing (the admin's banner)."""
    stmt = select(func.count()).select_from(WebhookEndpoint).where(E.enabled.is_(False), E.failing_since.is_not(None))
    return int(await session.scalar(stmt) or 0)


# -- retention and erasure ---------------------------------------------------------------------


async def purge_delivery_log(session: AsyncSession, *, before: dt.datetime, limit: int = 5000) -> int:
    """Delete finished deliveries of events older than `before` (INQUIRY_RETENTION_DAYS): the log
    keeps no payload, and no answer, longer than the inquiries themselves are kept."""
    ids = select(D.id).where(D.created_at < before, D.status.in_(("delivered", "failed"))).limit(limit)
    result = await session.execute(delete(WebhookDelivery.__table__).where(D.id.in_(ids.scalar_subquery())))
    return rowcount(result)


async def forget_inquiry_deliveries(session: AsyncSession, inquiry_ids: Sequence[int]) -> int:
    if not inquiry_ids:
        return 0
    return rowcount(await session.execute(delete(WebhookDelivery.__table__).where(D.inquiry_id.in_(list(inquiry_ids)))))


async def forget_address_deliveries(session: AsyncSession, address: str, until: dt.datetime | None) -> int:
    stmt = delete(WebhookDelivery.__table__).where(D.person == email_key(address))
    if until is not None:
        stmt = stmt.where(D.created_at <= until)
    return rowcount(await session.execute(stmt))


# The delivery log holds inquiries (for trusted endpoints) and subscribers' addresses.
register_store(PersonalDataStore("webhooks", forget_inquiries=forget_inquiry_deliveries,
                                 forget_address=forget_address_deliveries))
