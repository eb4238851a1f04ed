"""A reader's two-page visit in a real browser: a digest's article link (with the campaign's utm
fields) first, the blog's contact page next; the embed script keeps the first touch in
sessionStorage and the inquiry arrives with the campaign in its attribution, with no cookie."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Database
from tests.factories import stored_inquiries
from tests.inquiries.test_embed_browser import app_server, blog_page, blog_server, browser_page

pytestmark = pytest.mark.slow


def article_page(app_url: str) -> str:
    return ("<!doctype html><html lang=en><meta charset=utf-8><title>Ketamine and depression</title><body>"
            "<h1>Ketamine and depression</h1><p><a id=contact href=/contact-us>Talk to us</a></p>"
            f'<script src="{app_url}/static/tidings-embed.js" defer></script></body></html>')


async def test_first_touch_utm_fields_travel_from_the_article_to_the_contact_page(browser: Any, db: Database) -> None:
    pages: dict[str, str] = {}
    with blog_server(pages) as blog, app_server(db, blog) as app:
        pages["/posts/ketamine/"] = article_page(app)
        pages["/contact-us"] = blog_page(app, script=True)
        async with browser_page(browser) as page:
            await page.goto(f"{blog}/posts/ketamine/?utm_source=newsletter&utm_medium=email&utm_campaign=spring")
            await page.wait_for_function("window.sessionStorage.getItem('tidings.visit') !== null")
            await page.click("#contact")
            await page.wait_for_url(f"{blog}/contact-us")
            await page.wait_for_function(
                "document.querySelector('input[name=form_token]') && "
                "document.querySelector('input[name=form_token]').value")
            await page.fill("#tidings-name", "Ana Souza")
            await page.fill("#tidings-email", "ana@example.org")
            await page.select_option("#tidings-topic", "depression")
            await page.fill("#tidings-message", "I read your article and would like to know more.")
            await page.check("#tidings-consent")
            await page.click("button[type=submit]")
            await page.wait_for_selector(".tidings-thanks")
            assert await page.context.cookies() == []  # nothing kept beyond the tab
    (inq,) = await stored_inquiries(db)
    assert (inq.utm_source, inq.utm_medium, inq.utm_campaign) == ("newsletter", "email", "spring")
    assert inq.source_page == f"{blog}/contact-us"
    # the article the reader came from (the content report counts it for that article)
    assert inq.referrer.startswith(f"{blog}/posts/ketamine/")


async def test_a_later_campaign_link_in_the_same_visit_does_not_replace_the_first_touch(browser: Any,
                                                                                        db: Database) -> None:
    pages: dict[str, str] = {}
    with blog_server(pages) as blog, app_server(db, blog) as app:
        pages["/posts/ketamine/"] = article_page(app)
        pages["/contact-us"] = blog_page(app, script=True)
        async with browser_page(browser) as page:
            await page.goto(f"{blog}/posts/ketamine/?utm_source=newsletter&utm_campaign=spring")
            await page.wait_for_function("window.sessionStorage.getItem('tidings.visit') !== null")
            await page.goto(f"{blog}/contact-us?utm_source=ads&utm_campaign=winter")
            await page.wait_for_function("document.querySelector('input[name=utm_campaign]') !== null")
            assert await page.eval_on_selector("input[name=utm_campaign]", "e => e.value") == "spring"
            assert await page.eval_on_selector("input[name=utm_source]", "e => e.value") == "newsletter"
