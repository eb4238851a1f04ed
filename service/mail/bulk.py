"""Bulk transports for campaigns: SEND_CONCURRENCY reused connections of the one SMTP layer
(`service.mail.smtp`), each sending its share of a stream back to back, or the local mailbox
(embedded default) that stores a whole chunk in one transaction. Failures are those of
`service.mail.smtp`: `TemporaryFailure` (4xx, dropped or refused connection) and
`PermanentFailure` (5xx).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from service.db import Sessions
from service.mail.message import parse_raw
from service.mail.smtp import SmtpConfig, SmtpConnection, TemporaryFailure, classify_smtp_error, connect
from service.mail.transport import LocalMailboxTransport, Mailer, SmtpTransport

Take = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Outgoing:
    sender: str
    recipient: str
    subject: str
    message_id: str
    raw: bytes


Outcome = str | Exception  # the server's answer, or TemporaryFailure / PermanentFailure
NextItem = Callable[[], tuple[Any, Outgoing] | None]  # (the caller's context, the message) or None: done
Done = Callable[[Any, Outgoing, Outcome], None]


class BulkTransport(Protocol):
    async def send_stream(self, next_item: NextItem, done: Done, take: Take) -> None:
        """Send messages pulled from `next_item` until it returns None; report each to `done`."""

    async def close(self) -> None: ...


async def send_many(transport: BulkTransport, items: Sequence[Outgoing], take: Take) -> list[Outcome]:
    """Send a list of messages; their outcomes in the same order."""
    queue = iter(enumerate(items))
    results: list[Outcome] = [TemporaryFailure("not attempted")] * len(items)

    def done(index: int, _item: Outgoing, outcome: Outcome) -> None:
        results[index] = outcome

    await transport.send_stream(lambda: next(queue, None), done, take)
    return results


async def _drain(next_item: NextItem, done: Done, take: Take, send: Callable[[Outgoing], Awaitable[str]]) -> None:
    """Pull, send and report messages one at a time until `next_item` says the stream is done;
    every failure is reported classified (`classify_smtp_error`)."""
    while True:
        await take()
        pulled = next_item()
        if pulled is None:
            return
        context, item = pulled
        outcome: Outcome
        try:
            outcome = await send(item)
        except Exception as exc:
            outcome = classify_smtp_error(exc)
        done(context, item, outcome)


class SmtpBulkTransport:
    """Up to `concurrency` connections, kept open across chunks and campaigns."""

    def __init__(self, config: SmtpConfig, *, concurrency: int) -> None:
        self.config = config
        self.concurrency = max(1, concurrency)
        self._idle: list[SmtpConnection] = []

    @classmethod
    def from_url(cls, url: str, *, concurrency: int, timeout: float = 30.0) -> SmtpBulkTransport:
        return cls(SmtpConfig.from_url(url, timeout=timeout), concurrency=concurrency)

    async def send_stream(self, next_item: NextItem, done: Done, take: Take) -> None:
        async def lane() -> None:
            connection = self._idle.pop() if self._idle else None

            async def send(item: Outgoing) -> str:
                nonlocal connection
                try:
                    if connection is None or not connection.usable:
                        connection = await connect(self.config)
                    return await connection.send(item.sender, item.recipient, item.raw)
                except BaseException:
                    if connection is not None:
                        connection.close()  # after any failure, a fresh connection is the safe choice
                        connection = None
                    raise

            try:
                await _drain(next_item, done, take, send)
            finally:
                if connection is not None and connection.usable:
                    self._idle.append(connection)

        await asyncio.gather(*(lane() for _ in range(self.concurrency)))

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().quit()


class LocalBulkTransport:
    """The embedded default: a chunk goes into `mailbox_messages` in one transaction."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def send_stream(self, next_item: NextItem, done: Done, take: Take) -> None:
        from service.mail.models import MailboxMessage

        while True:
            group: list[tuple[Any, Outgoing]] = []
            while len(group) < 200:
                await take()
                pulled = next_item()
                if pulled is None:
                    break
                group.append(pulled)
            if not group:
                return
            async with self.sessions.begin() as session:
                session.add_all(
                    MailboxMessage(sender=i.sender, recipients=i.recipient, subject=i.subject,
                                   message_id=i.message_id, raw=i.raw) for _c, i in group
                )
            for context, item in group:
                done(context, item, "250 stored in the local outbox")

    async def close(self) -> None:
        return None


class MailerBulkTransport:
    """Any other `Mailer`, one message at a time (a fallback; parses each raw message)."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer

    async def send_stream(self, next_item: NextItem, done: Done, take: Take) -> None:
        async def send(item: Outgoing) -> str:
            return (await self.mailer.send(parse_raw(item.raw), envelope_from=item.sender)).response

        await _drain(next_item, done, take, send)

    async def close(self) -> None:
        return None


def bulk_transport_for(mailer: Mailer, *, concurrency: int) -> BulkTransport:
    """The bulk path of the app's mailer: its own SMTP pool (so that a campaign never delays
    transactional mail), or the local mailbox."""
    if isinstance(mailer, SmtpTransport):
        return SmtpBulkTransport(mailer.config, concurrency=concurrency)
    if isinstance(mailer, LocalMailboxTransport):
        return LocalBulkTransport(mailer.sessions)
    return MailerBulkTransport(mailer)
