"""Pages as a person sees them in a real browser, served by a real `tidings serve`."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import axe_violations
from tests.live import LiveServer


async def test_not_found_page_is_readable_and_accessible(page: Any, live: LiveServer) -> None:
    response = await page.goto(f"{live.url}/no-such-page")
    assert response.status == 404
    assert await page.inner_text("h1") == "Page not found"
    assert await axe_violations(page) == []
