"""Pages as a person sees them in a real browser, served by a real `tidings serve`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import axe_violations
from tests.live import LiveServer


async def test_not_found_page_is_readable_and_accessible(page: Any, live: LiveServer) -> None:
    response = await page.goto(f"{live.url}/no-such-page")
    assert response.status == 404
    assert await page.inner_text("h1") == "Page not found"
    assert await axe_violations(page) == []


@pytest.mark.parametrize("width", [1280, 390])
async def test_a_newcomer_finds_the_way_from_the_start_page_to_the_admin(browser: Any, live: LiveServer,
                                                                         width: int) -> None:
    """On a fresh install: `/` links to everything; the sign-in page names the command that
    creates the first admin; "Forgot your password?" answers without saying whether the address
    has an account. No sideways scrolling, no serious axe violation, at desktop and phone width."""
    context = await browser.new_context(viewport={"width": width, "height": 900})
    page = await context.new_page()
    try:
        response = await page.goto(f"{live.url}/")
        assert response.status == 200 and await page.inner_text("h1") == "Clinic"
        for name in ("Send us a message", "Subscribe to the newsletter", "Read past newsletters", "Staff sign-in"):
            assert await page.get_by_role("link", name=name).is_visible()
        await _fits_and_is_accessible(page)
        await page.get_by_role("link", name="Staff sign-in").click()
        await page.wait_for_url(f"{live.url}/admin/login?next=/admin/")
        assert "There is no staff account yet" in await page.inner_text("main")
        assert "create-admin you@example.org" in await page.inner_text("code")
        await _fits_and_is_accessible(page)
        await page.get_by_role("link", name="Forgot your password?").click()
        assert await page.inner_text("h1") == "Forgot your password?"
        await _fits_and_is_accessible(page)
        await page.get_by_label("Email").fill("someone@clinic.test")
        await page.get_by_role("button", name="Email me a link").click()
        assert "If an active staff account has this address" in await page.inner_text("[role=status]")
        await _fits_and_is_accessible(page)
    finally:
        await context.close()


async def _fits_and_is_accessible(page: Any) -> None:
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px"
    assert await axe_violations(page) == []
