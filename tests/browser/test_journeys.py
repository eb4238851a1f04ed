"""The people who use Tidings, in a real browser (headless Chromium) against a real
`tidings serve` with its in-process worker, mail going to a real SMTP server: a visitor sends an
inquiry, a reader subscribes and confirms, staff work an inquiry. With and without JavaScript,
and by keyboard alone. Each step asserts what the person notices: texts, addresses, emails."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import expect

from tests.browser.conftest import screenshot
from tests.browser.helpers import link_in, load_demo_data, sign_in, to, wait_for_mail
from tests.conftest import Database
from tests.factories import make_staff, stored_inquiries, text_of
from tests.live import LiveServer
from tests.smtp import SmtpServer

STAFF_INBOX = "staff@clinic.test"


async def send_inquiry_with_errors_then_fixed(page: Any, live: LiveServer, email: str) -> None:
    """The contact form sent half-filled (errors shown inline and summarised), then corrected."""
    await page.goto(f"{live.url}/contact")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Let's get your project started!")
    await page.get_by_label("Your name").fill("Maria Lopez")
    await page.get_by_label("Email address").fill("maria@")
    await page.get_by_role("button", name="Send my inquiry").click()

    summary = page.get_by_role("alert")
    await expect(summary.get_by_role("heading")).to_have_text("There are 4 problems with your answers")
    await expect(page).to_have_title(re.compile(r"^Error: "))
    email_field = page.get_by_label("Email address")
    await expect(email_field).to_have_attribute("aria-invalid", "true")
    await expect(email_field).to_have_accessible_description(re.compile("This email address is not valid"))
    await expect(page.get_by_label("Your message")).to_have_accessible_description(re.compile("Please enter"))
    await expect(page.get_by_label("Your name")).to_have_value("Maria Lopez")  # answers are kept
    await expect(page.get_by_label("Your name")).not_to_have_attribute("aria-invalid", "true")

    await email_field.fill(email)
    await page.get_by_label("What would you like to talk about?").select_option(label="Anxiety")
    await page.get_by_label("Your message").fill("Could you tell me how the first consultation works?")
    await page.get_by_label("You may contact me about my inquiry.").check()
    await page.get_by_role("button", name="Send my inquiry").click()
    await page.wait_for_url(f"{live.url}/contact/thanks")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Thank you, your message has reached us")


async def test_visitor_sees_inline_errors_then_sends_an_inquiry_and_both_emails_arrive(
        page: Any, live: LiveServer, db: Database, smtp: SmtpServer) -> None:
    await page.goto(f"{live.url}/contact")
    await screenshot(page, "contact-form")
    await page.get_by_role("button", name="Send my inquiry").click()
    # focus moves to the error summary, whose links lead to the fields
    await expect(page.locator(".error-summary")).to_be_focused()
    await page.get_by_role("link", name="Please enter your email address").click()
    await expect(page.get_by_label("Email address")).to_be_focused()

    await send_inquiry_with_errors_then_fixed(page, live, "maria.lopez@example.org")
    (inquiry,) = await stored_inquiries(db)
    assert (inquiry.name, inquiry.email, inquiry.topic) == ("Maria Lopez", "maria.lopez@example.org", "anxiety")
    (staff,) = await wait_for_mail(smtp, to(STAFF_INBOX, "New inquiry"))
    assert staff.message["Subject"] == f"New inquiry #{inquiry.id} from Maria Lopez"
    assert f"{live.url}/admin/inquiries/{inquiry.id}" in text_of(staff.message)
    (reply,) = await wait_for_mail(smtp, to("maria.lopez@example.org"))
    assert reply.message["Subject"] == "We have received your message \u2013 Clinic"


async def subscribe_and_confirm(page: Any, live: LiveServer, smtp: SmtpServer, email: str) -> None:
    await page.goto(f"{live.url}/subscribe")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Name").fill("Sam Reader")
    await page.get_by_label("anxiety").check()
    await page.get_by_role("button", name="Subscribe").click()
    await page.wait_for_url(f"{live.url}/subscribe/thanks")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Please check your inbox")

    (confirmation,) = await wait_for_mail(smtp, to(email))
    await page.goto(link_in(confirmation.message, live, "/confirm/"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your subscription")
    await page.get_by_role("button", name="Confirm my subscription").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
    welcome = await wait_for_mail(smtp, to(email), count=2)
    assert "/unsubscribe/" in text_of(welcome[1].message)


async def test_reader_subscribes_confirms_from_the_email_and_gets_the_welcome(
        page: Any, live: LiveServer, smtp: SmtpServer) -> None:
    await subscribe_and_confirm(page, live, smtp, "sam.reader@example.org")


async def test_without_javascript_the_contact_form_and_the_signup_still_work(
        nojs_page: Any, live: LiveServer, db: Database, smtp: SmtpServer) -> None:
    await send_inquiry_with_errors_then_fixed(nojs_page, live, "no.script@example.org")
    assert [i.email for i in await stored_inquiries(db)] == ["no.script@example.org"]
    await wait_for_mail(smtp, to("no.script@example.org"))
    await subscribe_and_confirm(nojs_page, live, smtp, "no.script.reader@example.org")


async def tab_to(page: Any, selector: str, *, limit: int = 15) -> None:
    """Press Tab until the element is focused (it must be reachable by Tab alone)."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("(s) => document.activeElement === document.querySelector(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


async def test_the_contact_form_can_be_filled_and_sent_with_the_keyboard_alone(
        page: Any, live: LiveServer, db: Database) -> None:
    await page.goto(f"{live.url}/contact")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await tab_to(page, "#inquiry-name")
    await page.keyboard.type("Kim Keyboard")
    await page.keyboard.press("Tab")
    await page.keyboard.type("kim@example.org")
    await tab_to(page, "#inquiry-topic")
    await page.keyboard.type("Other")  # type-ahead picks the option
    await expect(page.get_by_label("What would you like to talk about?")).to_have_value("other")
    await tab_to(page, "#inquiry-contact_method-email")
    await page.keyboard.press("ArrowRight")  # radios: arrows move within the group
    await expect(page.get_by_label("Phone", exact=True)).to_be_checked()
    await tab_to(page, "#inquiry-message")
    await page.keyboard.type("Please call me about the next information evening.")
    await tab_to(page, "#inquiry-consent")
    await page.keyboard.press("Space")
    await expect(page.get_by_label("You may contact me about my inquiry.")).to_be_checked()
    await tab_to(page, "button[type=submit]")
    await page.keyboard.press("Enter")
    # phone chosen but no number given: the summary says so and takes the focus
    await expect(page.locator(".error-summary")).to_be_focused()
    await expect(page.get_by_role("alert")).to_contain_text("Please enter your phone number")
    await tab_to(page, "#inquiry-phone")  # the summary link is a Tab away; the field too
    await page.keyboard.type("+44 20 7946 0000")
    await tab_to(page, "button[type=submit]")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{live.url}/contact/thanks")
    assert [(i.name, i.phone, i.contact_method) for i in await stored_inquiries(db)] == [
        ("Kim Keyboard", "+44 20 7946 0000", "phone")]  # as typed


async def test_staff_signs_in_finds_the_inquiry_changes_its_status_and_sees_it_in_the_history(
        page: Any, live: LiveServer, db: Database) -> None:
    await load_demo_data(db, live)
    await sign_in(page, live)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    await page.get_by_role("navigation", name="Admin").get_by_role("link", name="Inquiries").click()
    await expect(page.get_by_role("row")).to_have_count(7)  # the header and six inquiries
    await screenshot(page, "admin-inquiries")

    await page.get_by_label("Search").fill("Jonas")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("row")).to_have_count(2)
    await page.get_by_role("link", name="Jonas Berg").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Jonas Berg")
    await expect(page.get_by_text("No changes or notes yet.")).to_be_visible()
    await screenshot(page, "admin-inquiry")
    await page.get_by_label("Status", exact=True).select_option("contacted")
    await page.get_by_role("button", name="Save status").click()
    await expect(page.get_by_role("status")).to_have_text("Status saved.")
    await expect(page.locator(".history li")).to_have_text(re.compile(r"admin@example\.org:\s+status new → contacted"))
    await expect(page.get_by_role("heading", level=1)).to_contain_text("contacted")


async def test_staff_account_made_with_the_admin_functions_can_sign_in(page: Any, live: LiveServer,
                                                                       db: Database) -> None:
    await make_staff(db, "helper@clinic.org", role="staff", password="a staff password here")
    await sign_in(page, live, "helper@clinic.org", "a staff password here")
    await expect(page.get_by_role("navigation", name="Admin").get_by_role("link", name="Users")).to_have_count(0)
