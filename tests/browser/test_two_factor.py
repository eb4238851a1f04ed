"""Two-factor sign-in in a real browser at desktop and phone width: a staff member sets it up
from their account page (the key read off the page, the code computed with pyotp as their phone
would), signs out, and signs in again with a code; every page of it is axe-clean and nothing
scrolls sideways."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest

from tests.browser.conftest import axe_violations, screenshot
from tests.browser.helpers import STAFF_EMAIL, STAFF_PASSWORD, sign_in_with_cookie
from tests.conftest import Database
from tests.factories import make_staff
from tests.live import LiveServer


async def _check(page: Any, what: str) -> None:
    assert await axe_violations(page) == [], what
    assert await page.evaluate("document.scrollingElement.scrollWidth - innerWidth") <= 0, what


@pytest.mark.parametrize("width", [1280, 390])
async def test_set_up_two_factor_then_sign_in_with_a_code(browser: Any, live: LiveServer, db: Database,
                                                          width: int) -> None:
    await make_staff(db, STAFF_EMAIL, password=STAFF_PASSWORD)
    context = await browser.new_context(viewport={"width": width, "height": 844})
    page = await context.new_page()
    try:
        await sign_in_with_cookie(page, live, db)  # the form's password step comes below, before the code
        await page.goto(f"{live.url}/admin/account")
        await page.get_by_role("link", name="Set up two-factor sign-in").click()
        await page.wait_for_url(f"{live.url}/admin/account/two-factor")
        assert await page.locator(".qr svg").is_visible()
        await _check(page, "set-up page")
        if width == 1280:
            await screenshot(page, "admin-two-factor")
        secret = (await page.locator("code.secret").inner_text()).replace(" ", "")
        totp = pyotp.TOTP(secret)
        await page.get_by_label("Code from your app").fill(totp.now())
        await page.get_by_role("button", name="Turn on two-factor sign-in").click()
        await page.get_by_role("heading", name="Your recovery codes").wait_for()
        assert await page.locator(".recovery-codes li").count() == 10
        await _check(page, "recovery codes")

        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(f"{live.url}/admin/login")
        await page.get_by_label("Email").fill(STAFF_EMAIL)
        await page.get_by_label("Password").fill(STAFF_PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{live.url}/admin/login/code")
        await _check(page, "code step")
        await page.get_by_label("Code").fill(totp.at(time.time() + 30))  # the next code: the last one is used
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{live.url}/admin/")
        assert await page.get_by_role("button", name="Sign out").is_visible()
    finally:
        await context.close()
