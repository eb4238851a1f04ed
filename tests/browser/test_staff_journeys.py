"""What staff and newcomers do, clicked through in a real browser at desktop (1280 px) and phone
(390 px) width against one real `tidings serve` for the module (its in-process worker sends to
the test SMTP server): the pages that end a visitor's or reader's journey lead back to the blog,
the auto-reply and welcome read well (the name, topics in their order), staff read a phone
number as it was typed; bulk actions on inquiries and subscribers, result counts and an Export
that hides when nothing matches; an invitation by email, the outbox searched (and that search
in the audit log, in words), the lockout said as such; a campaign's test send (post/redirect/
get), Duplicate, Delete, Send now watched to a clean end and its skips explained; and the digest
in dark mode, its text and links readable (WCAG AA contrast). Every page new to the browser
suite is axe-clean and none scrolls sideways."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import axe_violations
from tests.browser.helpers import (
    STAFF_EMAIL,
    STAFF_PASSWORD,
    html_of,
    load_demo_data,
    sign_in,
    sign_in_with_cookie,
    to,
    wait_for_mail,
)
from tests.conftest import TEST_SECRET, Database
from tests.factories import make_staff, text_of
from tests.live import LiveServer, tidings_env
from tests.smtp import SmtpServer

BLOG = "https://blog.clinic.test"
WIDTHS = pytest.mark.parametrize("width", [1280, 390])


@pytest.fixture(scope="module")
def staff_live(database: Database, smtp_server: SmtpServer, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[LiveServer]:
    """One server for the module (each test's data is emptied after it, as ever): with a blog
    address for the ways back, and sending campaigns at 150 messages/s (the demo's 276 readers
    in about two seconds, long enough to see the progress, short enough for the suite)."""
    env = tidings_env(database.url, TEST_SECRET, SMTP_URL=smtp_server.url, FORM_MIN_SECONDS="0",
                      MAIL_FROM="Clinic <hello@clinic.test>", STAFF_INBOX="staff@clinic.test", ORG_NAME="Clinic",
                      SEND_RATE="150", BLOG_URL=BLOG)
    server = LiveServer(env, tmp_path_factory.mktemp("staff-journeys") / "serve.log")
    try:
        # Every test of the module needs it: wait longer than a test's own server would on a busy
        # machine (a readiness wait, not a timing assertion), and stop it even if it never answered.
        server.start(timeout=90)
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def screen(browser: Any, width: int, **options: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": width, "height": 900 if width > 400 else 844},
                                        accept_downloads=True, **options)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def fits(page: Any, what: str) -> None:
    """Nothing wider than the screen, and no serious axe violation."""
    overflow = await page.evaluate("document.scrollingElement.scrollWidth - innerWidth")
    assert overflow <= 0, f"{what} scrolls sideways by {overflow}px"
    assert await axe_violations(page) == [], what


def accept_dialogs(page: Any) -> None:
    """The admin's data-confirm buttons ask first; the person says yes."""
    page.on("dialog", lambda dialog: dialog.accept())


# -- a visitor and a reader, then staff -----------------------------------------------------------


@WIDTHS
async def test_visitor_and_reader_end_on_pages_back_to_the_blog_and_staff_read_the_number_as_typed(
        browser: Any, staff_live: LiveServer, db: Database, smtp: SmtpServer, width: int) -> None:
    live = staff_live
    async with screen(browser, width) as page:
        await page.goto(f"{live.url}/contact")
        await page.get_by_label("Your name").fill("Maria Lopez")
        await page.get_by_label("Email address").fill("maria@example.org")
        await page.get_by_label("What would you like to talk about?").select_option(label="Anxiety")
        await page.get_by_label("Phone", exact=True).check()
        await page.locator("#inquiry-phone").fill("+49 170 1234567")
        await page.get_by_label("Your message").fill("Could you call me about a first consultation?")
        await page.get_by_label("You may contact me about my inquiry.").check()
        await page.get_by_role("button", name="Send my inquiry").click()
        await page.wait_for_url(f"{live.url}/contact/thanks")
        back = page.get_by_role("link", name="Back to the Clinic blog")
        await expect(back).to_have_attribute("href", BLOG)
        await fits(page, "contact/thanks")

        (reply,) = await wait_for_mail(smtp, to("maria@example.org"))
        assert reply.message["Subject"] == "We have received your message \u2013 Clinic"
        assert "Hello Maria Lopez," in text_of(reply.message)  # greeted by name, not "Hello,"
        assert "we will call you on the number you gave us" in text_of(reply.message)
        (notice,) = await wait_for_mail(smtp, to("staff@clinic.test"))
        assert "+49 170 1234567" in text_of(notice.message)

        await page.goto(f"{live.url}/subscribe")
        await page.get_by_label("Email address").fill("sam.reader@example.org")
        await page.get_by_label("Name").fill("Sam Reader")
        await page.get_by_label("PTSD").check()  # ticked before "anxiety", which the list shows first
        await page.get_by_label("anxiety").check()
        await page.get_by_role("button", name="Subscribe").click()
        await page.wait_for_url(f"{live.url}/subscribe/thanks")
        await expect(page.get_by_role("link", name="Back to the Clinic blog")).to_have_attribute("href", BLOG)
        await fits(page, "subscribe/thanks")
        (confirmation,) = await wait_for_mail(smtp, to("sam.reader@example.org"))
        link = re.search(re.escape(live.url) + r"/confirm/\S+", text_of(confirmation.message))
        assert link, text_of(confirmation.message)
        await page.goto(link.group(0))
        await page.get_by_role("button", name="Confirm my subscription").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
        await expect(page.get_by_role("link", name="Back to the Clinic blog")).to_have_attribute("href", BLOG)
        await fits(page, "confirmed")
        welcome = (await wait_for_mail(smtp, to("sam.reader@example.org"), count=2))[1]
        assert text_of(welcome.message).startswith("Welcome, Sam Reader!")
        assert "about: anxiety, PTSD." in text_of(welcome.message)  # the list's order, not the clicks'

    await make_staff(db, STAFF_EMAIL, password=STAFF_PASSWORD)
    async with screen(browser, width) as page:
        await sign_in_with_cookie(page, live, db)
        await page.goto(f"{live.url}/admin/inquiries?q=Maria")
        await page.get_by_role("link", name="Maria Lopez").click()
        phone = page.get_by_role("link", name="+49 170 1234567")  # as typed, and a tel: link
        await expect(phone).to_have_attribute("href", re.compile(r"^tel:\+491701234567$"))
        await fits(page, "inquiry with a phone number")


# -- lists ---------------------------------------------------------------------------------------


@WIDTHS
async def test_staff_act_on_inquiries_and_subscribers_in_bulk_with_counts_and_export(
        browser: Any, staff_live: LiveServer, db: Database, width: int) -> None:
    live = staff_live
    await load_demo_data(db, live)
    async with screen(browser, width) as page:
        accept_dialogs(page)
        await sign_in_with_cookie(page, live, db)
        await page.goto(f"{live.url}/admin/inquiries")
        await expect(page.locator(".result-count")).to_have_text("6 inquiries")
        await expect(page.get_by_role("link", name="Export 6 as CSV")).to_be_visible()
        await page.get_by_label("Select the inquiry from Jonas Berg").check()
        await page.get_by_label("Select the inquiry from Sofia Rossi").check()
        await page.get_by_label("With the selected inquiries:").select_option("contacted")
        await page.get_by_role("button", name="Set status").click()
        await expect(page.get_by_role("status").filter(has_text="set to")).to_contain_text(
            re.compile(r"^(2 inquiries set to “contacted”\.|1 inquiry set to “contacted”\. 1 left as it was)"))
        await page.get_by_label("Select the inquiry from Jonas Berg").check()
        await page.get_by_role("button", name="Mark as spam").click()
        await expect(page.get_by_role("status").filter(has_text="set to")).to_have_text("1 inquiry set to “spam”.")
        await expect(page.locator("tr", has_text="Jonas Berg").locator(".badge")).to_have_text("spam")
        await fits(page, "inquiries after bulk actions")
        await page.get_by_label("Search").fill("no such words anywhere")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.locator(".result-count")).to_have_text("0 inquiries")
        await expect(page.get_by_role("link", name=re.compile("^Export"))).to_have_count(0)  # nothing to export
        await expect(page.get_by_text("No inquiries match.")).to_be_visible()

        await page.goto(f"{live.url}/admin/subscribers?status=confirmed")
        await expect(page.locator(".result-count")).to_have_text("276 subscribers")
        await expect(page.get_by_role("link", name="Export 276 as CSV")).to_be_visible()
        boxes = page.locator("input[name=ids]")
        picked = [await boxes.nth(i).get_attribute("aria-label") for i in range(3)]
        emails = [label.removeprefix("Select ") for label in picked if label]
        await boxes.nth(0).check()
        await boxes.nth(1).check()
        async with page.expect_download() as download:
            await page.get_by_role("button", name="Export as CSV").click()
        path = await (await download.value).path()
        rows = list(csv.DictReader(io.StringIO(await asyncio.to_thread(Path(path).read_text, encoding="utf-8-sig"))))
        assert sorted(r["email"] for r in rows) == sorted(emails[:2])
        await page.reload()  # (a download leaves the boxes as they were)
        await boxes.nth(0).uncheck()
        await boxes.nth(1).uncheck()
        await page.get_by_label(f"Select {emails[0]}").check()
        await page.get_by_role("button", name="Unsubscribe").click()
        await expect(page.get_by_role("status").filter(has_text="unsubscribed")).to_have_text(
            "1 subscriber unsubscribed.")
        await page.get_by_label(f"Select {emails[1]}").check()
        await page.get_by_label("Reason to suppress").fill("asked by phone never to be mailed")
        await page.get_by_role("button", name="Suppress").click()
        await expect(page.get_by_role("status").filter(has_text="suppressed")).to_have_text(
            "1 subscriber suppressed.")
        await expect(page.locator(".result-count")).to_have_text("274 subscribers")  # the filter is kept
        await fits(page, "subscribers after bulk actions")
        await page.get_by_label("Search").fill("nobody@nowhere.invalid")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.locator(".result-count")).to_have_text("0 subscribers")
        await expect(page.get_by_role("link", name=re.compile("^Export"))).to_have_count(0)


# -- staff accounts: invitation, outbox search, audit words, lockout ------------------------------


@WIDTHS
async def test_an_invited_colleague_signs_in_the_outbox_finds_the_mail_and_a_lockout_says_so(
        browser: Any, staff_live: LiveServer, db: Database, smtp: SmtpServer, width: int) -> None:
    live = staff_live
    await load_demo_data(db, live)
    colleague, password = "sam.staff@clinic.test", "a colleague's long password"
    async with screen(browser, width) as admin:
        await sign_in(admin, live)  # the real form: the audit log below shows "Signed in"
        await admin.get_by_role("navigation", name="Admin").get_by_role("link", name="Users").click()
        await admin.get_by_label("Email", exact=True).fill(colleague)
        await admin.get_by_label("Name (optional)").fill("Sam Staff")
        await admin.get_by_role("button", name="Create account and email the link").click()
        notice = admin.locator(".notice[role=status]")
        await expect(notice).to_contain_text(f"We have emailed {colleague} an invitation")
        await fits(admin, "users after an invitation")

        (invitation,) = await wait_for_mail(smtp, to(colleague))
        assert invitation.message["Subject"] == "Your staff account at Clinic"
        body = text_of(invitation.message)
        assert body.startswith("Hello Sam Staff,")
        assert f"Demo admin has given you a staff account (staff) at Clinic, for {colleague}." in body
        link = re.search(re.escape(live.url) + r"/admin/\S+", body)
        assert link and "/admin/login" not in link.group(0), body

        async with screen(browser, width) as page:
            await page.goto(link.group(0))
            await page.get_by_label("New password").fill(password)
            await page.get_by_label("Repeat it").fill(password)
            await page.get_by_role("button", name="Set password and sign in").click()
            await page.wait_for_url(f"{live.url}/admin/")
            await page.get_by_role("button", name="Sign out").click()
            for _ in range(5):
                await page.get_by_label("Email").fill(colleague)
                await page.get_by_label("Password").fill("not the password at all")
                await page.get_by_role("button", name="Sign in").click()
                await expect(page.get_by_role("alert")).to_contain_text("did not work")
            await page.get_by_label("Email").fill(colleague)
            await page.get_by_label("Password").fill(password)  # the right one, now too late
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("alert")).to_contain_text(re.compile(
                r"This account is locked after 5 failed sign-ins, until \d\d:\d\d UTC \(in 1[45] minutes\)\. "
                r"Try again then, reset your password by email, or ask an admin to unlock it\."))
            assert page.url.startswith(f"{live.url}/admin/login")
            await fits(page, "the lockout")

        await admin.get_by_role("navigation", name="Admin").get_by_role("link", name="Outbox").click()
        await admin.get_by_label("Search").fill("sam.staff")
        await admin.get_by_role("button", name="Search", exact=True).click()
        await expect(admin.locator(".result-count")).to_have_text("1 message")
        await expect(admin.get_by_role("link", name="Your staff account at Clinic")).to_be_visible()
        await fits(admin, "outbox search")
        await admin.get_by_role("link", name="Your staff account at Clinic").click()
        await fits(admin, "an outbox message")

        await admin.get_by_role("navigation", name="Admin").get_by_role("link", name="Audit log").click()
        log = admin.locator("table.list tbody")
        for words in ("Searched the outbox", "Invited a staff member", "Failed to sign in", "Signed in"):
            await expect(log.get_by_text(words, exact=True).first).to_be_visible()
        text = await log.inner_text()
        for code in ("outbox_search", "user_invite", "sign_in_failed", "staff_user "):
            assert code not in text
        await fits(admin, "audit log")


# -- a campaign from test send to its end, then its copy deleted; the digest in dark mode ---------


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fore: tuple[float, float, float], back: tuple[float, float, float]) -> float:
    lighter, darker = sorted((_luminance(fore), _luminance(back)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


COLOURS = """(selector) => [...document.querySelectorAll(selector)]
  .filter(e => e === document.body || (e.offsetParent && e.innerText.trim()))
  .map(e => {
    const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
    let back = e, bg = [0, 0, 0, 0];
    while (back) {
      bg = rgb(getComputedStyle(back).backgroundColor);
      if (bg.length === 3 || bg[3] > 0) break;
      back = back.parentElement;
    }
    return {text: e.innerText.trim().slice(0, 40), fore: rgb(getComputedStyle(e).color).slice(0, 3),
            back: back ? bg.slice(0, 3) : [255, 255, 255]};
  })"""


async def check_dark_mode(browser: Any, html: str, width: int) -> None:
    """The email as a mail app in dark mode shows it: a dark page, and every paragraph, heading
    and link at least 4.5:1 against what is behind it (WCAG AA for body text)."""
    async with screen(browser, width, color_scheme="dark") as page:
        await page.set_content(html)
        assert await page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
        (body,) = await page.evaluate(COLOURS, "body")
        assert _luminance(tuple(body["back"])) < 0.05, body  # the dark styles apply
        seen = await page.evaluate(COLOURS, "p, h1, h2, h3, li, td, a")
        assert any(s for s in seen if s["text"]) and len(await page.locator("a").all()) >= 2
        weak = [(s["text"], round(contrast(tuple(s["fore"]), tuple(s["back"])), 2)) for s in seen
                if contrast(tuple(s["fore"]), tuple(s["back"])) < 4.5]
        assert weak == [], weak
        assert await page.evaluate("document.scrollingElement.scrollWidth - innerWidth") <= 0


@WIDTHS
async def test_a_campaign_is_tested_duplicated_deleted_sent_to_a_clean_end_and_its_skips_explained(
        browser: Any, staff_live: LiveServer, db: Database, smtp: SmtpServer, width: int) -> None:
    live = staff_live
    await load_demo_data(db, live)
    async with screen(browser, width) as page:
        accept_dialogs(page)
        await sign_in_with_cookie(page, live, db)
        await page.goto(f"{live.url}/admin/campaigns/new")
        await page.get_by_label("Subject", exact=True).fill("One article only")
        articles = page.locator("input[name=article]")
        for box in (await articles.all())[1:]:  # one article: readers of other topics are skipped
            await box.uncheck()
        await page.get_by_role("button", name="Create draft").click()
        await expect(page.get_by_role("status")).to_have_text("Draft created.")
        campaign_url = page.url.split("?")[0]

        await page.get_by_label("Send a test to").fill("me@example.org")
        await page.get_by_role("button", name="Send test").click()
        await expect(page.get_by_role("status")).to_have_text(
            "Test sent to me@example.org. It may take a minute to arrive.")
        assert page.url.startswith(campaign_url) and "/test" not in page.url  # post/redirect/get
        await page.reload()  # sends nothing again
        (test,) = await wait_for_mail(smtp, to("me@example.org"))
        assert len(await wait_for_mail(smtp, to("me@example.org"))) == 1
        await check_dark_mode(browser, html_of(test.message), width)

        await page.get_by_role("button", name="Duplicate").click()
        await expect(page.get_by_role("status")).to_have_text(
            "A copy, as a new draft: change what you like, then send it.")
        copy_url = page.url.split("?")[0]
        assert copy_url != campaign_url
        await page.get_by_role("button", name="Delete draft").click()
        await expect(page.locator(".notice[role=status]")).to_have_text("Draft deleted.")
        await expect(page.locator(".result-count")).to_have_text("2 campaigns")  # the demo's draft and ours
        assert (await page.goto(copy_url)).status == 404
        await page.goto(campaign_url)

        await page.get_by_role("button", name="Send now").click()
        status, live_state = page.locator("h1 [data-field=status]"), page.locator("[data-field=state]")
        while await status.inner_text() == "sending":  # every moment a true sentence, updated in place
            shown = await live_state.inner_text()
            assert shown.startswith(("Queued for ", "Sending: ", "All ", "Finished: ")), shown
            await page.wait_for_timeout(100)
        await expect(status).to_have_text("sent", timeout=30_000)
        state = await page.locator("[data-field=state]").inner_text()
        found = re.fullmatch(r"Finished: (\d+) sent, 0 failed, (\d+) skipped\.", state)
        assert found and int(found.group(1)) + int(found.group(2)) == 276 and int(found.group(2)) > 0, state
        for gone in ("Pause", "Cancel campaign", "Send now", "Send test"):
            await expect(page.get_by_role("button", name=gone, exact=True)).to_have_count(0)
        await page.get_by_role("link", name="why").click()
        skips = page.locator("#skipped")
        await expect(skips).to_contain_text(f"{found.group(2)} recipients were skipped (never sent, and not "
                                            "counted as failed):")
        await expect(skips.locator("li")).to_have_text(
            f"{found.group(2)}: none of its articles is on the topics they chose")
        await skips.get_by_role("link", name="Show who was skipped").click()
        rows = skips.locator("tbody tr")
        await expect(rows.first.locator("td").nth(1)).to_have_text("none of its articles is on the topics they chose")
        assert await rows.count() == min(int(found.group(2)), 100)
        await fits(page, "a sent campaign with its skips")
