"""The one SMTP layer: settings from SMTP_URL, the failure classes and their classifier, and a
lean connection that every path (the transactional outbox and campaigns) sends through.

aiosmtplib does the connection set-up (TLS, STARTTLS, EHLO, AUTH) and is kept for that; once the
session is ready its transport is handed to `SmtpConnection`, which sends each message with RFC
2920 PIPELINING when the server offers it (MAIL, RCPT and DATA in one write, then the body: two
round trips instead of four) and without aiosmtplib's per-message regular expressions over the
body (messages are written with CRLF line ends; only dot-stuffing is left, one bytes.replace).
Without PIPELINING it sends the same commands one at a time.

Failures are classified once, here: `TemporaryFailure` (connection refused or dropped, timeouts,
4xx) is retried later by the caller; `PermanentFailure` (5xx) is not, and keeps the server's
answer. `PermanentFailure.recipient_refused` tells a bad address from a rejected message.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from service.mail.headers import HeaderInjectionError
from service.validation import mail_address


class TemporaryFailure(Exception):
    """Try again later: the server was unreachable, dropped us, or answered 4xx."""


class PermanentFailure(Exception):
    """Do not retry: the server answered 5xx. `recipient_refused` when it refused the address."""

    def __init__(self, message: str, *, recipient_refused: bool = False) -> None:
        super().__init__(message)
        self.recipient_refused = recipient_refused


def classify_smtp_error(exc: BaseException) -> TemporaryFailure | PermanentFailure:
    """What a failed send means for the caller: a TemporaryFailure (retry later) or a
    PermanentFailure (do not; `recipient_refused` when the server refused the address)."""
    if isinstance(exc, TemporaryFailure | PermanentFailure):
        return exc
    if isinstance(exc, HeaderInjectionError):
        return PermanentFailure(str(exc))
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        text = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        if codes and all(500 <= c < 600 for c in codes):
            return PermanentFailure(text, recipient_refused=True)
        return TemporaryFailure(text)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return reply_failure(exc.code, exc.message,
                             recipient_refused=isinstance(exc, aiosmtplib.SMTPRecipientRefused))
    return TemporaryFailure(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def reply_failure(code: int, text: str, *, recipient_refused: bool) -> TemporaryFailure | PermanentFailure:
    """The failure an SMTP reply code stands for (5xx permanent, anything else temporary)."""
    if 500 <= code < 600:
        return PermanentFailure(f"{code} {text}", recipient_refused=recipient_refused)
    return TemporaryFailure(f"{code} {text}" if code else f"no answer: {text}")


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
    helo_name: str | None = None  # the EHLO/LHLO name (SMTP_HELO_NAME); None: aiosmtplib's FQDN

    @classmethod
    def from_url(cls, url: str, timeout: float = 30.0, *, helo_name: str | None = None) -> SmtpConfig:
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
            helo_name=helo_name,
        )

    def client(self) -> aiosmtplib.SMTP:
        """An unconnected aiosmtplib client for these settings (it does TLS, EHLO and AUTH)."""
        return aiosmtplib.SMTP(
            hostname=self.hostname, port=self.port, username=self.username, password=self.password,
            use_tls=self.use_tls, start_tls=self.start_tls, validate_certs=self.validate_certs,
            tls_context=None if self.validate_certs else _insecure_context(), timeout=self.timeout,
            local_hostname=self.helo_name,
        )


def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def connect(config: SmtpConfig) -> SmtpConnection:
    """A session ready for MAIL FROM; failures raise TemporaryFailure / PermanentFailure."""
    try:
        return await SmtpConnection.open(config.client(), reply_timeout=config.timeout)
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise classify_smtp_error(exc) from exc


class SmtpConnection(asyncio.Protocol):
    """One SMTP session, ready for MAIL FROM; failures raise Temporary/PermanentFailure."""

    def __init__(self, transport: asyncio.Transport, *, pipelining: bool, eight_bit: bool, timeout: float) -> None:
        self.transport = transport
        self.pipelining = pipelining
        self.eight_bit = eight_bit  # the server takes BODY=8BITMIME
        self.timeout = timeout
        self._buffer = bytearray()
        self._responses: deque[tuple[int, str]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: Exception | None = None

    @classmethod
    async def open(cls, client: aiosmtplib.SMTP, *, reply_timeout: float) -> SmtpConnection:
        """Connect `client` (TLS/AUTH as configured) and take over its transport."""
        await client.connect()
        if client.last_ehlo_response is None:
            await client.ehlo()
        if client.transport is None:
            raise TemporaryFailure("SMTP connection closed during set-up")
        # aiosmtplib types it BaseTransport; it is the stream transport of its TCP connection
        transport = cast(asyncio.Transport, client.transport)
        pipe = cls(transport, pipelining=client.supports_extension("pipelining"),
                   eight_bit=client.supports_extension("8bitmime"), timeout=reply_timeout)
        transport.set_protocol(pipe)
        return pipe

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return
            # a multi-line reply ("250-...") is complete at its last line ("250 ...")
            start = 0
            lines = []
            while end >= 0:
                line = bytes(self._buffer[start:end]).rstrip(b"\r")
                lines.append(line)
                start = end + 1
                if line[3:4] != b"-":
                    break
                end = self._buffer.find(b"\n", start)
            else:
                return
            del self._buffer[:start]
            try:
                code = int(lines[-1][:3])
            except ValueError:
                code = 0
            text = "\n".join(raw[4:].decode("utf-8", "replace").strip() for raw in lines)
            self._responses.append((code, text))
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or ConnectionResetError("the SMTP server closed the connection")
        self._wake()

    def eof_received(self) -> bool:
        self._lost = ConnectionResetError("the SMTP server closed the connection")
        self._wake()
        return False

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- sending ------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self._lost is None and not self.transport.is_closing()

    async def _reply(self) -> tuple[int, str]:
        if not self._responses:
            await self._wait()
        return self._responses.popleft()

    async def _wait(self) -> None:
        """Until a reply is in; a plain future with one timer (not `asyncio.wait_for`, which
        costs a task's worth of bookkeeping on every reply of every message)."""
        loop = asyncio.get_running_loop()
        while not self._responses:
            if self._lost is not None:
                raise TemporaryFailure(f"connection lost: {self._lost}")
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(self.timeout, _time_out, waiter)
            try:
                await waiter
            finally:
                timer.cancel()

    def _write(self, data: bytes) -> None:
        if not self.usable:
            raise TemporaryFailure(f"connection lost: {self._lost}")
        self.transport.write(data)

    async def _envelope(self, sender: str, recipients: Sequence[str], *, body_8bit: bool) -> None:
        """MAIL, RCPT (each recipient) and DATA, pipelined when offered; raises the failure of
        the first step the server refused (the caller then drops this connection)."""
        sender = mail_address(sender) or sender
        recipients = [mail_address(r) or r for r in recipients]
        for value in (sender, *recipients):
            if any(c in value for c in "\r\n<>") or not value.isascii():
                raise PermanentFailure(f"cannot send to or from {value!r} over this connection")
        if not recipients:
            raise PermanentFailure("no recipient")
        body = " BODY=8BITMIME" if body_8bit and self.eight_bit else ""
        commands = [(f"MAIL FROM:<{sender}>{body}\r\n".encode(), "MAIL")]
        commands += [(f"RCPT TO:<{r}>\r\n".encode(), "RCPT") for r in recipients]
        commands.append((b"DATA\r\n", "DATA"))
        if self.pipelining:
            self._write(b"".join(line for line, _step in commands))
            replies = [await self._reply() for _ in commands]
        else:
            replies = []
            for line, _step in commands:
                self._write(line)
                replies.append(await self._reply())
                if not _accepted(replies[-1][0], _step):
                    break
        for (code, text), (_line, step) in zip(replies, commands, strict=False):
            if not _accepted(code, step):
                raise reply_failure(code, text, recipient_refused=step == "RCPT")

    async def send(self, sender: str, recipients: str | Sequence[str], raw: bytes, *, body_8bit: bool = False) -> str:
        """Deliver one message (CRLF line ends); the server's final answer. Every recipient must
        be accepted: a refused one fails the whole message."""
        await self._envelope(sender, [recipients] if isinstance(recipients, str) else recipients,
                             body_8bit=body_8bit)
        # Written as it is unless it needs dot-stuffing (no copy of a 15 kB message per send).
        body = raw.replace(b"\r\n.", b"\r\n..") if b"\r\n." in raw else raw
        if body.startswith(b"."):
            body = b"." + body
        if not self.usable:
            raise TemporaryFailure(f"connection lost: {self._lost}")
        self.transport.writelines((body, b".\r\n" if body.endswith(b"\r\n") else b"\r\n.\r\n"))
        code, text = await self._reply()
        if code != 250:
            raise reply_failure(code, text, recipient_refused=False)
        return text

    async def quit(self) -> None:
        try:
            if self.usable:
                self._write(b"QUIT\r\n")
                await asyncio.wait_for(self._reply(), 5)
        except Exception:  # noqa: S110 - closing anyway
            pass
        finally:
            self.close()

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TemporaryFailure("timed out waiting for the SMTP server"))


def _accepted(code: int, step: str) -> bool:
    return code == 354 if step == "DATA" else code in (250, 251)
