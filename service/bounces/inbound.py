"""`tidings inbound`: the LMTP (or SMTP) server an MTA delivers the bounce domain to.

It accepts at RCPT only our return-path addresses whose token verifies (550 otherwise), so
nothing but replies to mail we sent gets in; each message is then processed once per accepted
recipient, with that recipient's token (`service.bounces.intake`).

Group commit: what arrives while a transaction is busy (other connections' messages, other
recipients of a message) waits for it, then goes in the next one together, up to
GROUP_MAX reports, recorded by `policy.record_many` exactly as one by one in arrival order;
each recipient gets its reply only after the transaction that holds its report committed. A
group that fails is retried report by report, so one bad report fails only itself (451).
Before it starts a transaction with fewer reports than connections are open, the writer waits
up to GROUP_WAIT for the others (as PostgreSQL's commit_delay waits for sibling commits): the
replies of one commit release every connection at once, and their next reports arrive within a
round trip. Without the wait, N connections settle into two half groups that take turns, and
the fixed cost of a transaction (ten statements, whatever the count) is paid twice as often.

The message is parsed once, as it arrives (not once per recipient, nor inside the transaction,
which then holds only the database work).

RFC 2033 wants one reply per accepted recipient after the message in LMTP; aiosmtpd's LMTP
class sends one. `PerRecipientLMTP` adds them: the handler's DATA hook returns `Replies`, one
status per recipient in RCPT order, and `push` writes each. It also offers PIPELINING (RFC 2920),
which RFC 2033 requires of an LMTP server and which aiosmtpd already handles (it reads commands
in order, whenever they arrive): Postfix then sends MAIL, RCPT and DATA in one go, a round trip
per message instead of three. Replies to pipelined commands are sent together (RFC 2920
section 3.1 lets a server hold them while more commands wait in its input): one write for MAIL,
RCPT and DATA's 354 instead of three. Plain envelope addresses (`<>`, `<local@domain>`) are read
without the email package's address parser, which aiosmtpd calls for every MAIL and RCPT and
which cost more than the rest of the command. Over SMTP (`--smtp`), which has one
reply per message, a temporary failure of any recipient asks the MTA to send it again (recording
is idempotent, so the others count once), otherwise a failure of every recipient is the reply.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP
from sqlalchemy.exc import DataError

from service.bounces.events import MailEvent
from service.bounces.intake import MAX_REPORT_BYTES, Processed, read_message
from service.bounces.mime import PLAIN_ADDRESS
from service.bounces.parse import Report, mail_events
from service.bounces.policy import record_many
from service.bounces.returnpath import read_token, token_of_address
from service.db import Sessions
from service.settings import Settings

log = logging.getLogger("tidings.inbound")
GROUP_MAX = 200  # reports per transaction
GROUP_WAIT = 0.003  # seconds the writer waits for the reports of the other open connections


class Replies(list[str]):
    """One reply per accepted recipient, in RCPT order (RFC 2033 section 4.2)."""


# A path in MAIL FROM / RCPT TO that needs no address parser: `<>` or `<dot-atom@dot-atom>`,
# then the parameters (after blanks; a comment goes to the parser).
_PLAIN_PATH = re.compile(rf"\s*<({PLAIN_ADDRESS})?>")


class _Quick(SMTP):
    """What `tidings inbound` changes of aiosmtpd's server, for LMTP and SMTP alike: replies to
    pipelined commands written together, plain paths read without the address parser."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: list[bytes] = []  # replies not written yet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if isinstance(self.event_handler, InboundHandler):
            self.event_handler.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if isinstance(self.event_handler, InboundHandler):
            self.event_handler.connections -= 1

    async def push(self, status: Any) -> None:
        lines = status if isinstance(status, Replies) else [status]
        held = self._held
        held += [(line if isinstance(line, bytes) else line.encode("utf-8" if self.enable_SMTPUTF8 else "ascii"))
                 + b"\r\n" for line in lines]
        if self._more_commands_waiting() and not held[-1].startswith((b"221", b"421")):
            return  # answered with the reply to the next command
        self._writer.write(b"".join(held))
        held.clear()
        await self._writer.drain()

    def _more_commands_waiting(self) -> bool:
        """A whole command line is already read and waits: its reply can go with this one."""
        buffer = getattr(self._reader, "_buffer", None)  # asyncio.StreamReader's input buffer
        return isinstance(buffer, bytearray) and b"\n" in buffer

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        found = _PLAIN_PATH.match(arg)
        rest = arg[found.end():] if found is not None else ""
        if found is None or rest.lstrip(" \t").startswith("("):
            return super()._getaddr(arg)
        address = found.group(1)
        if address is None:
            return "<>", rest  # as the parser reads `<>`: the blanks after it stay
        rest = rest.lstrip(" \t")
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest


class InboundSMTP(_Quick):
    """aiosmtpd's SMTP, quicker (`_Quick`)."""


class PerRecipientLMTP(_Quick, LMTP):
    """aiosmtpd's LMTP with the per-recipient replies after DATA that RFC 2033 requires (the
    handler returns `Replies`; `push` writes each)."""


class InboundHandler:
    """aiosmtpd handler: RCPT only for our verified return paths; DATA records the report."""

    def __init__(self, sessions: Sessions, settings: Settings, *, lmtp: bool = True) -> None:
        self.sessions = sessions
        self.settings = settings
        self.lmtp = lmtp
        self.pending: list[_Job] = []
        self.worker: asyncio.Task[None] | None = None
        self.connections = 0  # open now
        self.filled: asyncio.Future[None] | None = None  # set when the waiting writer's group is full

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        token = token_of_address(self.settings, address)
        if token is None or read_token(self.settings, token) is None:
            return "550 5.1.1 not a return path of this server"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        """LHLO (and EHLO): aiosmtpd's capabilities, and PIPELINING."""
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str | Replies:
        raw = envelope.original_content or envelope.content
        raw = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "surrogateescape")
        report = read_message(raw, settings=self.settings)
        waiting = [self.enqueue(report, mail_events(report, source="lmtp", raw=raw,
                                                    return_token=token_of_address(self.settings, rcpt)))
                   for rcpt in envelope.rcpt_tos]
        replies = [await reply for reply in waiting]
        if self.lmtp:
            return Replies(replies)
        return _one_reply(replies)

    def enqueue(self, report: Report, events: list[MailEvent]) -> asyncio.Future[str]:
        """Queue one recipient's report for the next group; its reply, once committed."""
        job = _Job(report, events, asyncio.get_running_loop().create_future())
        self.pending.append(job)
        if self.filled is not None and not self.filled.done() and len(self.pending) >= self._full():
            self.filled.set_result(None)
        if self.worker is None or self.worker.done():
            self.worker = asyncio.create_task(self._drain())
        return job.reply

    async def _drain(self) -> None:
        """Commit groups until nothing waits (the next report starts a new worker)."""
        while self.pending:
            if len(self.pending) < self._full():
                await self._wait_for_others()
            group, self.pending = self.pending[:GROUP_MAX], self.pending[GROUP_MAX:]
            try:
                await self._commit(group)
            except Exception as error:
                if len(group) == 1:
                    log.exception("inbound: could not record a report")
                    _refuse_if_unstorable(group[0], error)
                else:  # one at a time: a report that cannot be recorded fails only itself
                    for job in group:
                        try:
                            await self._commit([job])
                        except Exception as one_error:
                            log.exception("inbound: could not record a report")
                            _refuse_if_unstorable(job, one_error)
            finally:
                for job in group:
                    if not job.reply.done():
                        job.reply.set_result("451 4.3.0 the report could not be recorded now; try again later")

    def _full(self) -> int:
        """Reports that make a full group: one per open connection, at most GROUP_MAX."""
        return min(GROUP_MAX, self.connections)

    async def _wait_for_others(self) -> None:
        """Up to GROUP_WAIT, until every open connection has handed a report."""
        self.filled = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self.filled, GROUP_WAIT)
        except TimeoutError:
            pass
        finally:
            self.filled = None

    async def _commit(self, group: list[_Job]) -> None:
        events: list[MailEvent] = [e for job in group for e in job.events]
        async with self.sessions.begin() as session:
            outcomes = await record_many(session, events, settings=self.settings)
        at = 0
        verbose = log.isEnabledFor(logging.INFO)
        for job in group:
            processed = Processed(job.report, tuple(outcomes[at:at + len(job.events)]))
            at += len(job.events)
            if verbose:
                log.info("inbound: %s", processed.summary())
            if not job.reply.done():
                job.reply.set_result(_reply(processed))


@dataclass(frozen=True)
class _Job:
    report: Report
    events: list[MailEvent]
    reply: asyncio.Future[str]


def _refuse_if_unstorable(job: _Job, error: Exception) -> None:
    """A report the database refuses as data (not for being away or busy) would be refused on
    every retry: 451 would keep it in the MTA's queue for days, then bounce it again. It is
    refused for good instead (the log above holds why), so the MTA returns it to its postmaster."""
    if isinstance(error, DataError) and not job.reply.done():
        job.reply.set_result("554 5.6.0 the report holds data that cannot be stored; refused (logged)")


def _reply(processed: Processed) -> str:
    if processed.rejected:
        return "550 5.1.1 this return path names no message we sent; nothing changed"
    if processed.counted:
        return f"250 2.0.0 {processed.report.kind} recorded"
    return f"250 2.0.0 {processed.report.kind}, nothing to record"


def _one_reply(replies: list[str]) -> str:
    if any(r.startswith("4") for r in replies):
        return next(r for r in replies if r.startswith("4"))
    return next((r for r in replies if r.startswith("2")), replies[0] if replies else "250 OK")


async def start_inbound(sessions: Sessions, settings: Settings, *, host: str = "127.0.0.1", port: int = 0,
                        lmtp: bool = True, hostname: str | None = None, reuse_port: bool = False) -> asyncio.Server:
    """Listen on `host`:`port` (0: any free port; see `server.sockets`) in the running loop;
    `reuse_port`: beside other processes on the same port (`tidings inbound --processes`)."""
    handler = InboundHandler(sessions, settings, lmtp=lmtp)
    kind: type[SMTP] = PerRecipientLMTP if lmtp else InboundSMTP

    def factory() -> SMTP:
        return kind(handler, data_size_limit=MAX_REPORT_BYTES, enable_SMTPUTF8=True, decode_data=False,
                    hostname=hostname, ident="Tidings inbound")

    return await asyncio.get_running_loop().create_server(factory, host=host, port=port,
                                                          reuse_port=reuse_port or None)
