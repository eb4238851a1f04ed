"""Helpers for bounce tests: events as an intake would make them, and the rows they leave."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from sqlalchemy import select

from service.admin.models import AuditEvent
from service.bounces.events import MailEvent
from service.bounces.models import BounceEvent
from service.bounces.policy import Outcome, record
from service.db import utcnow
from service.settings import Settings
from tests.conftest import Database

_keys = itertools.count(1)


def event(kind: str, recipient: str, *, token: str | None = None, source: str = "lmtp", key: str | None = None,
          at: dt.datetime | None = None, **kw: Any) -> MailEvent:
    return MailEvent(kind=kind, recipient=recipient, source=source, event_key=key or f"test-{next(_keys)}",
                     occurred_at=at or utcnow(), return_token=token, **kw)


async def record_one(db: Database, settings: Settings, mail_event: MailEvent) -> Outcome:
    async with db.sessions.begin() as session:
        return await record(session, mail_event, settings=settings)


async def stored_events(db: Database) -> list[BounceEvent]:
    async with db.sessions() as session:
        return list((await session.scalars(select(BounceEvent).order_by(BounceEvent.id))).all())


async def audit_rows(db: Database, action: str) -> list[AuditEvent]:
    async with db.sessions() as session:
        return list((await session.scalars(select(AuditEvent).where(AuditEvent.action == action))).all())


def token_of(sender: str) -> str:
    """The token of a VERP envelope sender as the SMTP server saw it."""
    local = sender.partition("@")[0]
    assert local.startswith("bounces+"), sender
    return local.removeprefix("bounces+")


SAMPLES = __import__("pathlib").Path(__file__).resolve().parent / "samples"


def sample(name: str, *, return_path: str, rcpt: str, message_id: str = "<none@clinic.test>") -> bytes:
    """A sample report with our return path, the failed address and our Message-ID filled in
    (CRLF line ends, as it arrives)."""
    text = (SAMPLES / f"{name}.eml").read_text(encoding="utf-8")
    text = text.replace("@@RETURN_PATH@@", return_path).replace("@@RCPT@@", rcpt).replace("@@MESSAGE_ID@@", message_id)
    return text.replace("\n", "\r\n").encode("utf-8")


async def lmtp_send(port: int, recipients: list[str], raw: bytes, *, lmtp: bool = True) -> tuple[list[str], list[str]]:
    """One LMTP (or SMTP) transaction with the null sender, by hand so that every reply is seen:
    (the RCPT replies, the replies after the message: one per accepted recipient in LMTP)."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> str:
        lines = []
        while True:
            line = (await asyncio.wait_for(reader.readline(), 30)).decode().rstrip("\r\n")
            lines.append(line)
            if line[3:4] != "-":
                return "\n".join(lines)

    async def command(line: str) -> str:
        writer.write(line.encode() + b"\r\n")
        await writer.drain()
        return await reply()

    try:
        await reply()
        assert (await command("LHLO tester.example" if lmtp else "EHLO tester.example")).startswith("250")
        assert (await command("MAIL FROM:<>")).startswith("250")
        rcpt_replies = [await command(f"RCPT TO:<{r}>") for r in recipients]
        accepted = sum(r.startswith("250") for r in rcpt_replies)
        if not accepted:
            return rcpt_replies, []
        assert (await command("DATA")).startswith("354")
        body = raw.replace(b"\r\n.", b"\r\n..")
        writer.write(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        await writer.drain()
        data_replies = [await reply() for _ in range(accepted if lmtp else 1)]
        await command("QUIT")
        return rcpt_replies, data_replies
    finally:
        writer.close()
