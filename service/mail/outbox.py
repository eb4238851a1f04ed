"""The durable outbox: transactional mail is queued in the transaction of the event that caused
it, then delivered by workers that claim leased batches.

A claimed row carries `lease_owner` and `lease_expires_at`; a worker killed mid-batch leaves
its rows in `sending`, and another worker claims them again when the lease has run out. Every
state change after a send is fenced on the lease owner, so a worker whose lease was taken over
cannot overwrite the newer owner's result. Delivery is at-least-once across a crash between the
SMTP answer and the commit of `sent` (a window of one message per worker); the Message-ID is
fixed when the message is queued, so a receiving server sees the same message twice, never two
different ones.

Queuing is cheap: `queue_email` checks every header value (line breaks, controls, addresses) and fixes the
Message-ID and Date in the request, but stores only the template name, its context (JSON) and the
headers; the worker renders the template, inlines the CSS and builds the MIME message when it
sends it, and keeps the bytes that went out in `raw`. A template that fails at send time fails
that message (with the reason in `last_error`; the admin's retry button renders it again), never
the worker; so do bytes whose header block is not exactly the headers that were set
(`service.mail.headers.check_serialised`).

Temporary failures (no connection, 4xx) are retried with backoff until OUTBOX_MAX_AGE after the
message was queued, as an MTA keeps its queue, not for a number of attempts; a 5xx fails at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.bounces.returnpath import return_path
from service.db import Sessions, is_database_outage, list_param, once_per_dialect, rowcount, utcnow
from service.mail.headers import HeaderInjectionError, header_names
from service.mail.message import build_message, checked_headers, mail_date, new_message_id, parse_raw, serialise
from service.mail.models import OutboxMessage
from service.mail.redact import redact
from service.mail.render import render_email
from service.mail.smtp import PermanentFailure, TemporaryFailure
from service.mail.transport import Mailer
from service.paths import TEMPLATES_DIR
from service.settings import Settings

log = logging.getLogger("tidings.outbox")


_TEMPLATE_NAME = re.compile(r"[a-z0-9_]+")


@functools.lru_cache(maxsize=128)
def _check_template(name: str) -> None:
    """A typo in a template name fails the request that queues it, as rendering there used to."""
    if not _TEMPLATE_NAME.fullmatch(name):
        raise ValueError(f"email template name {name!r}: expected lower-case letters, digits and _")
    for ext in ("html", "txt"):
        if not (TEMPLATES_DIR / "email" / f"{name}.{ext}").is_file():
            raise ValueError(f"email template {name}.{ext} does not exist")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def email_values(
    *,
    kind: str,
    sender: str,
    to: str,
    subject: str,
    template: str,
    ctx: Mapping[str, Any],
    reply_to: str | None = None,
    headers: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The outbox row for one message, checked as `queue_email` does (for `queue_emails`)."""
    _check_template(template)
    values = checked_headers(sender=sender, to=to, subject=subject, reply_to=reply_to, headers=headers)
    now = now or utcnow()
    values["Date"] = mail_date(now)
    return {
        "created_at": now, "kind": kind, "recipient": values["To"], "subject": values["Subject"],
        "message_id": new_message_id(sender), "raw": None, "template": template,
        "context": _json(dict(ctx)),  # TypeError here for a context that is not JSON
        "headers": _json(values), "status": "queued", "attempts": 0, "next_attempt_at": now,
    }


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
    """Queue the message in the caller's transaction; the worker renders `template` with `ctx`
    (which must be JSON: strings, numbers, booleans, lists, dicts) when it sends it. Raises
    HeaderInjectionError / ValueError for a bad header value here, in the caller's request."""
    row = OutboxMessage(**email_values(kind=kind, sender=sender, to=to, subject=subject, template=template,
                                       ctx=ctx, reply_to=reply_to, headers=headers))
    session.add(row)
    await session.flush()
    return row


async def queue_emails(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Queue several messages made by `email_values` with one INSERT statement."""
    if rows:
        # Core, no ORM bookkeeping; RETURNING makes SQLAlchemy send one multi-row INSERT
        # ("insertmanyvalues") rather than the driver's executemany.
        connection = await session.connection()
        await connection.execute(_INSERT_RETURNING_ID, list(rows))


_INSERT_RETURNING_ID = insert(OutboxMessage.__table__).returning(OutboxMessage.__table__.c.id)


def outbox_email(row: OutboxMessage) -> EmailMessage:
    """The message of an outbox row: the bytes that were sent, or rendered and built now from the
    stored template, context and headers (with the Message-ID and Date fixed when it was queued).
    Raises whatever rendering raises (jinja2.TemplateError, ...)."""
    if row.raw is not None:
        return parse_raw(row.raw)
    if row.template is None or row.context is None or row.headers is None:
        raise ValueError("the message has neither its bytes nor a template to render")
    values: dict[str, str] = json.loads(row.headers)
    rendered = render_email(row.template, json.loads(row.context))
    del values["Subject"]  # the row's own (an inquiry's notification gets its id in it as it is stored)
    return build_message(
        sender=values.pop("From"), to=values.pop("To"), subject=row.subject,
        reply_to=values.pop("Reply-To", None), date=values.pop("Date", None), headers=values,
        text=rendered.text, html=rendered.html, message_id=row.message_id,
    )


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
    session: AsyncSession, *, message_id: int, owner: str, response: str, now: dt.datetime,
    raw: bytes | None = None,
) -> bool:
    """Record a delivery (and the bytes sent, when given); False when the lease was lost."""
    values: dict[str, Any] = {"status": "sent", "sent_at": now, "smtp_response": response[:2000],
                              "last_error": None, "lease_owner": None, "lease_expires_at": None}
    if raw is not None:
        values["raw"] = raw
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.lease_owner == owner,
               OutboxMessage.status == "sending")
        .values(**values)
    )
    return bool(rowcount(result))


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
    return bool(rowcount(result))


async def retry_outbox_message(session: AsyncSession, *, message_id: int, now: dt.datetime) -> bool:
    """Put a failed message back in the queue (the admin's retry button)."""
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == "failed")
        .values(status="queued", next_attempt_at=now, attempts=0)
    )
    return bool(rowcount(result))


def backoff(attempts: int, *, base: float, cap: float) -> dt.timedelta:
    """Exponential backoff with full jitter in its upper half: base, 2*base, 4*base ... cap."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return dt.timedelta(seconds=delay * random.uniform(0.5, 1.0))


def retry_time(queued_at: dt.datetime, attempts: int, *, now: dt.datetime, max_age: dt.timedelta, base: float,
               cap: float) -> dt.datetime | None:
    """When to try again after a temporary failure, or None to give up: like an MTA, a message is
    retried with backoff until it has been queued for `max_age` (OUTBOX_MAX_AGE), the last try
    falling at that moment; the number of attempts does not matter."""
    deadline = queued_at + max_age
    if now >= deadline:
        return None
    return min(now + backoff(attempts, base=base, cap=cap), deadline)


def _duration(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} hours"
    return f"{max(1, seconds // 60)} minutes"


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
        max_age: dt.timedelta = dt.timedelta(days=5),
        settings: Settings | None = None,
    ) -> None:
        self.sessions = sessions
        self.mailer = mailer
        self.owner = owner
        self.batch_size = batch_size
        self.lease = lease
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_age = max_age
        self.settings = settings  # for the VERP return path (RETURN_PATH / BOUNCE_DOMAIN); None: From

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
            message = outbox_email(row)
            if row.raw is not None:
                header_names(row.raw)  # stored bytes (queued before 0005p): a well-formed header block
            raw = serialise(message) if row.raw is None else None
        except HeaderInjectionError as exc:  # the bytes would carry headers that were not set
            error = f"not sent: {exc}"
            log.warning("outbox message %s: %s", row.id, redact(error))
            await self._record(row.id, lambda s: mark_outbox_failed(
                s, message_id=row.id, owner=self.owner, error=error, retry_at=None))
            return
        except Exception as exc:  # a template error fails this message, never the worker
            error = f"could not render the message: {type(exc).__name__}: {exc}"
            log.warning("outbox message %s: %s", row.id, redact(error))
            await self._record(row.id, lambda s: mark_outbox_failed(
                s, message_id=row.id, owner=self.owner, error=error, retry_at=None))
            return
        try:
            envelope_from = return_path(self.settings, "outbox", row.id) if self.settings else None
            result = await self.mailer.send(message, envelope_from=envelope_from)
        except TemporaryFailure as exc:
            error = str(exc)
            retry_at = retry_time(row.created_at, row.attempts, now=utcnow(), max_age=self.max_age,
                                  base=self.backoff_base, cap=self.backoff_cap)
            if retry_at is None:
                error = f"gave up after {row.attempts} attempts over {_duration(utcnow() - row.created_at)}: {error}"
            log.warning("outbox message %s: temporary failure (attempt %s): %s", row.id, row.attempts, redact(exc))
            await self._record(row.id, lambda s: mark_outbox_failed(
                s, message_id=row.id, owner=self.owner, error=error, retry_at=retry_at))
            return
        except PermanentFailure as exc:
            reason = str(exc)
            log.warning("outbox message %s: permanent failure: %s", row.id, redact(reason))
            await self._record(row.id, lambda s: mark_outbox_failed(
                s, message_id=row.id, owner=self.owner, error=reason, retry_at=None))
            return
        await self._record(row.id, lambda s: mark_outbox_sent(
            s, message_id=row.id, owner=self.owner, response=result.response, now=utcnow(), raw=raw))

    async def _record(self, row_id: int, write: Callable[[AsyncSession], Awaitable[bool]]) -> None:
        """Write the outcome of one send. Through a database outage it keeps trying for as long
        as the lease lasts: a message the SMTP server has accepted must be recorded as sent, or
        it would go out again once the lease ends."""
        deadline = time.monotonic() + self.lease.total_seconds() * 0.8
        delay = 0.25
        while True:
            try:
                async with self.sessions.begin() as session:
                    await write(session)
                return
            except Exception as exc:
                if not is_database_outage(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("outbox message %s: cannot record the result yet (database unavailable); retrying",
                            row_id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def drain(self) -> int:
        """Run batches until nothing is due (tests and the CLI)."""
        total = 0
        while n := await self.run_once():
            total += n
        return total


def _is_to(recipients: str, wanted: str) -> bool:
    from email.utils import getaddresses

    return any(a.lower() == wanted for _n, a in getaddresses([recipients]))


async def forget_recipient(session: AsyncSession, *, address: str, until: dt.datetime | None = None) -> int:
    """Delete every outbox and local-mailbox message to `address` (erasure of a person), or only
    those stored at or before `until`; returns how many outbox rows went."""
    from service.mail.models import MailboxMessage

    wanted = address.strip().lower()
    stmt = (select(OutboxMessage.id, OutboxMessage.recipient)
            .where(func.lower(OutboxMessage.recipient).contains(wanted, autoescape=True)))
    if until is not None:
        stmt = stmt.where(OutboxMessage.created_at <= until)
    ids = [i for i, rcpt in (await session.execute(stmt)).all() if _is_to(rcpt, wanted)]
    if ids:
        await session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
    boxed = (select(MailboxMessage.id, MailboxMessage.recipients)
             .where(func.lower(MailboxMessage.recipients).contains(wanted, autoescape=True)))
    if until is not None:
        boxed = boxed.where(MailboxMessage.created_at <= until)
    box_ids = [i for i, rcpts in (await session.execute(boxed)).all() if _is_to(rcpts, wanted)]
    if box_ids:
        await session.execute(delete(MailboxMessage).where(MailboxMessage.id.in_(box_ids)))
    return len(ids)


async def forget_inquiry_mail(session: AsyncSession, *, inquiry_ids: Sequence[int]) -> int:
    """Delete the emails of these inquiries: their outbox rows and the local mailbox's copies of
    them (matched by Message-ID, fixed when queued); returns how many outbox rows went."""
    from service.mail.models import MailboxMessage

    ids = list(inquiry_ids)
    if not ids:
        return 0
    message_ids = select(OutboxMessage.message_id).where(OutboxMessage.inquiry_id.in_(ids))
    await session.execute(delete(MailboxMessage).where(MailboxMessage.message_id.in_(message_ids)))
    result = await session.execute(delete(OutboxMessage).where(OutboxMessage.inquiry_id.in_(ids)))
    return rowcount(result)


async def stored_recipients(session: AsyncSession) -> set[str]:
    """Every address (lower-cased) that a stored outbox or local-mailbox message was sent to."""
    from email.utils import getaddresses

    from service.mail.models import MailboxMessage

    found: set[str] = set()
    for column in (OutboxMessage.recipient, MailboxMessage.recipients):
        for (value,) in (await session.execute(select(column).distinct())).all():
            found.update(a.lower() for _n, a in getaddresses([value]) if a)
    return found


async def messages_to(session: AsyncSession, *, address: str) -> list[dict[str, Any]]:
    """What is stored of the transactional emails to `address` (for a person's access request):
    kind, subject, status and times, oldest first. Not the bodies."""
    wanted = address.strip().lower()
    rows = (await session.execute(
        select(OutboxMessage.kind, OutboxMessage.subject, OutboxMessage.status, OutboxMessage.created_at,
               OutboxMessage.sent_at, OutboxMessage.recipient)
        .where(func.lower(OutboxMessage.recipient).contains(wanted, autoescape=True))
        .order_by(OutboxMessage.id)
    )).all()
    return [{"kind": kind, "subject": subject, "status": status, "queued_at": created, "sent_at": sent}
            for kind, subject, status, created, sent, rcpt in rows if _is_to(rcpt, wanted)]


@dataclass(frozen=True)
class OutboxRef:
    """What a bounce needs to know of the outbox message it is about."""

    id: int
    kind: str
    recipient: str
    inquiry_id: int | None


async def find_outbox_message(session: AsyncSession, *, row_id: int | None = None, message_id: str | None = None
                              ) -> OutboxRef | None:
    """The outbox message with this row id, or else the one with this Message-ID; None when neither."""
    if row_id is not None:
        where = OutboxMessage.id == row_id
    elif message_id:
        where = OutboxMessage.message_id == message_id
    else:
        return None
    stmt = (select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.recipient, OutboxMessage.inquiry_id)
            .where(where).order_by(OutboxMessage.id).limit(1))
    row = (await session.execute(stmt)).first()
    return OutboxRef(*row) if row else None


async def find_outbox_messages(session: AsyncSession, *, ids: Collection[int], message_ids: Collection[str]
                               ) -> list[tuple[OutboxRef, str | None]]:
    """The outbox messages with these row ids or these Message-IDs, by id, each with its Message-ID."""
    if not ids and not message_ids:
        return []
    rows = (await (await session.connection()).execute(
        _find_messages(session), {"ids": list(ids), "mids": list(message_ids)})).all()
    return [(OutboxRef(*row[:4]), row[4]) for row in rows]


@once_per_dialect
def _find_messages(postgresql: bool) -> Any:
    return (select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.recipient, OutboxMessage.inquiry_id,
                   OutboxMessage.message_id)
            .where(or_(list_param(postgresql, OutboxMessage.id, "ids"),
                       list_param(postgresql, OutboxMessage.message_id, "mids")))
            .order_by(OutboxMessage.id))
