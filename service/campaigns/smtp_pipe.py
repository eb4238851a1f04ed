"""A lean SMTP sender for campaigns on top of a connection that aiosmtplib opened.

aiosmtplib does the connection set-up (TLS, STARTTLS, EHLO, AUTH) and is kept for that; once the
session is ready its transport is handed to `PipeConnection`, which sends each message with RFC
2920 PIPELINING when the server offers it (MAIL, RCPT and DATA in one write, then the body:
two round trips instead of four) and without aiosmtplib's per-message regular expressions over
the body (campaign messages are built with CRLF line ends; only dot-stuffing is left, one
bytes.replace). Without PIPELINING it sends the same commands one at a time.
"""

from __future__ import annotations

import asyncio
from collections import deque

import aiosmtplib

from service.mail.transport import PermanentFailure, TemporaryFailure


class PipeConnection(asyncio.Protocol):
    """One SMTP session, ready for MAIL FROM; failures raise Temporary/PermanentFailure."""

    def __init__(self, transport: asyncio.Transport, *, pipelining: bool, timeout: float) -> None:
        self.transport = transport
        self.pipelining = pipelining
        self.timeout = timeout
        self._buffer = bytearray()
        self._responses: deque[tuple[int, str]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: Exception | None = None

    @classmethod
    async def open(cls, client: aiosmtplib.SMTP, *, reply_timeout: float) -> PipeConnection:
        """Connect `client` (TLS/AUTH as configured) and take over its transport."""
        await client.connect()
        if client.last_ehlo_response is None:
            await client.ehlo()
        transport = client.transport
        if transport is None:
            raise TemporaryFailure("SMTP connection closed during set-up")
        pipe = cls(transport, pipelining=client.supports_extension("pipelining"), timeout=reply_timeout)  # type: ignore[arg-type]
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
        while not self._responses:
            if self._lost is not None:
                raise TemporaryFailure(f"connection lost: {self._lost}")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, self.timeout)
            except TimeoutError:
                raise TemporaryFailure("timed out waiting for the SMTP server") from None
        return self._responses.popleft()

    def _write(self, data: bytes) -> None:
        if not self.usable:
            raise TemporaryFailure(f"connection lost: {self._lost}")
        self.transport.write(data)

    async def send(self, sender: str, recipient: str, raw: bytes) -> str:
        """Deliver one message (CRLF line ends) to one recipient; the server's final answer."""
        for value in (sender, recipient):
            if any(c in value for c in "\r\n<>") or not value.isascii():
                raise PermanentFailure(f"cannot send to or from {value!r} over this connection")
        commands = [f"MAIL FROM:<{sender}>\r\n".encode(), f"RCPT TO:<{recipient}>\r\n".encode(), b"DATA\r\n"]
        if self.pipelining:
            self._write(b"".join(commands))
            mail, rcpt, data = await self._reply(), await self._reply(), await self._reply()
        else:
            self._write(commands[0])
            mail = await self._reply()
            rcpt = data = (0, "")
            if mail[0] == 250:
                self._write(commands[1])
                rcpt = await self._reply()
                if rcpt[0] in (250, 251):
                    self._write(commands[2])
                    data = await self._reply()
        for (code, text), step in ((mail, "MAIL"), (rcpt, "RCPT"), (data, "DATA")):
            if step == "DATA" and code == 354:
                break
            if step != "DATA" and code in (250, 251):
                continue
            raise _failure(code, text, recipient_refused=step == "RCPT")
        body = raw.replace(b"\r\n.", b"\r\n..")
        if body.startswith(b"."):
            body = b"." + body
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self._write(body + b".\r\n")
        code, text = await self._reply()
        if code != 250:
            raise _failure(code, text, recipient_refused=False)
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


def _failure(code: int, text: str, *, recipient_refused: bool) -> Exception:
    if 500 <= code < 600:
        return PermanentFailure(f"{code} {text}", recipient_refused=recipient_refused)
    return TemporaryFailure(f"{code} {text}" if code else f"no answer: {text}")
