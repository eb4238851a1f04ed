"""Every admin page at phone width (390 px): nothing scrolls the page sideways, the menu stays one
compact row, and axe-core finds nothing serious. The same pages at desktop width (1280 px) are
checked by the admin sweep of tests/browser/test_accessibility.py, which visits them anyway."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import axe_violations, with_axe
from tests.browser.helpers import admin_pages, layout_problems, load_demo_data, sign_in_with_cookie
from tests.conftest import Database
from tests.live import LiveServer


async def test_no_admin_page_scrolls_sideways_on_a_phone(browser: Any, live: LiveServer, db: Database) -> None:
    await load_demo_data(db, live)
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    try:
        await with_axe(context)
        page = await context.new_page()
        await sign_in_with_cookie(page, live, db)
        wrong: dict[str, list[str]] = {}
        for path in await admin_pages(db):
            await page.goto(f"{live.url}{path}")
            if problems := await layout_problems(page):
                wrong[path] = problems
            assert await axe_violations(page) == [], path
        assert wrong == {}
    finally:
        await context.close()
