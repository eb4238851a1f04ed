"""The inquiry form counts the message's characters as the person types, at desktop and phone
width, and says plainly how many are too many."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import axe_violations
from tests.live import LiveServer


@pytest.mark.parametrize("width", [1280, 390])
async def test_message_counter_counts_and_warns_past_the_limit(browser: Any, live: LiveServer, width: int) -> None:
    context = await browser.new_context(viewport={"width": width, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(f"{live.url}/contact")
        counter = page.locator("#inquiry-message-count")
        assert await counter.inner_text() == "0 of 5,000 characters"
        await page.fill("#inquiry-message", "x" * 4990)
        assert await counter.inner_text() == "4,990 of 5,000 characters"
        await page.fill("#inquiry-message", "x" * 5003)
        assert await counter.inner_text() == "3 characters too many (at most 5,000)"
        assert await page.input_value("#inquiry-message") == "x" * 5003  # nothing cut
        assert "error" in (await counter.get_attribute("class") or "")
        described = await page.get_attribute("#inquiry-message", "aria-describedby") or ""
        assert "inquiry-message-count" in described.split()
        assert await page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
        assert await axe_violations(page) == []
    finally:
        await context.close()


async def test_without_javascript_the_limit_is_stated(nojs_page: Any, live: LiveServer) -> None:
    await nojs_page.goto(f"{live.url}/contact")
    assert "At most 5,000 characters." in await nojs_page.inner_text("#message-hint")
    assert await nojs_page.locator("#inquiry-message-count").count() == 0
