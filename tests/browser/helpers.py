"""What the browser journeys share: waiting for mail at the SMTP server, reading links out of
it, signing staff in through the real form, and loading the demo data through `service.demo`."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from service.demo import load_demo
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


async def sign_in(page: Any, live: LiveServer, email: str = STAFF_EMAIL, password: str = STAFF_PASSWORD) -> None:
    await page.goto(f"{live.url}/admin/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{live.url}/admin/")
