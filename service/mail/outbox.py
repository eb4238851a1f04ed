"""The durable outbox: transactional mail is queued in the transaction of the event that caused
it, then delivered by workers that claim leased batches.

A claimed row carries `lease_owner` and `lease_expires_at`; a worker killed mid-batch leaves
its rows in `sending`, and another worker claims them again when the lease has run out. Every
state change after a send is fenced on the lease owner, so a worker whose lease was taken over
cannot overwrite the newer owner's result. Delivery is at-least-once across a crash between the
SMTP answer and the commit of `sent` (a window of one message per worker); the Message-ID is
fixed when the message is queued, so a receiving server sees the same message twice, never two
different ones.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import Sessions, utcnow
from service.mail.message import POLICY, build_message, parse_raw
from service.mail.models import OutboxMessage
from service.mail.render import render_email
from service.mail.transport import Mailer, PermanentFailure, TemporaryFailure

log = logging.getLogger("tidings.outbox")


async def queue_email(
    session: AsyncSession,
    *,
    kind: str,
    sender: str,
    to: str,
    subject: str,
    template: str,
    ctx: dict[str, Any],
    reply_to: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> OutboxMessage:
    """Render `template` and queue the message in the caller's transaction."""
    rendered = render_email(template, ctx)
    message = build_message(
        sender=sender, to=to, subject=subject, text=rendered.text, html=rendered.html,
        reply_to=reply_to, headers=headers,
    )
    row = OutboxMessage(
        kind=kind,
        recipient=to,
        subject=subject,
        message_id=str(message["Message-ID"]),
        raw=message.as_bytes(policy=POLICY),
        status="queued",
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return row


async def claim_outbox_batch(
    session: AsyncSession, *, owner: str, limit: int, lease: dt.timedelta, now: dt.datetime
) -> Sequence[OutboxMessage]:
    """Lease up to `limit` due messages (queued and due, or sending with an expired lease)."""
    due = or_(
        and_(OutboxMessage.status == "queued", OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.status == "sending", OutboxMessage.lease_expires_at < now),
    )
    ids = (
        await session.scalars(
            select(OutboxMessage.id).where(due).order_by(OutboxMessage.id).limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not ids:
        return []
    result = await session.scalars(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), due)
        .values(
            status="sending",
            lease_owner=owner,
            lease_expires_at=now + lease,
            attempts=OutboxMessage.attempts + 1,
        )
        .returning(OutboxMessage)
        .execution_options(synchronize_session=False)
    )
    return sorted(result.all(), key=lambda m: m.id)


async def mark_outbox_sent(
    session: AsyncSession, *, message_id: int, owner: str, response: str, now: dt.datetime
) -> bool:
    """Record a delivery; False when the lease was lost to another worker."""
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.lease_owner == owner,
               OutboxMessage.status == "sending")
        .values(status="sent", sent_at=now, smtp_response=response[:2000], last_error=None,
                lease_owner=None, lease_expires_at=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_outbox_failed(
    session: AsyncSession, *, message_id: int, owner: str, error: str, retry_at: dt.datetime | None
) -> bool:
    """Schedule a retry at `retry_at`, or fail the message for good when it is None."""
    values: dict[str, Any] = {"last_error": error[:2000], "lease_owner": None, "lease_expires_at": None}
    values.update({"status": "queued", "next_attempt_at": retry_at} if retry_at else {"status": "failed"})
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.lease_owner == owner,
               OutboxMessage.status == "sending")
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def retry_outbox_message(session: AsyncSession, *, message_id: int, now: dt.datetime) -> bool:
    """Put a failed message back in the queue (the admin's retry button)."""
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == "failed")
        .values(status="queued", next_attempt_at=now, attempts=0)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def backoff(attempts: int, *, base: float, cap: float) -> dt.timedelta:
    """Exponential backoff with full jitter in its upper half: base, 2*base, 4*base ... cap."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return dt.timedelta(seconds=delay * random.uniform(0.5, 1.0))


class OutboxWorker:
    """Delivers queued transactional mail; many may run at once against one database."""

    def __init__(
        self,
        sessions: Sessions,
        mailer: Mailer,
        *,
        owner: str,
        batch_size: int = 20,
        lease: dt.timedelta = dt.timedelta(minutes=5),
        backoff_base: float = 30.0,
        backoff_cap: float = 3600.0,
        max_attempts: int = 12,
    ) -> None:
        self.sessions = sessions
        self.mailer = mailer
        self.owner = owner
        self.batch_size = batch_size
        self.lease = lease
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_attempts = max_attempts

    async def run_once(self) -> int:
        """Claim one batch and try each message once; returns how many were claimed."""
        async with self.sessions.begin() as session:
            batch = await claim_outbox_batch(
                session, owner=self.owner, limit=self.batch_size, lease=self.lease, now=utcnow()
            )
        await asyncio.gather(*(self._deliver(row) for row in batch))
        return len(batch)

    async def _deliver(self, row: OutboxMessage) -> None:
        try:
            result = await self.mailer.send(parse_raw(row.raw))
        except TemporaryFailure as exc:
            retry_at = None
            error = str(exc)
            if row.attempts < self.max_attempts:
                retry_at = utcnow() + backoff(row.attempts, base=self.backoff_base, cap=self.backoff_cap)
            else:
                error = f"gave up after {row.attempts} attempts: {error}"
            log.warning("outbox message %s: temporary failure (attempt %s): %s", row.id, row.attempts, exc)
            async with self.sessions.begin() as session:
                await mark_outbox_failed(session, message_id=row.id, owner=self.owner, error=error,
                                         retry_at=retry_at)
            return
        except PermanentFailure as exc:
            log.warning("outbox message %s: permanent failure: %s", row.id, exc)
            async with self.sessions.begin() as session:
                await mark_outbox_failed(session, message_id=row.id, owner=self.owner, error=str(exc),
                                         retry_at=None)
            return
        async with self.sessions.begin() as session:
            await mark_outbox_sent(session, message_id=row.id, owner=self.owner, response=result.response,
                                   now=utcnow())

    async def drain(self) -> int:
        """Run batches until nothing is due (tests and the CLI)."""
        total = 0
        while n := await self.run_once():
            total += n
        return total


async def forget_recipient(session: AsyncSession, *, address: str) -> int:
    """Delete every outbox and local-mailbox message to `address` (erasure of a person);
    returns how many outbox rows went."""
    from email.utils import getaddresses

    from service.mail.models import MailboxMessage

    wanted = address.strip().lower()
    rows = (await session.execute(
        select(OutboxMessage.id, OutboxMessage.recipient)
        .where(func.lower(OutboxMessage.recipient).contains(wanted, autoescape=True))
    )).all()
    ids = [i for i, rcpt in rows if any(a.lower() == wanted for _n, a in getaddresses([rcpt]))]
    if ids:
        await session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
    boxed = (await session.execute(
        select(MailboxMessage.id, MailboxMessage.recipients)
        .where(func.lower(MailboxMessage.recipients).contains(wanted, autoescape=True))
    )).all()
    box_ids = [i for i, rcpts in boxed if any(a.lower() == wanted for _n, a in getaddresses([rcpts]))]
    if box_ids:
        await session.execute(delete(MailboxMessage).where(MailboxMessage.id.in_(box_ids)))
    return len(ids)
