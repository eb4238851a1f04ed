"""A digest from the staff's "send" to the reader's inbox and out again: a reader subscribes
in the browser; the digest of the sample blog is built, previewed and sent (through the
campaigns domain's functions, as `tidings digest create` / `campaign send` do; the live server's
in-process worker delivers it); sending reaches 100 %; the digest the reader received at the
SMTP server shows its articles, and its unsubscribe link opens the preference centre, where one
press unsubscribes."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from playwright.async_api import expect

from service.articles.flows import import_articles
from service.campaigns.flows import create_digest, render_preview
from service.campaigns.queries import start_campaign
from service.campaigns.stats import campaign_stats
from service.db import transaction, utcnow
from service.demo import SAMPLE_POSTS
from tests.browser.conftest import axe_violations, screenshot
from tests.browser.helpers import html_of, to, wait_for_mail
from tests.browser.test_journeys import subscribe_and_confirm
from tests.conftest import Database, make_settings
from tests.live import LiveServer
from tests.smtp import SmtpServer

READER = "sam.reader@example.org"


async def sent_percent(db: Database, campaign_id: int) -> tuple[str, int]:
    async with db.sessions() as session:
        stats = await campaign_stats(session, campaign_id=campaign_id)
    return stats.status, round(100 * stats.done / stats.total) if stats.total else 0


async def test_digest_is_sent_to_100_percent_and_its_unsubscribe_link_ends_in_the_preference_centre(
        page: Any, live: LiveServer, db: Database, smtp: SmtpServer) -> None:
    await subscribe_and_confirm(page, live, smtp, READER)
    settings = make_settings(db, base_url=live.url, org_name="Clinic")
    assert (await import_articles(db.sessions, settings, [str(SAMPLE_POSTS)])).created == 5
    async with transaction(db.sessions) as session:
        campaign = await create_digest(session, settings, now=utcnow())
        subject, html, _ = await render_preview(session, settings=settings, campaign_id=campaign.id, email=READER)
    await page.goto("about:blank")  # out of the app's CSP, which forbids the email's inline styles
    await page.set_content(html)  # the preview, as the reader will see it
    await expect(page.get_by_text("Sam Reader")).to_be_visible()

    async with transaction(db.sessions) as session:
        assert await start_campaign(session, campaign_id=campaign.id, now=utcnow()) == 1
    deadline = time.monotonic() + 20
    while (progress := await sent_percent(db, campaign.id)) != ("sent", 100):
        assert time.monotonic() < deadline, f"sending stalled at {progress}"
        await asyncio.sleep(0.2)

    (digest,) = await wait_for_mail(smtp, to(READER, subject))
    await page.set_content(html_of(digest.message))
    await expect(page.get_by_role("heading", name="Does Ketamine Therapy Get You High?")).to_be_visible()
    await screenshot(page, "digest-received")
    assert await axe_violations(page) == []  # the email itself is accessible too
    link = page.get_by_role("link", name="unsubscribe", exact=True)
    href = await link.get_attribute("href")
    assert digest.message["List-Unsubscribe"] == f"<{href}>"
    assert href.startswith(f"{live.url}/unsubscribe/")
    await link.click()
    await page.wait_for_url(href)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your newsletter preferences")
    await expect(page.get_by_text("s•••r@example.org")).to_be_visible()
    await page.get_by_role("button", name="Unsubscribe").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")

    await page.goto(f"{live.url}/archive/{campaign.slug}")  # the web version, as it went out
    await expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Clinic digest, "))
    await screenshot(page, "campaign-sent")
