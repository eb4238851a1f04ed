"""Transactional transports: SMTP over a pool of reused connections of the one SMTP layer
(`service.mail.smtp`, which also classifies failures), or the local mailbox (the embedded
default, when SMTP_URL is unset). Both implement the small `Mailer` protocol; the bulk path of
campaigns is `service.mail.bulk`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Protocol

from service.db import Sessions
from service.mail.dkim import DkimSigner, signer_from_settings
from service.mail.message import serialise
from service.mail.smtp import (
    PermanentFailure,
    SmtpConfig,
    SmtpConnection,
    TemporaryFailure,
    classify_smtp_error,
    connect,
)
from service.settings import Settings

__all__ = ["LocalMailboxTransport", "Mailer", "PermanentFailure", "SendResult", "SmtpConfig", "SmtpTransport",
           "TemporaryFailure", "envelope", "mailer_for", "make_mailer"]


@dataclass(frozen=True)
class SendResult:
    message_id: str
    response: str


class Mailer(Protocol):
    async def send(self, message: EmailMessage, *, envelope_from: str | None = None) -> SendResult:
        """Send `message`; MAIL FROM is `envelope_from` (a VERP return path) or the From address."""

    async def close(self) -> None: ...


def envelope(message: EmailMessage, envelope_from: str | None = None) -> tuple[str, list[str]]:
    """(MAIL FROM, RCPT TO addresses): `envelope_from` when given, else the From address."""
    sender = envelope_from or getaddresses([str(message["From"])])[0][1]
    recipients = [addr for _name, addr in getaddresses([str(v) for v in message.get_all("To", [])])]
    return sender, recipients


class SmtpTransport:
    """Sends over up to `concurrency` reused SMTP connections (`service.mail.smtp`); a
    connection that failed is dropped and a fresh one opened for the next message."""

    def __init__(self, url: str, *, concurrency: int = 4, timeout: float = 30.0, signer: DkimSigner | None = None,
                 helo_name: str | None = None) -> None:
        self.config = SmtpConfig.from_url(url, timeout=timeout, helo_name=helo_name)
        self.signer = signer
        self._idle: list[SmtpConnection] = []
        self._slots = asyncio.Semaphore(concurrency)

    async def send(self, message: EmailMessage, *, envelope_from: str | None = None) -> SendResult:
        async with self._slots:
            connection = self._idle.pop() if self._idle else None
            try:
                if connection is None or not connection.usable:
                    connection = await connect(self.config)
                sender, recipients = envelope(message, envelope_from)
                # the bytes checked by `serialise` are the bytes sent
                raw = _signed(serialise(message, seven_bit=not connection.eight_bit), self.signer)
                response = await connection.send(sender, recipients, raw, body_8bit=connection.eight_bit)
            except BaseException as exc:
                if connection is not None:
                    connection.close()  # a fresh connection after any failure: the simple, safe choice
                failure = classify_smtp_error(exc) if isinstance(exc, Exception) else exc
                if failure is exc:
                    raise
                raise failure from exc
            self._idle.append(connection)
            return SendResult(message_id=str(message["Message-ID"]), response=response)

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().quit()


class LocalMailboxTransport:
    """Keeps every message in the `mailbox_messages` table (read it at /admin/outbox)."""

    def __init__(self, sessions: Sessions, *, signer: DkimSigner | None = None) -> None:
        self.sessions = sessions
        self.signer = signer

    async def send(self, message: EmailMessage, *, envelope_from: str | None = None) -> SendResult:
        await self.send_many([message], envelope_from=envelope_from)
        return SendResult(message_id=str(message["Message-ID"]), response="250 stored in the local outbox")

    async def send_many(self, messages: Sequence[EmailMessage], *, envelope_from: str | None = None) -> None:
        from service.mail.models import MailboxMessage

        async with self.sessions.begin() as session:
            for message in messages:
                sender, recipients = envelope(message, envelope_from)
                session.add(
                    MailboxMessage(
                        sender=sender,
                        recipients=", ".join(recipients),
                        subject=str(message["Subject"]),
                        message_id=str(message["Message-ID"]),
                        raw=_signed(serialise(message), self.signer),
                    )
                )

    async def close(self) -> None:
        return None


def _signed(raw: bytes, signer: DkimSigner | None) -> bytes:
    """The bytes as they go out: DKIM-signed when a key is configured (the local mailbox keeps
    them signed too, so what it shows is what an SMTP server would have got)."""
    return signer.sign(raw) if signer is not None else raw


def make_mailer(smtp_url: str | None, sessions: Sessions, *, concurrency: int = 4, signer: DkimSigner | None = None,
                helo_name: str | None = None) -> Mailer:
    if smtp_url:
        return SmtpTransport(smtp_url, concurrency=concurrency, signer=signer, helo_name=helo_name)
    return LocalMailboxTransport(sessions, signer=signer)


def mailer_for(settings: Settings, sessions: Sessions, *, concurrency: int | None = None) -> Mailer:
    """The mailer of these settings: SMTP_URL (with SMTP_HELO_NAME) or the local mailbox, DKIM
    signing when configured. Every path that sends mail gets its mailer here."""
    return make_mailer(settings.smtp_url, sessions,
                       concurrency=concurrency if concurrency is not None else settings.send_concurrency,
                       signer=signer_from_settings(settings), helo_name=settings.helo_name)
