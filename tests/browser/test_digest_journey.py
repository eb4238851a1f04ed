"""A digest from the staff's "Send now" to the reader's inbox and out again, all in the browser
against a real `tidings serve` (its in-process worker sends, throttled so that the progress is
visible): a reader subscribes; staff sign in, build a digest of the sample blog, preview it as
that reader, send it and watch the progress bar reach 100 %; the digest the reader received at
the SMTP server shows its articles, and its unsubscribe link opens the preference centre, where
one press unsubscribes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import axe_violations, live_server, screenshot
from tests.browser.helpers import html_of, load_demo_data, sign_in_with_cookie, to, wait_for_mail
from tests.browser.test_journeys import subscribe_and_confirm
from tests.conftest import Database
from tests.live import LiveServer
from tests.smtp import SmtpServer

READER = "sam.reader@example.org"
SUBJECT = "Our autumn reading"


@pytest.fixture
def throttled_live(db: Database, smtp: SmtpServer, tmp_path: Path) -> Iterator[LiveServer]:
    """`live`, sending campaigns at 80 messages/s: the demo's 277 recipients take about 3.5 s."""
    with live_server(db, smtp, tmp_path, send_rate="80") as server:
        yield server


async def test_staff_builds_previews_and_sends_a_digest_and_its_unsubscribe_link_ends_in_the_preference_centre(
        page: Any, throttled_live: LiveServer, db: Database, smtp: SmtpServer) -> None:
    live = throttled_live
    await load_demo_data(db, live)  # the sample blog's articles and 276 confirmed example subscribers
    await subscribe_and_confirm(page, live, smtp, READER)  # chose one topic: anxiety

    await sign_in_with_cookie(page, live, db)
    await page.get_by_role("navigation", name="Admin").get_by_role("link", name="Campaigns").click()
    await page.get_by_role("link", name="New campaign").click()
    await page.get_by_label("Subject", exact=True).fill(SUBJECT)
    await expect(page.locator("input[name=article]:checked")).to_have_count(5)  # every new article
    await page.get_by_role("button", name="Create draft").click()
    await expect(page.get_by_role("status")).to_have_text("Draft created.")
    campaign_url = page.url

    await page.get_by_label("Preview as").fill(READER)
    await page.get_by_role("button", name="Preview").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Preview")
    await expect(page.locator(".mail-text")).to_contain_text("Sam Reader")
    frame = page.frame_locator("iframe.mail-frame")
    await expect(frame.get_by_role("heading", name="Does Ketamine Therapy Get You High?")).to_be_visible()
    await expect(frame.get_by_text("Hello Sam Reader")).to_be_visible()

    await page.goto(campaign_url)
    page.once("dialog", lambda dialog: dialog.accept())  # "Send this campaign to … now?"
    await page.get_by_role("button", name="Send now").click()
    await expect(page.get_by_role("status")).to_contain_text("Sending")
    percent, sent = page.locator("#p-percent"), page.locator("span[data-field=sent]")
    await expect(sent).not_to_have_text("0", timeout=15_000)  # the page updates itself
    if await percent.inner_text() != "100 %":
        await screenshot(page, "campaign-progress")
    await expect(percent).to_have_text("100 %", timeout=30_000)
    await expect(page.locator("progress")).to_have_attribute("value", "277")
    await expect(page.locator("h1 [data-field=status]")).to_have_text("sent", timeout=10_000)

    (digest,) = await wait_for_mail(smtp, to(READER, SUBJECT))
    await page.goto("about:blank")  # out of the app's CSP, which forbids the email's inline styles
    await page.set_content(html_of(digest.message))
    await expect(page.get_by_role("heading", name="Does Ketamine Therapy Get You High?")).to_be_visible()
    await screenshot(page, "digest-received")
    assert await axe_violations(page) == []  # the email itself is accessible too
    link = page.get_by_role("link", name="Unsubscribe or choose your topics", exact=True)
    href = await link.get_attribute("href")
    assert digest.message["List-Unsubscribe"] == f"<{href}>"
    assert href.startswith(f"{live.url}/unsubscribe/")
    await link.click()
    await page.wait_for_url(href)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your newsletter preferences")
    await expect(page.get_by_text("s•••r@example.org")).to_be_visible()
    await page.get_by_role("button", name="Unsubscribe").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")

    await page.goto(campaign_url)  # staff see the unsubscribe counted against the campaign
    await expect(page.locator("td[data-field=unsubscribed_after]")).to_have_text("1")
    await expect(page.locator("td[data-field=total]")).to_have_text("277")
    await expect(page.locator("td[data-field=queued]")).to_have_text("0")
    await page.goto(f"{live.url}/archive")  # and the web version is public
    await page.get_by_role("link", name=re.compile(SUBJECT)).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(SUBJECT)
