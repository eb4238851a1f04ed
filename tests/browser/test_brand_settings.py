"""The brand on the Settings page, in a real browser at desktop (1280 px) and phone (390 px)
width: an admin types a name and colour and sees the preview follow before saving, a refused
blog address is named by its field, a logo is uploaded and saved, and the public preference
centre then shows the new look. Nothing scrolls sideways and axe-core finds nothing serious."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from service.newsletter.models import Subscriber
from service.newsletter.tokens import unsubscribe_url
from service.tokens import Tokens
from tests.browser.conftest import axe_violations, screenshot
from tests.browser.helpers import load_demo_data, sign_in_with_cookie
from tests.conftest import Database, make_settings
from tests.live import LiveServer


def logo_png(size: int = 96) -> bytes:
    """A logo mark: an accent-coloured ring with a dot, on a transparent background (RGBA PNG)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def pixel(x: int, y: int) -> bytes:
        r = ((x - size / 2 + 0.5) ** 2 + (y - size / 2 + 0.5) ** 2) ** 0.5 / (size / 2)
        return b"\x8a\x1c\x4a\xff" if r < 0.3 or 0.6 < r < 0.95 else b"\x00\x00\x00\x00"

    raw = b"".join(b"\x00" + b"".join(pixel(x, y) for x in range(size)) for y in range(size))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


async def _no_sideways_scroll(page: Any) -> None:
    assert await page.evaluate("document.scrollingElement.scrollWidth - innerWidth") <= 0


@pytest.mark.parametrize("width", [1280, 390])
async def test_admin_brands_the_emails_with_a_live_preview_and_the_public_pages_follow(
        browser: Any, fresh_live: LiveServer, db: Database, width: int) -> None:
    live = fresh_live  # a server of its own: the brand it caches must not reach another test
    await load_demo_data(db, live)
    context = await browser.new_context(viewport={"width": width, "height": 900 if width > 400 else 844})
    page = await context.new_page()
    try:
        await sign_in_with_cookie(page, live, db)
        if width == 1280:
            await screenshot(page, "admin-dashboard")
        await page.get_by_role("navigation", name="Admin").get_by_role("link", name="Settings").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
        assert await axe_violations(page) == []
        await _no_sideways_scroll(page)

        # typed, not saved: the preview (the real digest) follows
        frame = page.frame_locator("iframe.mail-frame")
        await expect(frame.get_by_text("Clinic", exact=True).first).to_be_visible()
        await page.get_by_label("Organisation name").fill("Lisbon Calm Clinic")
        await page.locator("#accent_color").fill("#8a1c4a")
        await expect(frame.locator("p.brand")).to_have_text("Lisbon Calm Clinic")
        await page.get_by_label("Email", exact=True).select_option(label="Auto-reply to an inquiry")
        await expect(frame.get_by_text("The team at Lisbon Calm Clinic")).to_be_visible()

        # a refused value: the summary takes the focus, the field says what is wrong
        await page.get_by_label("Blog address").fill("javascript:alert(1)")
        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page.locator(".error-summary")).to_be_focused()
        await expect(page.locator("#blog_url-error")).to_contain_text("enter an address starting with https://")
        assert await axe_violations(page) == []

        await page.get_by_label("Blog address").fill("https://blog.lisbon-calm.test")
        await page.locator("#logo").set_input_files(
            files=[{"name": "logo.png", "mimeType": "image/png", "buffer": logo_png()}])
        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page.get_by_role("status")).to_contain_text("Saved.")
        await expect(page.get_by_role("img", name="The logo in use")).to_be_visible()
        await expect(page.get_by_role("button", name="Reset the logo to its default")).to_be_visible()
        assert await axe_violations(page) == []
        await _no_sideways_scroll(page)
        await screenshot(page, f"settings-brand-{width}")

        # the public pages in the new look
        settings = make_settings(db, base_url=live.url)
        async with db.sessions() as session:
            subscriber_id = (await session.scalars(select(Subscriber.id).where(Subscriber.status == "confirmed")
                                                   .order_by(Subscriber.id).limit(1))).one()
        await page.goto(unsubscribe_url(settings, Tokens(settings), subscriber_id))
        await expect(page.locator(".site-header .brand")).to_have_text("Lisbon Calm Clinic")
        await expect(page.locator(".site-header img.logo")).to_be_visible()
        colour = await page.evaluate("getComputedStyle(document.querySelector('.site-header .brand')).color")
        assert colour == "rgb(138, 28, 74)"
        assert await axe_violations(page) == []
        await _no_sideways_scroll(page)
        if width == 390:
            await screenshot(page, "preference-centre-phone")
    finally:
        await context.close()
