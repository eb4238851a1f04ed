"""A small HTTP/1.1 client for webhook deliveries that connects only to addresses the guard
checked: the TCP connection goes to the IP address itself, while the Host header, TLS SNI and
the certificate check use the endpoint's name. Connections are kept alive and reused, per
(scheme, name, port, address), so a busy endpoint is not paying a handshake per event.

It posts one body and reads the answer (status and the first 500 characters); it follows no
redirect. A general-purpose client (httpx) resolves the name itself when it connects, which
is exactly the second resolution DNS rebinding needs, and costs more per request than this."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

from service.validation import small_int
from service.webhooks.guard import Target

MAX_BODY = 64 * 1024  # answers longer than this are cut and their connection closed
KEEP_IDLE = 30.0  # seconds an idle connection is kept for reuse
USER_AGENT = "Tidings-Webhooks/1"


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.x as we read it."""


class _Closed(ConnectionError):
    """The server closed a connection before it sent any byte of an answer."""


@dataclass
class Answer:
    status: int | None  # None: no HTTP answer (see error)
    body: str = ""
    error: str | None = None
    elapsed_ms: int = 0
    location: str = ""  # of a redirect, which is not followed


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str) -> None:
        self.reader, self.writer, self.address = reader, writer, address
        self.idle_since = time.monotonic()

    def usable(self) -> bool:
        return (not self.writer.is_closing() and not self.reader.at_eof()
                and time.monotonic() - self.idle_since < KEEP_IDLE)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


PoolKey = tuple[str, str, int]


class WebhookClient:
    """Posts deliveries; one per worker, shared by its concurrent deliveries."""

    def __init__(self, *, timeout: float, ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._idle: dict[PoolKey, list[_Conn]] = {}

    async def post(self, target: Target, addresses: list[str], headers: Mapping[str, str], body: bytes) -> Answer:
        """POST `body` to `target` over a connection to one of `addresses` (already checked)."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                answer = await self._exchange(target, addresses, headers, body)
        except TimeoutError:
            answer = Answer(None, error=f"no answer within {self.timeout:g} s")
        except ssl.SSLError as exc:
            answer = Answer(None, error=f"TLS: {exc.reason or exc}")
        except (OSError, EOFError, ProtocolError, ValueError) as exc:
            answer = Answer(None, error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        answer.elapsed_ms = int((time.perf_counter() - started) * 1000)
        return answer

    async def _exchange(self, target: Target, addresses: list[str], headers: Mapping[str, str],
                        body: bytes) -> Answer:
        request = _request(target, headers, body)
        conn = self._take(target, addresses)
        if conn is not None:
            try:
                return await self._send(target, conn, request)
            except _Closed:
                pass  # the server had closed the kept connection: once more on a new one
        return await self._send(target, await self._open(target, addresses), request)

    async def _send(self, target: Target, conn: _Conn, request: bytes) -> Answer:
        try:
            conn.writer.write(request)
            await conn.writer.drain()
            status, reason, fields, text, reusable = await _read_answer(conn.reader)
        except BaseException:
            conn.close()
            raise
        if reusable:
            conn.idle_since = time.monotonic()
            self._idle.setdefault((target.scheme, target.host, target.port), []).append(conn)
        else:
            conn.close()
        return Answer(status, body=text, location=fields.get("location", "")[:500],
                      error=None if 200 <= status < 300 else f"HTTP {status} {reason}".strip())

    def _take(self, target: Target, addresses: list[str]) -> _Conn | None:
        idle = self._idle.get((target.scheme, target.host, target.port))
        while idle:
            conn = idle.pop()
            if conn.address in addresses and conn.usable():
                return conn
            conn.close()
        return None

    async def _open(self, target: Target, addresses: list[str]) -> _Conn:
        tls = self.ssl_context if target.scheme == "https" else None
        error: OSError | None = None
        for address in addresses:  # as a browser does: the next address when one does not connect
            try:
                reader, writer = await asyncio.open_connection(
                    address, target.port, ssl=tls, server_hostname=target.host if tls else None,
                    limit=MAX_BODY)
            except ssl.SSLError:
                raise
            except OSError as exc:
                error = exc
                continue
            return _Conn(reader, writer, address)
        raise error or ConnectionError("no address to connect to")

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()


def _request(target: Target, headers: Mapping[str, str], body: bytes) -> bytes:
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {target.host_header}", f"User-Agent: {USER_AGENT}",
             "Content-Type: application/json", f"Content-Length: {len(body)}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str], str, bool]:
    """(status, reason, headers, the body's first 500 characters, whether the connection can be
    used again). 1xx interim answers are skipped."""
    first = True
    while True:
        line = await reader.readline()
        if not line:
            if first:
                raise _Closed("the server closed the connection without an answer")
            raise ProtocolError("the connection closed in the answer's status line")
        first = False
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        code = small_int(parts[1], digits=3) if len(parts) >= 2 else None
        if code is None or not parts[0].startswith("HTTP/1."):
            raise ProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
        status, reason = code, parts[2] if len(parts) > 2 else ""
        fields = await _read_fields(reader)
        if not 100 <= status < 200:
            break
    keep = parts[0] == "HTTP/1.1" and "close" not in fields.get("connection", "").lower()
    if status in (204, 304):
        return status, reason, fields, "", keep
    if "chunked" in fields.get("transfer-encoding", "").lower():
        data, complete = await _read_chunked(reader)
        return status, reason, fields, _excerpt(data), keep and complete
    if "content-length" in fields:
        try:
            length = int(fields["content-length"])
        except ValueError:
            raise ProtocolError("a Content-Length that is not a number") from None
        data = await reader.readexactly(min(length, MAX_BODY))
        return status, reason, fields, _excerpt(data), keep and length <= MAX_BODY
    data = await reader.read(MAX_BODY)  # until the server closes
    return status, reason, fields, _excerpt(data), False


async def _read_fields(reader: asyncio.StreamReader) -> dict[str, str]:
    fields: dict[str, str] = {}
    for _ in range(200):
        line = await reader.readline()
        if line in (b"\r\n", b"\n"):
            return fields
        if not line:
            raise ProtocolError("the connection closed in the answer's headers")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise ProtocolError(f"a header line without a colon: {line[:80]!r}")
        key = name.strip().lower()
        fields[key] = f"{fields[key]}, {value.strip()}" if key in fields else value.strip()
    raise ProtocolError("more than 200 header lines")


async def _read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """The body (up to MAX_BODY) and whether it was read to its end."""
    data = b""
    while True:
        size_line = await reader.readline()
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError("a chunk size that is not hexadecimal") from None
        if size == 0:
            await _read_fields(reader)  # trailers, up to the blank line
            return data, True
        if len(data) + size > MAX_BODY:
            data += await reader.read(MAX_BODY - len(data))
            return data, False
        data += await reader.readexactly(size)
        await reader.readexactly(2)


def _excerpt(data: bytes) -> str:
    return data[:2000].decode("utf-8", "replace")[:500]
