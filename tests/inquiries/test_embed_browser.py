"""The blog's copy-paste form in a real browser (headless Chromium): enhanced by
tidings-embed.js from another origin, and as plain HTML with JavaScript off."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from service.app import create_app
from tests.conftest import Database, make_settings
from tests.factories import ROOMY, stored_inquiries

pytestmark = pytest.mark.slow

SNIPPET = (Path(__file__).resolve().parents[2] / "docs" / "inquiries.md").read_text()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def blog_page(app_url: str, *, script: bool) -> str:
    """The snippet from docs/inquiries.md, as the blog would paste it."""
    start = SNIPPET.index("<!-- tidings inquiry form -->")
    end = SNIPPET.index("<!-- /tidings inquiry form -->")
    snippet = SNIPPET[start:end].replace("https://tidings.example.org", app_url)
    snippet = snippet.replace("```html", "").replace("```", "")
    if not script:
        snippet = snippet.split("<script")[0]
    return f"<!doctype html><html lang=en><meta charset=utf-8><title>Blog</title><body>{snippet}</body></html>"


@contextlib.contextmanager
def blog_server(pages: dict[str, str]) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = pages.get(self.path.split("?")[0], "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def app_server(db: Database, blog_origin: str) -> Iterator[str]:
    port = _port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(db, base_url=url, allowed_origins=(blog_origin,), form_rate_limit=ROOMY)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.asynccontextmanager
async def browser_page(browser: Any, *, javascript: bool = True) -> AsyncIterator[Any]:
    """A page in a context of its own, of the test process's one Chromium (tests/conftest.py)."""
    context = await browser.new_context(java_script_enabled=javascript)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def test_embedded_script_shows_errors_inline_then_thanks(browser: Any, db: Database) -> None:
    pages: dict[str, str] = {}
    with blog_server(pages) as blog, app_server(db, blog) as app:
        pages["/articles/ketamine"] = blog_page(app, script=True)
        async with browser_page(browser) as page:
            await page.goto(f"{blog}/articles/ketamine?utm_source=newsletter&utm_campaign=spring")
            await page.wait_for_function(
                "document.querySelector('input[name=form_token]') && "
                "document.querySelector('input[name=form_token]').value")
            await page.fill("#tidings-name", "Ana Souza")
            await page.fill("#tidings-email", "ana@example.org")
            await page.select_option("#tidings-topic", "anxiety")
            await page.check("#tidings-consent")
            await page.click("button[type=submit]")
            await page.wait_for_selector(".tidings-error")
            message = page.locator("#tidings-message")
            assert await message.get_attribute("aria-invalid") == "true"
            assert "tidings-error-message" in (await message.get_attribute("aria-describedby") or "")
            assert await page.text_content("#tidings-error-message") == "Please enter your message"
            assert await page.evaluate("document.activeElement.id") == "tidings-message"
            assert await stored_inquiries(db) == []

            await message.fill("Could ketamine-assisted therapy help with my anxiety?")
            await page.click("button[type=submit]")
            await page.wait_for_selector(".tidings-thanks")
            assert "Thank you" in (await page.text_content(".tidings-thanks") or "")
            assert await page.evaluate("document.activeElement.className") == "tidings-thanks"
    (inq,) = await stored_inquiries(db)
    assert inq.name == "Ana Souza" and inq.topic == "anxiety"
    assert inq.source_page == f"{blog}/articles/ketamine?utm_source=newsletter&utm_campaign=spring"
    assert (inq.utm_source, inq.utm_campaign) == ("newsletter", "spring")


async def test_plain_html_snippet_works_without_javascript(browser: Any, db: Database) -> None:
    pages: dict[str, str] = {}
    with blog_server(pages) as blog, app_server(db, blog) as app:
        pages["/contact-us"] = blog_page(app, script=False)
        async with browser_page(browser, javascript=False) as page:
            await page.goto(f"{blog}/contact-us")
            await page.fill("#tidings-name", "Ben Okafor")
            await page.fill("#tidings-email", "ben@example.org")
            await page.select_option("#tidings-topic", "PTSD")
            await page.fill("#tidings-message", "I would like to talk about treatment options.")
            await page.check("#tidings-consent")
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{app}/contact")
            assert "Almost done" in await page.content()
            assert await page.input_value("#inquiry-name") == "Ben Okafor"
            assert await stored_inquiries(db) == []
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{app}/contact/thanks")
            assert "What happens next" in await page.content()
    await asyncio.sleep(0)
    (inq,) = await stored_inquiries(db)
    assert inq.name == "Ben Okafor" and inq.topic == "PTSD"


async def test_contact_page_works_with_the_keyboard_alone_and_fits_a_phone(browser: Any, db: Database) -> None:
    with blog_server({}) as blog, app_server(db, blog) as app:
        async with browser_page(browser) as page:
            await page.set_viewport_size({"width": 360, "height": 740})
            await page.goto(f"{app}/contact")
            assert await page.evaluate("document.scrollingElement.scrollWidth") <= 360  # no sideways scrolling
            order = []
            for _ in range(14):
                await page.keyboard.press("Tab")
                order.append(await page.evaluate("document.activeElement.id || document.activeElement.tagName"))
            # skip link, every field in reading order, the button; the honeypot is never reached
            assert order[:10] == ["A", "inquiry-name", "inquiry-email", "inquiry-phone", "inquiry-topic",
                                  "inquiry-contact_method-email", "inquiry-message", "inquiry-consent",
                                  "inquiry-newsletter", "BUTTON"]
            assert "inquiry-website" not in order
            await page.focus("#inquiry-name")
            await page.keyboard.type("Ana Souza")
            await page.keyboard.press("Enter")  # submits with most fields missing
            await page.wait_for_selector(".error-summary")
            assert await page.evaluate("document.activeElement.classList.contains('error-summary')")
            await page.keyboard.press("Tab")  # the first link in the summary
            assert await page.evaluate("document.activeElement.getAttribute('href')") == "#inquiry-email"
            await page.keyboard.press("Enter")
            assert await page.evaluate("location.hash") == "#inquiry-email"
            assert await page.input_value("#inquiry-name") == "Ana Souza"
    assert await stored_inquiries(db) == []
