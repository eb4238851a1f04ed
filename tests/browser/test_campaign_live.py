"""Campaign pages in the browser against a real `tidings serve` (its in-process worker sends):
an announcement written in Markdown with no articles, its audience counted before sending, the
live progress that tells the real state while it goes out and ends cleanly (no stale "Sending",
no Pause/Cancel once finished), and the page's layout at desktop and phone width (the schedule
date input readable, nothing wider than the screen), with axe-core clean."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import axe_violations, live_server, screenshot
from tests.browser.helpers import load_demo_data, sign_in_with_cookie
from tests.conftest import Database
from tests.live import LiveServer
from tests.smtp import SmtpServer

BODY = "## New opening hours\n\nFrom January we also open on **Saturdays**, 9 to 13."


@pytest.fixture
def throttled_live(db: Database, smtp: SmtpServer, tmp_path: Path) -> Iterator[LiveServer]:
    """Sending at 60 messages/s: the demo's 276 recipients take a few seconds, long enough to watch."""
    with live_server(db, smtp, tmp_path, send_rate="60") as server:
        yield server


async def _compose_announcement(page: Any, live: LiveServer) -> str:
    await page.goto(f"{live.url}/admin/campaigns/new")
    await page.get_by_label("Subject", exact=True).fill("New opening hours")
    await page.get_by_label("Body").fill(BODY)
    for box in await page.locator("input[name=article]").all():
        await box.uncheck()
    audience = page.locator("[data-audience=receiving]")
    await expect(audience).to_have_text("276")  # recounted by the server as the choices changed
    await page.get_by_role("button", name="Create draft").click()
    await expect(page.get_by_role("status")).to_have_text("Draft created.")
    return page.url.split("?")[0]


async def test_an_announcement_is_counted_sent_and_watched_to_a_clean_end(
        page: Any, throttled_live: LiveServer, db: Database, smtp: SmtpServer) -> None:
    live = throttled_live
    await load_demo_data(db, live)  # 276 confirmed example subscribers
    await sign_in_with_cookie(page, live, db)
    campaign_url = await _compose_announcement(page, live)
    await expect(page.locator("strong[data-field=receiving]")).to_have_text("276")
    await expect(page.locator(".markdown-body strong")).to_have_text("Saturdays")
    await expect(page.get_by_role("button", name="Cancel campaign")).to_have_count(0)
    await expect(page.get_by_role("button", name="Delete draft")).to_be_visible()

    await page.get_by_role("link", name="Refresh").click()
    await page.get_by_role("button", name="Preview", exact=True).click()
    frame = page.frame_locator("iframe.mail-frame")
    await expect(frame.get_by_role("heading", name="New opening hours", level=2)).to_be_visible()
    await expect(frame.locator("strong", has_text="Saturdays")).to_be_visible()

    await page.goto(campaign_url)
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Send now").click()
    state, rate = page.locator("[data-field=state]"), page.locator("span[data-field=rate]")
    seen: list[tuple[str, str]] = []
    # Until it is finished, every moment shows a true sentence and never a made-up rate of 0.0/s.
    while await page.locator("h1 [data-field=status]").inner_text() == "sending":
        shown = (await state.inner_text(), await rate.inner_text())
        if shown not in seen:
            seen.append(shown)
            if len(seen) == 3:
                await screenshot(page, "campaign-live-progress")
        assert shown[1] != "0.0", seen
        # (the last read may already be of the finished page the script loaded)
        assert shown[0].startswith(("Queued for 276", "Sending: ", "All 276 handled", "Finished: 276")), seen
        await page.wait_for_timeout(150)
    await expect(state).to_have_text("Finished: 276 sent, 0 failed, 0 skipped.")
    # The end is the server's page: no stale notice, no buttons that no longer apply.
    assert page.url == campaign_url
    await expect(page.locator("#p-percent")).to_have_text("100 %")
    await expect(page.locator(".notice")).to_have_count(0)
    for gone in ("Pause", "Cancel campaign", "Send now", "Send test"):
        await expect(page.get_by_role("button", name=gone, exact=True)).to_have_count(0)
    await expect(page.get_by_role("button", name="Duplicate")).to_be_visible()
    assert len(smtp.received) == 276
    assert await axe_violations(page) == []


@pytest.mark.parametrize("width", [1280, 390])
async def test_the_campaign_page_and_composer_fit_the_screen(browser: Any, live: LiveServer, db: Database,
                                                             width: int) -> None:
    await load_demo_data(db, live)
    context = await browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = await context.new_page()
        await sign_in_with_cookie(page, live, db)
        campaign_url = await _compose_announcement(page, live)
        when = page.get_by_label("Schedule for (local date and time)")
        box = await when.bounding_box()
        # Room for "mm/dd/yyyy, --:-- --" and a finger: as tall as the other fields, not a thin line.
        assert box is not None and box["width"] >= 180 and box["height"] >= 36, box
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
        zone = await page.get_by_label("Time zone").bounding_box()
        assert zone is not None and zone["width"] >= 180 and abs(zone["height"] - box["height"]) < 2, zone
        if width >= 1000:  # side by side, aligned
            assert abs(zone["y"] - box["y"]) < 2 and zone["x"] > box["x"] + box["width"], (box, zone)
        assert await page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
        card = await page.locator("section[aria-labelledby=t-actions]").bounding_box()
        assert card is not None and card["x"] + card["width"] <= width, card
        await when.fill("2099-03-02T09:30")
        await page.get_by_role("button", name="Schedule").click()
        await expect(page.get_by_role("status")).to_have_text("Scheduled.")
        await screenshot(page, f"campaign-scheduled-{width}")
        assert await axe_violations(page) == []
        await page.goto(f"{live.url}/admin/campaigns/new")
        body = await page.get_by_label("Body").bounding_box()
        assert body is not None and body["width"] >= min(width - 80, 300) and body["x"] + body["width"] <= width
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        assert await axe_violations(page) == []
        assert page.url != campaign_url
    finally:
        await context.close()


async def test_without_javascript_the_draft_shows_its_audience_and_the_test_send_redirects(
        nojs_page: Any, live: LiveServer, db: Database, smtp: SmtpServer) -> None:
    page = nojs_page
    await load_demo_data(db, live)
    await sign_in_with_cookie(page, live, db)
    await page.goto(f"{live.url}/admin/campaigns/new")
    await page.get_by_label("Subject", exact=True).fill("Hours")
    await page.get_by_label("Body").fill(BODY)
    await page.get_by_role("button", name="Count again").click()  # no script: the server counts
    await expect(page.locator("[data-audience=receiving]")).to_have_text("276")
    await page.get_by_role("button", name="Create draft").click()
    await expect(page.locator("strong[data-field=receiving]")).to_have_text("276")
    await page.get_by_label("Send a test to").fill("me@example.org")
    await page.get_by_role("button", name="Send test").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Test sent to me@example.org. It may take a minute to arrive.")
    assert "/test" not in page.url  # a reload shows the page again and sends nothing
    await page.reload()
    assert [m.recipients for m in smtp.received] == [["me@example.org"]]
