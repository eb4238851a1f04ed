"""A real SMTP server for tests and benchmarks: aiosmtpd on an ephemeral loopback port, with
switches to answer 4xx/5xx or drop the connection, so failure paths are exercised for real."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer


@dataclass
class Received:
    sender: str
    recipients: list[str]
    raw: bytes
    message: EmailMessage
    helo: str = ""  # the name the client gave in EHLO/HELO


@dataclass
class Behaviour:
    """What the server does. Counters decrement per message; `drop_every`/`fail_every` act on
    every Nth message (deterministic fault injection)."""

    data_failures: list[str] = field(default_factory=list)  # e.g. ["451 4.3.0 try later"], used in order
    refuse_recipients: dict[str, str] = field(default_factory=dict)  # address -> "550 5.1.1 ..."
    drop_connections: int = 0  # drop this many DATA commands without answering
    fail_every: int = 0  # answer 421 on every Nth DATA
    drop_every: int = 0  # drop the connection on every Nth DATA
    delay: float = 0.0


class RecordingHandler:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.behaviour = Behaviour()
        self.data_count = 0
        self.lock = threading.Lock()
        self.on_message: Callable[[Received], None] | None = None

    def reset(self) -> None:
        with self.lock:
            self.received = []
            self.behaviour = Behaviour()
            self.data_count = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        answer = self.behaviour.refuse_recipients.get(address.lower())
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        b = self.behaviour
        with self.lock:
            self.data_count += 1
            n = self.data_count
            drop = False
            failure = None
            if b.drop_connections > 0:
                b.drop_connections -= 1
                drop = True
            elif b.drop_every and n % b.drop_every == 0:
                drop = True
            elif b.data_failures:
                failure = b.data_failures.pop(0)
            elif b.fail_every and n % b.fail_every == 0:
                failure = "421 4.3.2 service not available, try again"
        if b.delay:
            await asyncio.sleep(b.delay)
        if drop:
            server.transport.close()
            return "421 closing"
        if failure:
            return failure
        raw = envelope.original_content or envelope.content
        msg = message_from_bytes(raw, policy=policy.default)
        rec = Received(envelope.mail_from, list(envelope.rcpt_tos), raw, msg,  # type: ignore[arg-type]
                       helo=str(session.host_name or ""))
        with self.lock:
            self.received.append(rec)
        return f"250 2.0.0 queued as {n}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    """Start/stop an aiosmtpd server; `stop()` then `start()` simulates an outage on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.handler = RecordingHandler()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def last_to(self, address: str) -> EmailMessage:
        """The newest message sent to `address`. Mail queued together goes out concurrently, so
        the order of `received` is not the order it was queued in: pick by recipient."""
        for rec in reversed(self.received):
            if address in rec.recipients:
                return rec.message
        raise AssertionError(f"nothing was sent to {address}; sent to: {[r.recipients for r in self.received]}")

    def start(self) -> None:
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, decode_data=False,
            data_size_limit=50 * 1024 * 1024, timeout=30,
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


_ = SMTPServer  # re-exported for tests that subclass it
