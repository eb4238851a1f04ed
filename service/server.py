"""The HTTP server of `tidings serve`: uvicorn, with two things added.

- A limit on the request line and headers (MAX_HEADER_BYTES), enforced as the bytes arrive:
  uvicorn's default parser (httptools) has none and would buffer a 20 MB header in full before
  the app sees anything. The protocol below counts the bytes of a request's head and, once they
  pass the limit, answers 431 and closes the connection; at most one socket read beyond the
  limit is ever buffered. Without httptools, uvicorn's h11 parser enforces the same limit itself
  (`h11_max_incomplete_event_size`; it answers 400).
- On PostgreSQL, a database that does not answer at start does not stop the server: it serves
  (503s, /readyz says "unavailable") and checks the schema as soon as the database answers,
  stopping with one clear line if the schema is not current.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from contextlib import suppress
from typing import Any

import uvicorn

from service.db import create_engine, describe_outage, schema_problem, when_reachable
from service.settings import Settings

log = logging.getLogger("tidings.server")

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
    HAS_HTTPTOOLS = False
else:
    HAS_HTTPTOOLS = True


def http_protocol(max_header_bytes: int) -> type[asyncio.Protocol] | str:
    """The HTTP protocol class for uvicorn: httptools with the header limit, or h11 (which takes
    the limit from the config) when httptools is not installed."""
    if not HAS_HTTPTOOLS:  # pragma: no cover
        return "h11"
    return type("HeaderLimitedHttpToolsProtocol", (HeaderLimitedHttpTools,), {"max_header_bytes": max_header_bytes})


if HAS_HTTPTOOLS:

    class HeaderLimitedHttpTools(HttpToolsProtocol):
        """httptools, refusing a request whose line and headers exceed `max_header_bytes`.

        Two checks. While a request's head is incomplete, the bytes received since the previous
        request ended are counted after each read is fed to the parser, so a header that keeps
        coming is refused once past the limit, with at most one read (up to 256 KiB) buffered
        beyond it. When the head is complete, its size is measured (request line and header
        lines) before the app is called, so a head that arrived in one read is refused too, and
        a body that came in the same read as the head is never counted as head."""

        max_header_bytes = 16 * 1024

        # asyncio.Protocol's takes a BaseTransport; uvicorn's (which this extends) narrows it to Transport
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._head_bytes = 0
            self._in_head = True
            self._too_large = False
            super().connection_made(transport)

        def data_received(self, data: bytes) -> None:
            if self._too_large:
                return
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            over = self._too_large or (self._in_head and self._head_bytes > self.max_header_bytes)
            if over and not self.transport.is_closing():
                self._refuse()

        def on_headers_complete(self) -> None:
            self._in_head = False
            head = len(self.url) + 16 + sum(len(name) + len(value) + 4 for name, value in self.headers) + 2
            if head > self.max_header_bytes:
                self._too_large = True  # the app is not called; data_received answers 431
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._too_large:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self._too_large:
                return
            super().on_message_complete()
            self._in_head = True
            self._head_bytes = 0

        def _refuse(self) -> None:
            self._too_large = True
            log.warning("request headers larger than MAX_HEADER_BYTES (%s bytes): answered 431, connection closed",
                        self.max_header_bytes)
            body = b"Request headers too large\n"
            head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
            head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
            head.append(b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
                        % len(body))
            self.transport.write(b"".join(head) + body)
            self.transport.close()


def server_config(app: Any, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    """uvicorn's configuration for `tidings serve` (logging is ours; no proxy headers: the app
    reads X-Forwarded-For itself, from TRUSTED_PROXIES only)."""
    return uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, proxy_headers=False, server_header=False,
        lifespan="on", http=http_protocol(settings.max_header_bytes),
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )


class Server(uvicorn.Server):
    """uvicorn's server, with the schema check left for when the database answers (`check_schema`);
    `failure` holds the line to exit with when that check fails."""

    def __init__(self, config: uvicorn.Config, settings: Settings, *, check_schema: bool = False) -> None:
        super().__init__(config)
        self.settings = settings
        self.check_schema = check_schema
        self.failure: str | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        gate = asyncio.create_task(self._schema_gate()) if self.check_schema else None
        try:
            await super().serve(sockets)
        finally:
            if gate is not None:
                gate.cancel()
                with suppress(asyncio.CancelledError):
                    await gate

    async def _schema_gate(self) -> None:
        engine = create_engine(self.settings.database_url)
        try:
            problem = await when_reachable(lambda: schema_problem(engine), logger=log)
        except Exception as exc:
            problem = f"cannot check the database schema: {describe_outage(exc)}"
        finally:
            await engine.dispose()
        if problem:
            log.error("%s; stopping", problem)
            self.failure = problem
            self.should_exit = True
        else:
            log.info("database schema is current")
