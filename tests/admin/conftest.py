"""Admin test helpers: staff accounts, signing in through the real form, reading CSRF tokens
from the pages, and inquiries/subscribers inserted straight into the tables."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from service.admin.auth import create_staff_user
from service.admin.models import AuditEvent, StaffUser
from service.inquiries.models import Inquiry
from service.newsletter.models import Subscriber, SubscriberTopic
from tests.conftest import Database

ADMIN_EMAIL = "admin@clinic.test"
STAFF_EMAIL = "staff@clinic.test"
PASSWORD = "correct horse battery staple"

_TOKEN = re.compile(r'name="(?:csrf_token|form_token)" value="([^"]+)"')


async def make_staff(db: Database, email: str = ADMIN_EMAIL, role: str = "admin",
                     password: str | None = PASSWORD, name: str = "") -> StaffUser:
    async with db.sessions.begin() as session:
        return await create_staff_user(session, email=email, role=role, name=name, password=password)


def token_in(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "no form token on the page"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, email: str = ADMIN_EMAIL, password: str = PASSWORD,
                  next_url: str | None = None) -> httpx.Response:
    page = await client.get("/admin/login")
    data = {"email": email, "password": password, "form_token": token_in(page.text)}
    if next_url is not None:
        data["next"] = next_url
    return await client.post("/admin/login", data=data)


async def csrf(client: httpx.AsyncClient) -> str:
    page = await client.get("/admin/account")
    assert page.status_code == 200, page.status_code
    return token_in(page.text)


def new_client(app: Any, ip: str = "203.0.113.7") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 50000)), base_url="http://testserver")


@pytest.fixture
async def admin(db: Database) -> StaffUser:
    return await make_staff(db)


@pytest.fixture
async def admin_client(app: Any, admin: StaffUser) -> AsyncIterator[httpx.AsyncClient]:
    async with new_client(app) as c:
        r = await sign_in(c)
        assert r.status_code == 303, r.text
        yield c


@pytest.fixture
async def staff_client(app: Any, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    await make_staff(db, STAFF_EMAIL, role="staff")
    async with new_client(app, ip="203.0.113.8") as c:
        r = await sign_in(c, STAFF_EMAIL)
        assert r.status_code == 303, r.text
        yield c


def inquiry_row(i: int = 0, **fields: Any) -> dict[str, Any]:
    now = fields.pop("created_at", dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC) + dt.timedelta(minutes=i))
    row = dict(created_at=now, name=f"Client {i}", email=f"client{i}@example.org", phone="", topic="depression",
               contact_method="email", message=f"Message number {i}", consent=True, newsletter_optin=False,
               status="new", status_changed_at=now, source_page="", referrer="", utm_source="", utm_medium="",
               utm_campaign="", utm_term="", utm_content="", ip="198.51.100.1", user_agent="", dedupe_key=f"k{i}")
    row.update(fields)
    return row


async def add_inquiries(db: Database, rows: list[dict[str, Any]]) -> list[int]:
    """Insert every row with one INSERT statement (executemany is not used)."""
    async with db.sessions.begin() as session:
        result = await session.execute(insert(Inquiry).values(rows).returning(Inquiry.id))
        return [r[0] for r in result.all()]


async def add_subscriber(db: Database, email: str, topics: tuple[str, ...] = (), **fields: Any) -> int:
    now = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
    values: dict[str, Any] = dict(email=email, email_key=email.lower(), name="", status="confirmed",
                                  created_at=now, status_changed_at=now, signup_at=now, confirmed_at=now)
    values.update(fields)
    async with db.sessions.begin() as session:
        sub = Subscriber(**values)
        session.add(sub)
        await session.flush()
        for topic in topics:
            session.add(SubscriberTopic(subscriber_id=sub.id, topic=topic))
        return sub.id


async def audit_actions(db: Database) -> list[tuple[str, str, str]]:
    """(action, actor_email, target_id) of every audit event, oldest first."""
    async with db.sessions() as session:
        rows = await session.execute(select(AuditEvent.action, AuditEvent.actor_email, AuditEvent.target_id)
                                     .order_by(AuditEvent.id))
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def count(db: Database, model: Any) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)
