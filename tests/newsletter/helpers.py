"""Helpers for newsletter tests: sign up through the real form, deliver the outbox through the
real SMTP server, and read links out of the received emails."""

from __future__ import annotations

import re
from email.message import EmailMessage

import httpx
from sqlalchemy import func, select

from service.mail.models import OutboxMessage
from service.mail.outbox import OutboxWorker
from service.mail.transport import SmtpTransport
from service.newsletter.models import Subscriber
from tests.conftest import Database
from tests.smtp import SmtpServer

TOKEN_RE = re.compile(r'name="form_token" value="([^"]+)"')


async def form_token(client: httpx.AsyncClient, path: str = "/subscribe") -> str:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    match = TOKEN_RE.search(r.text)
    assert match, "no form token on the page"
    return match.group(1)


async def signup(client: httpx.AsyncClient, email: str, *, name: str = "", topics: tuple[str, ...] = (),
                 headers: dict[str, str] | None = None, **extra: str) -> httpx.Response:
    data: dict[str, object] = {"form_token": await form_token(client), "website": "", "email": email,
                               "name": name, "topics": list(topics), **extra}
    return await client.post("/subscribe", data=data, headers=headers)


async def deliver(db: Database, smtp: SmtpServer) -> int:
    worker = OutboxWorker(db.sessions, SmtpTransport(smtp.url, timeout=5), owner="t")
    try:
        return await worker.drain()
    finally:
        await worker.mailer.close()


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def link_in(message: EmailMessage, path: str) -> str:
    """The first http://testserver{path}... URL in the text part."""
    match = re.search(r"http://testserver(" + re.escape(path) + r"[A-Za-z0-9_.\-]+)", text_of(message))
    assert match, f"no {path} link in: {text_of(message)}"
    return match.group(1)


async def subscriber(db: Database, email: str) -> Subscriber | None:
    async with db.sessions() as session:
        return (await session.scalars(select(Subscriber).where(Subscriber.email_key == email.lower()))).one_or_none()


async def outbox_count(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


async def set_fields(db: Database, email: str, **values: object) -> None:
    """Change a subscriber row directly (e.g. move a timestamp into the past)."""
    from sqlalchemy import update

    async with db.sessions.begin() as session:
        await session.execute(update(Subscriber).where(Subscriber.email_key == email.lower()).values(**values))


async def confirmed_subscriber(client: httpx.AsyncClient, db: Database, smtp: SmtpServer, email: str,
                               **kw: object) -> Subscriber:
    """Sign `email` up and confirm it through the real link; returns the row."""
    await signup(client, email, **kw)  # type: ignore[arg-type]
    await deliver(db, smtp)
    mine = [m for m in smtp.received if m.recipients == [email]]
    path = link_in(mine[-1].message, "/confirm/")
    r = await client.post(path)
    assert r.status_code == 200, r.text
    await deliver(db, smtp)
    sub = await subscriber(db, email)
    assert sub is not None and sub.status == "confirmed"
    return sub
