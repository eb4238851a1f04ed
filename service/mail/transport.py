"""Transports: SMTP through aiosmtplib with a pool of reused connections, or the local mailbox
(the embedded default, when SMTP_URL is unset). Both implement the small `Mailer` protocol.

Failures are classified once, here: `TemporaryFailure` (connection refused or dropped, timeouts,
4xx) is retried later by the caller; `PermanentFailure` (5xx) is not, and keeps the server's
answer. `PermanentFailure.recipient_refused` tells a bad address from a rejected message.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from service.db import Sessions
from service.mail.message import HeaderInjectionError, serialise


@dataclass(frozen=True)
class SendResult:
    message_id: str
    response: str


class TemporaryFailure(Exception):
    """Try again later: the server was unreachable, dropped us, or answered 4xx."""


class PermanentFailure(Exception):
    """Do not retry: the server answered 5xx. `recipient_refused` when it refused the address."""

    def __init__(self, message: str, *, recipient_refused: bool = False) -> None:
        super().__init__(message)
        self.recipient_refused = recipient_refused


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> SendResult: ...

    async def close(self) -> None: ...


def envelope(message: EmailMessage) -> tuple[str, list[str]]:
    sender = getaddresses([str(message["From"])])[0][1]
    recipients = [addr for _name, addr in getaddresses([str(v) for v in message.get_all("To", [])])]
    return sender, recipients


@dataclass(frozen=True)
class SmtpConfig:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool | None
    validate_certs: bool
    timeout: float

    @classmethod
    def from_url(cls, url: str, timeout: float = 30.0) -> SmtpConfig:
        """smtp://user:pass@host:587 (STARTTLS when offered; ?starttls=require|never),
        smtps://user:pass@host:465 (implicit TLS); ?verify=false skips certificate checks."""
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        implicit = parts.scheme == "smtps"
        start_tls = {"require": True, "never": False}.get(query.get("starttls", ""), None)
        return cls(
            hostname=parts.hostname or "localhost",
            port=parts.port or (465 if implicit else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=implicit,
            start_tls=False if implicit else start_tls,
            validate_certs=query.get("verify", "true").lower() not in ("0", "false", "no"),
            timeout=timeout,
        )


def _classify(exc: BaseException) -> Exception:
    if isinstance(exc, HeaderInjectionError):
        return PermanentFailure(str(exc))
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        text = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        if codes and all(500 <= c < 600 for c in codes):
            return PermanentFailure(text, recipient_refused=True)
        return TemporaryFailure(text)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"{exc.code} {exc.message}"
        if 500 <= exc.code < 600:
            return PermanentFailure(text, recipient_refused=isinstance(exc, aiosmtplib.SMTPRecipientRefused))
        return TemporaryFailure(text)
    return TemporaryFailure(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


class SmtpTransport:
    """Sends over up to `concurrency` reused SMTP connections; reconnects when one drops."""

    def __init__(self, url: str, *, concurrency: int = 4, timeout: float = 30.0) -> None:
        self.config = SmtpConfig.from_url(url, timeout=timeout)
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP] = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(concurrency)

    def _client(self) -> aiosmtplib.SMTP:
        c = self.config
        tls_context = None if c.validate_certs else _insecure_context()
        return aiosmtplib.SMTP(
            hostname=c.hostname, port=c.port, username=c.username, password=c.password,
            use_tls=c.use_tls, start_tls=c.start_tls, validate_certs=c.validate_certs,
            tls_context=tls_context, timeout=c.timeout,
        )

    async def send(self, message: EmailMessage) -> SendResult:
        async with self._slots:
            client = self._idle.get_nowait() if not self._idle.empty() else self._client()
            try:
                if not client.is_connected:
                    await client.connect()
                if client.last_ehlo_response is None:
                    await client.ehlo()
                sender, recipients = envelope(message)
                eight_bit = client.supports_extension("8bitmime")
                # the bytes checked by `serialise` are the bytes sent (not send_message's own copy)
                _errors, response = await client.sendmail(
                    sender, recipients, serialise(message, seven_bit=not eight_bit),
                    mail_options=["BODY=8BITMIME"] if eight_bit else [],
                )
            except BaseException as exc:
                await _discard(client, exc)
                if isinstance(exc, Exception):
                    raise _classify(exc) from exc
                raise
            self._idle.put_nowait(client)
            return SendResult(message_id=str(message["Message-ID"]), response=response)

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                try:
                    await client.quit()
                except Exception:
                    client.close()


async def _discard(client: aiosmtplib.SMTP, exc: BaseException) -> None:
    """Drop a connection after a failure; a 4xx/5xx on one message leaves the session usable, but
    a fresh connection is the simple, always-correct choice."""
    if client.is_connected:
        try:
            if isinstance(exc, aiosmtplib.SMTPResponseException):
                await asyncio.wait_for(client.quit(), 5)
            else:
                client.close()
        except Exception:
            client.close()


def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class LocalMailboxTransport:
    """Keeps every message in the `mailbox_messages` table (read it at /admin/outbox)."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def send(self, message: EmailMessage) -> SendResult:
        await self.send_many([message])
        return SendResult(message_id=str(message["Message-ID"]), response="250 stored in the local outbox")

    async def send_many(self, messages: Sequence[EmailMessage]) -> None:
        from service.mail.models import MailboxMessage

        async with self.sessions.begin() as session:
            for message in messages:
                sender, recipients = envelope(message)
                session.add(
                    MailboxMessage(
                        sender=sender,
                        recipients=", ".join(recipients),
                        subject=str(message["Subject"]),
                        message_id=str(message["Message-ID"]),
                        raw=serialise(message),
                    )
                )

    async def close(self) -> None:
        return None


def make_mailer(smtp_url: str | None, sessions: Sessions, *, concurrency: int = 4) -> Mailer:
    if smtp_url:
        return SmtpTransport(smtp_url, concurrency=concurrency)
    return LocalMailboxTransport(sessions)
