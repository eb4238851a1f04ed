"""What the browser journeys share: waiting for mail at the SMTP server, reading links out of
it, signing staff in (through the real form, or with a minted cookie), the admin pages and their
layout check, and loading the demo data through `service.demo`."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from service.admin.auth import COOKIE_NAME, COOKIE_PATH, session_cookie_value
from service.admin.models import StaffUser
from service.campaigns.models import Campaign
from service.db import transaction
from service.demo import load_demo
from service.inquiries.models import Inquiry
from service.mail.outbox import queue_email
from service.newsletter.models import Subscriber
from service.tokens import Tokens
from tests.conftest import Database, make_settings
from tests.factories import text_of
from tests.live import LiveServer
from tests.smtp import Received, SmtpServer

STAFF_EMAIL = "admin@example.org"
STAFF_PASSWORD = "a demo password for the journeys"


async def wait_for_mail(smtp: SmtpServer, match: Callable[[Received], bool], *, count: int = 1,
                        within: float = 20.0) -> list[Received]:
    """The messages the SMTP server received that `match`, once there are `count` of them."""
    deadline = time.monotonic() + within
    while True:
        found = [m for m in list(smtp.received) if match(m)]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            seen = [(m.recipients, m.message["Subject"]) for m in smtp.received]
            raise AssertionError(f"{count} matching message(s) did not arrive within {within} s; received: {seen}")
        await asyncio.sleep(0.1)


def to(address: str, subject_part: str = "") -> Callable[[Received], bool]:
    return lambda m: address in m.recipients and subject_part in str(m.message["Subject"])


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def link_in(message: EmailMessage, live: LiveServer, path: str) -> str:
    """The first {live.url}{path}… URL in the text part."""
    found = re.search(re.escape(live.url + path) + r"[A-Za-z0-9_.\-]+", text_of(message))
    assert found, f"no {path} link in: {text_of(message)}"
    return found.group(0)


async def load_demo_data(db: Database, live: LiveServer) -> None:
    """The `tidings demo` data (sample blog, subscribers, inquiries, draft digest, admin)."""
    settings = make_settings(db, base_url=live.url)
    result = await load_demo(db.sessions, settings, admin_email=STAFF_EMAIL, password=STAFF_PASSWORD)
    assert result.loaded


async def _first_id(db: Database, model: Any) -> int:
    async with db.sessions() as session:
        return int((await session.scalars(select(model.id).order_by(model.id).limit(1))).one())


async def admin_pages(db: Database) -> list[str]:
    """Every admin page, on the demo data, plus an outbox message with a long address and subject."""
    inquiry, subscriber, campaign = [await _first_id(db, m) for m in (Inquiry, Subscriber, Campaign)]
    async with transaction(db.sessions) as session:  # a message with a long address and subject
        message = await queue_email(session, kind="smtp_check", sender="Clinic <hello@clinic.test>",
                                    to="a.rather.long.address.for.a.phone@subdomain.example.org",
                                    subject="Mail from Clinic works: a subject long enough to wrap on a phone",
                                    template="smtp_check", ctx={"org_name": "Clinic", "sent_at": "today"})
        message_id = message.id
    return ["/admin/", "/admin/inquiries", "/admin/inquiries?status=held", "/admin/inquiries?q=a",
            f"/admin/inquiries/{inquiry}", f"/admin/inquiries/{inquiry}/erase",
            "/admin/subscribers", f"/admin/subscribers/{subscriber}", f"/admin/subscribers/{subscriber}/erase",
            "/admin/subscribers/import", "/admin/campaigns", "/admin/campaigns/new", f"/admin/campaigns/{campaign}",
            f"/admin/campaigns/{campaign}/edit", f"/admin/campaigns/{campaign}/preview",
            "/admin/digest-rules", "/admin/digest-rules/new", "/admin/articles", "/admin/outbox",
            f"/admin/outbox/{message_id}", "/admin/bounces", "/admin/audit", "/admin/reports",
            f"/admin/reports/campaigns/{campaign}", "/admin/reports/content", "/admin/reports/leads",
            "/admin/reports/audience", "/admin/users", "/admin/account", "/admin/account/two-factor",
            "/admin/settings", "/admin/settings?preview=inquiry_staff", "/admin/no-such-page"]


async def layout_problems(page: Any) -> list[str]:
    """What is wrong with the admin page's layout at the page's width: the page scrolls sideways,
    or the menu wraps into more than one row (or is missing)."""
    problems = []
    overflow = await page.evaluate("document.scrollingElement.scrollWidth - innerWidth")
    if overflow > 0:
        problems.append(f"scrolls sideways by {overflow} px")
    tops = await page.eval_on_selector_all("header nav a", "links => links.map(a => a.offsetTop)")
    if len(set(tops)) != 1:
        problems.append(f"the menu wraps into {len(set(tops))} rows")
    return problems


async def sign_in_with_cookie(page: Any, live: LiveServer, db: Database, email: str = STAFF_EMAIL) -> None:
    """Give the page's browser the session cookie the login route would have set for `email` (same
    signing function, keys, name and path; see tests.factories.signed_in_client) and open the
    dashboard: it saves the login form's round trips and the server's argon2 work (a rehash of the
    test's cheap hash, ~0.5 s of CPU). Journeys about signing in itself use `sign_in`."""
    async with db.sessions() as session:
        user = (await session.scalars(select(StaffUser).where(StaffUser.email == email))).one()
    value = session_cookie_value(Tokens(make_settings(db, base_url=live.url)), user)
    await page.context.add_cookies([{"name": COOKIE_NAME, "value": value, "domain": urlsplit(live.url).hostname,
                                     "path": COOKIE_PATH, "httpOnly": True, "sameSite": "Lax"}])
    await page.goto(f"{live.url}/admin/")
    assert page.url == f"{live.url}/admin/", page.url


async def sign_in(page: Any, live: LiveServer, email: str = STAFF_EMAIL, password: str = STAFF_PASSWORD) -> None:
    await page.goto(f"{live.url}/admin/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{live.url}/admin/")
