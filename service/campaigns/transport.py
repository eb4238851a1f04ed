"""Bulk transports for campaigns: a pool of SEND_CONCURRENCY reused SMTP connections, each
sending its share of a chunk back to back, or the local mailbox (embedded default) that stores
a whole chunk in one transaction. Failures are classified like the transactional transport's:
`TemporaryFailure` (4xx, dropped or refused connection) and `PermanentFailure` (5xx).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiosmtplib

from service.campaigns.smtp_pipe import PipeConnection
from service.db import Sessions
from service.mail.message import parse_raw
from service.mail.transport import (
    LocalMailboxTransport,
    Mailer,
    PermanentFailure,
    SmtpConfig,
    SmtpTransport,
    TemporaryFailure,
    _classify,
    _insecure_context,
)

Take = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Outgoing:
    sender: str
    recipient: str
    subject: str
    message_id: str
    raw: bytes


Outcome = str | Exception  # the server's answer, or TemporaryFailure / PermanentFailure


class BulkTransport(Protocol):
    async def send_many(self, items: Sequence[Outgoing], take: Take) -> list[Outcome]: ...

    async def close(self) -> None: ...


class SmtpBulkTransport:
    """Up to `concurrency` connections, kept open across chunks and campaigns."""

    def __init__(self, config: SmtpConfig, *, concurrency: int) -> None:
        self.config = config
        self.concurrency = max(1, concurrency)
        self._idle: list[PipeConnection] = []

    @classmethod
    def from_url(cls, url: str, *, concurrency: int, timeout: float = 30.0) -> SmtpBulkTransport:
        return cls(SmtpConfig.from_url(url, timeout=timeout), concurrency=concurrency)

    def _client(self) -> aiosmtplib.SMTP:
        c = self.config
        return aiosmtplib.SMTP(
            hostname=c.hostname, port=c.port, username=c.username, password=c.password, use_tls=c.use_tls,
            start_tls=c.start_tls, validate_certs=c.validate_certs,
            tls_context=None if c.validate_certs else _insecure_context(), timeout=c.timeout,
        )

    async def send_many(self, items: Sequence[Outgoing], take: Take) -> list[Outcome]:
        results: list[Outcome] = [TemporaryFailure("not attempted")] * len(items)
        queue = iter(range(len(items)))

        async def lane() -> None:
            pipe = self._idle.pop() if self._idle else None
            try:
                for i in queue:
                    await take()
                    item = items[i]
                    try:
                        if pipe is None or not pipe.usable:
                            pipe = await PipeConnection.open(self._client(), reply_timeout=self.config.timeout)
                        results[i] = await pipe.send(item.sender, item.recipient, item.raw)
                    except (TemporaryFailure, PermanentFailure) as exc:
                        results[i] = exc
                    except (aiosmtplib.SMTPException, OSError) as exc:
                        results[i] = _classify(exc)
                    else:
                        continue
                    if pipe is not None:  # after any failure, a fresh connection is the safe choice
                        pipe.close()
                        pipe = None
            finally:
                if pipe is not None and pipe.usable:
                    self._idle.append(pipe)

        await asyncio.gather(*(lane() for _ in range(min(self.concurrency, len(items)))))
        return results

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().quit()


class LocalBulkTransport:
    """The embedded default: a chunk goes into `mailbox_messages` in one transaction."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def send_many(self, items: Sequence[Outgoing], take: Take) -> list[Outcome]:
        from service.mail.models import MailboxMessage

        for _ in items:
            await take()
        async with self.sessions.begin() as session:
            session.add_all(
                MailboxMessage(sender=i.sender, recipients=i.recipient, subject=i.subject, message_id=i.message_id,
                               raw=i.raw) for i in items
            )
        return ["250 stored in the local outbox"] * len(items)

    async def close(self) -> None:
        return None


class MailerBulkTransport:
    """Any other `Mailer`, one message at a time (a fallback; parses each raw message)."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer

    async def send_many(self, items: Sequence[Outgoing], take: Take) -> list[Outcome]:
        results: list[Outcome] = []
        for item in items:
            await take()
            try:
                results.append((await self.mailer.send(parse_raw(item.raw))).response)
            except Exception as exc:
                results.append(exc)
        return results

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
