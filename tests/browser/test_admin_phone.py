"""Every admin page at phone width (390 px) and desktop width (1280 px): nothing scrolls the
page sideways, the menu stays one compact row, and axe-core finds nothing serious."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from service.campaigns.models import Campaign
from service.db import transaction
from service.inquiries.models import Inquiry
from service.mail.outbox import queue_email
from service.newsletter.models import Subscriber
from tests.browser.conftest import axe_violations
from tests.browser.helpers import load_demo_data, sign_in
from tests.conftest import Database
from tests.live import LiveServer


async def _first_id(db: Database, model: Any) -> int:
    async with db.sessions() as session:
        return int((await session.scalars(select(model.id).order_by(model.id).limit(1))).one())


async def _admin_pages(db: Database) -> list[str]:
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


@pytest.mark.parametrize("width", [390, 1280])
async def test_no_admin_page_scrolls_sideways(browser: Any, live: LiveServer, db: Database, width: int) -> None:
    await load_demo_data(db, live)
    context = await browser.new_context(viewport={"width": width, "height": 844})
    page = await context.new_page()
    try:
        await sign_in(page, live)
        wide: dict[str, int] = {}
        for path in await _admin_pages(db):
            await page.goto(f"{live.url}{path}")
            overflow = await page.evaluate("document.scrollingElement.scrollWidth - innerWidth")
            if overflow > 0:
                wide[path] = overflow
            tops = await page.eval_on_selector_all("header nav a", "links => links.map(a => a.offsetTop)")
            assert len(set(tops)) == 1, f"{path}: the menu wraps into {len(set(tops))} rows"
            assert await axe_violations(page) == [], path
        assert wide == {}
    finally:
        await context.close()
