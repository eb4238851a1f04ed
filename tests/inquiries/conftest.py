"""Helpers for the inquiry tests: a valid submission, form tokens, the stored rows, delivery of
the outbox to the real SMTP server, and apps with changed settings."""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import itsdangerous
import pytest
from sqlalchemy import func, select

from service.app import create_app
from service.inquiries.models import Inquiry, InquiryEvent
from service.mail.models import OutboxMessage
from service.mail.outbox import OutboxWorker
from service.mail.transport import SmtpTransport
from service.settings import RateLimit, Settings
from tests.conftest import TEST_SECRET, Database, make_settings
from tests.smtp import SmtpServer

CLIENT_IP = "203.0.113.7"
ROOMY = RateLimit(10_000, 600)


@pytest.fixture
def settings(db: Database) -> Settings:
    """The suite's settings with a rate limit no test reaches unless it means to."""
    return make_settings(db, form_rate_limit=ROOMY)


def valid_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "Ana Souza",
        "email": "ana@example.org",
        "phone": "+1 (555) 010-2030",
        "topic": "depression",
        "contact_method": "either",
        "message": "I would like to know whether ketamine-assisted therapy could help me.",
        "consent": "yes",
        "source_page": "https://blog.clinic.test/articles/ketamine-and-depression",
        "referrer": "https://www.google.com/",
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "spring",
        "utm_term": "ketamine",
        "utm_content": "footer-link",
        "website": "",
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


async def form_token(client: httpx.AsyncClient) -> str:
    r = await client.get("/api/form-token")
    assert r.status_code == 200
    return str(r.json()["form_token"])


def token_from_page(html: str) -> str:
    match = re.search(r'name="form_token" value="([^"]+)"', html)
    assert match, "the form page carries a form token"
    return match.group(1)


def old_form_token(age_seconds: float, form: str = "inquiry") -> str:
    """A correctly signed token (with a fresh nonce) issued `age_seconds` ago."""

    class OldSigner(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_seconds)

    payload = {"form": form, "nonce": secrets.token_urlsafe(12)}
    return itsdangerous.URLSafeTimedSerializer(TEST_SECRET, salt="tidings.form", signer=OldSigner).dumps(payload)


RECEIPT = re.compile(r"^[A-Za-z0-9_-]{22}$")


async def posted_id(client: httpx.AsyncClient, db: Database, **changes: Any) -> int:
    """Send an inquiry through the JSON API; the id of the row it stored (the answer is a receipt)."""
    r = await post_json(client, **changes)
    assert r.status_code == 201 and RECEIPT.match(r.json()["id"])
    async with db.sessions() as session:
        found = await session.scalar(select(Inquiry.id).where(Inquiry.receipt == r.json()["id"]))
    assert found is not None, "the receipt names a stored inquiry"
    return int(found)


async def post_form(client: httpx.AsyncClient, **changes: Any) -> httpx.Response:
    fields = valid_fields(**changes)
    if "form_token" not in fields:
        fields["form_token"] = await form_token(client)
    return await client.post("/contact", data=fields)


async def post_json(client: httpx.AsyncClient, **changes: Any) -> httpx.Response:
    fields = valid_fields(**changes)
    if "form_token" not in fields:
        fields["form_token"] = await form_token(client)
    return await client.post("/api/inquiries", json=fields)


async def stored_inquiries(db: Database) -> list[Inquiry]:
    async with db.sessions() as session:
        return list((await session.scalars(select(Inquiry).order_by(Inquiry.id))).all())


async def inquiry_events(db: Database) -> list[InquiryEvent]:
    async with db.sessions() as session:
        return list((await session.scalars(select(InquiryEvent).order_by(InquiryEvent.id))).all())


async def outbox_messages(db: Database) -> list[OutboxMessage]:
    async with db.sessions() as session:
        return list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def count_rows(db: Database) -> tuple[int, int]:
    """(inquiries, outbox messages)"""
    async with db.sessions() as session:
        inquiries = await session.scalar(select(func.count()).select_from(Inquiry))
        outbox = await session.scalar(select(func.count()).select_from(OutboxMessage))
    return int(inquiries or 0), int(outbox or 0)


async def deliver_outbox(db: Database, smtp: SmtpServer) -> int:
    mailer = SmtpTransport(smtp.url, concurrency=2, timeout=5)
    try:
        return await OutboxWorker(db.sessions, mailer, owner="test").drain()
    finally:
        await mailer.close()


@contextlib.asynccontextmanager
async def client_with(db: Database, *, ip: str = CLIENT_IP, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose settings differ from the defaults by `changes`."""
    app = create_app(make_settings(db, **{"form_rate_limit": ROOMY, **changes}), sessions=db.sessions)
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
