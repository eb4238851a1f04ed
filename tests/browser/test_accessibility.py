"""axe-core on every public page and every admin page, as a browser renders them from a
real `tidings serve`: no serious or critical violation anywhere. The public pages are checked
twice: on a desktop and on a phone-sized screen (where reflow and contrast can differ); the admin
pages here at desktop width, where neither they nor their menu may scroll sideways or wrap (at
phone width in tests/browser/test_admin_phone.py).

AXE_IMPACTS=minor,moderate,serious,critical widens the check (it passes today, too)."""

from __future__ import annotations

import os
import time
from typing import Any

from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from service.bounces.models import BounceEvent
from service.campaigns.models import Campaign
from service.campaigns.queries import start_campaign
from service.db import transaction, utcnow
from service.inquiries.models import Inquiry
from service.inquiries.queries import flag_inquiry_bounced
from service.newsletter.models import Subscriber
from service.newsletter.tokens import confirm_url, unsubscribe_url
from service.privacy.access import access_url
from service.tokens import Tokens
from tests.browser.conftest import axe_violations, with_axe
from tests.browser.helpers import admin_pages, layout_problems, load_demo_data, sign_in_with_cookie
from tests.conftest import TEST_SECRET, Database, make_settings
from tests.live import LiveServer

IMPACTS = tuple(os.environ.get("AXE_IMPACTS", "serious,critical").split(","))


class EightDaysAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 8 * 24 * 3600


class Audit:
    """Visits pages and collects axe violations (and, once `layout` is set, the admin layout's
    problems) by page name, so one run reports every page."""

    def __init__(self, page: Any, live: LiveServer) -> None:
        self.page, self.live, self.found = page, live, {}  # type: ignore[var-annotated]
        self.layout = False
        self.visited: set[str] = set()

    async def check(self, name: str, heading: str) -> None:
        h1 = await self.page.inner_text("h1")
        assert heading in h1, f"{name}: expected a page headed {heading!r}, got {h1!r}"
        assert await self.page.title(), f"{name}: no title"
        await self.check_without_heading(name)

    async def check_without_heading(self, name: str) -> None:
        violations = await axe_violations(self.page, impacts=IMPACTS)
        if violations:
            self.found[name] = violations
        if self.layout and (problems := await layout_problems(self.page)):
            self.found[f"{name} (layout)"] = problems

    async def visit(self, name: str, path: str, heading: str, status: int = 200) -> None:
        url = path if path.startswith("http") else f"{self.live.url}{path}"
        response = await self.page.goto(url)
        assert response.status == status, f"{name}: {response.status}"
        self.visited.add(path)
        await self.check(name, heading)


async def first(db: Database, model: Any, *where: Any) -> Any:
    async with db.sessions() as session:
        return (await session.scalars(select(model).where(*where).order_by(model.id).limit(1))).one()


async def audit_public_pages(page: Any, live: LiveServer, db: Database) -> dict[str, Any]:
    await load_demo_data(db, live)
    await with_axe(page.context)
    settings = make_settings(db, base_url=live.url)
    tokens = Tokens(settings)
    audit = Audit(page, live)

    await audit.visit("contact", "/contact", "Let's get your project started!")
    await page.get_by_role("button", name="Send my inquiry").click()
    await audit.check("contact with errors", "Let's get your project started!")
    await page.get_by_label("Your name").fill("Alex Example")
    await page.get_by_label("Email address").fill("alex@example.org")
    await page.get_by_label("What would you like to talk about?").select_option(label="Other")
    await page.get_by_label("Your message").fill("When is your next information evening?")
    await page.get_by_label("You may contact me about my inquiry.").check()
    await page.get_by_role("button", name="Send my inquiry").click()
    await page.wait_for_url(f"{live.url}/contact/thanks")
    await audit.check("contact/thanks", "Thank you")

    await audit.visit("subscribe", "/subscribe", "Subscribe to our newsletter")
    await page.get_by_role("button", name="Subscribe").click()
    await audit.check("subscribe with errors", "Subscribe to our newsletter")
    await page.get_by_label("Email address").fill("alex@example.org")
    await page.get_by_role("button", name="Subscribe").click()
    await page.wait_for_url(f"{live.url}/subscribe/thanks")
    await audit.check("subscribe/thanks", "Please check your inbox")

    pending = await first(db, Subscriber, Subscriber.status == "pending", Subscriber.signup_source == "demo")
    link = confirm_url(settings, tokens, pending.id, pending.signup_at)
    await audit.visit("confirm", link, "Confirm your subscription")
    await page.get_by_role("button", name="Confirm my subscription").click()
    await audit.check("confirm result", "You are subscribed")
    old = URLSafeTimedSerializer(TEST_SECRET, salt="tidings.confirm", signer=EightDaysAgo).dumps(pending.id)
    await audit.visit("expired confirmation link", f"/confirm/{old}", "This confirmation link has expired", 410)

    confirmed = await first(db, Subscriber, Subscriber.status == "confirmed")
    centre = unsubscribe_url(settings, tokens, confirmed.id)
    await audit.visit("preference centre", centre, "Your newsletter preferences")
    await page.get_by_role("button", name="Email me my data").click()
    await audit.check("access requested", "Check your inbox")
    await audit.visit("access", access_url(settings, tokens, confirmed.id), "What we hold about you")
    expired = URLSafeTimedSerializer(TEST_SECRET, salt="tidings.access", signer=EightDaysAgo).dumps(confirmed.id)
    await audit.visit("expired access link", f"/access/{expired}", "This link has expired", 410)
    await audit.visit("preference centre", centre, "Your newsletter preferences")
    await page.get_by_role("button", name="Unsubscribe").click()
    await audit.check("unsubscribed", "You are unsubscribed")
    await audit.visit("preference centre (unsubscribed)", centre, "Your newsletter preferences")

    async with transaction(db.sessions) as session:
        campaign = await first(db, Campaign)
        await start_campaign(session, campaign_id=campaign.id, now=utcnow())
    await audit.visit("archive", "/archive", "Digest archive")
    await audit.visit("archive item", f"/archive/{campaign.slug}", campaign.subject)
    await audit.visit("404", "/no-such-page", "Page not found", 404)
    return audit.found


async def test_every_public_page_has_no_serious_accessibility_violation(page: Any, live: LiveServer,
                                                                         db: Database) -> None:
    assert await audit_public_pages(page, live, db) == {}


async def test_public_pages_on_a_phone_sized_screen_have_no_serious_violation(
        browser: Any, live: LiveServer, db: Database) -> None:
    # (axe needs JavaScript in the page, so this phone runs it; the pages use none themselves)
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        assert await audit_public_pages(await context.new_page(), live, db) == {}
    finally:
        await context.close()


async def test_the_admin_pages_have_no_serious_accessibility_violation_and_fit_a_desktop(
        browser: Any, live: LiveServer, db: Database) -> None:
    await load_demo_data(db, live)
    context = await browser.new_context(viewport={"width": 1280, "height": 844})
    try:
        await with_axe(context)
        await _audit_admin_pages(await context.new_page(), live, db)
    finally:
        await context.close()


async def _audit_admin_pages(page: Any, live: LiveServer, db: Database) -> None:
    audit = Audit(page, live)
    await audit.visit("login", "/admin/login", "Sign in")
    await page.get_by_label("Email").fill("admin@example.org")
    await page.get_by_label("Password").fill("not the right password")
    await page.get_by_role("button", name="Sign in").click()
    await audit.check("login failed", "Sign in")
    # a minted cookie: the form's sign-in is the journeys' subject, and ~0.5 s of the server's argon2
    await sign_in_with_cookie(page, live, db)
    audit.layout = True
    audit.visited.add("/admin/")
    await audit.check("dashboard", "Dashboard")
    everything = await admin_pages(db)  # queues a message with a long address before the outbox is seen
    inquiry = await first(db, Inquiry, Inquiry.name == "Sofia Rossi")
    subscriber = await first(db, Subscriber)
    campaign = await first(db, Campaign)
    async with transaction(db.sessions) as session:  # a report about each, so their tables are drawn
        now = utcnow()
        session.add(BounceEvent(event_key="a11y-1", kind="hard", source="mailbox", recipient=subscriber.email,
                                recipient_key=subscriber.email_key, occurred_at=now, received_at=now, status="5.1.1",
                                diagnostic="550 5.1.1 user unknown", outcome="suppressed", subscriber_id=subscriber.id,
                                campaign_id=campaign.id))
        session.add(BounceEvent(event_key="a11y-2", kind="hard", source="lmtp", recipient=inquiry.email,
                                recipient_key=inquiry.email.lower(), occurred_at=now, received_at=now,
                                diagnostic="550 no such user", outcome="flagged", inquiry_id=inquiry.id))
        await flag_inquiry_bounced(session, inquiry_id=inquiry.id, diagnostic="550 no such user", now=now)
    for name, path, heading in (
        ("inquiries", "/admin/inquiries", "Inquiries"),
        ("inquiries filtered", "/admin/inquiries?q=parking&status=new", "Inquiries"),
        ("inquiry detail", f"/admin/inquiries/{inquiry.id}", "Sofia Rossi"),
        ("erase an inquiry", f"/admin/inquiries/{inquiry.id}/erase", "Erase inquiry"),
        ("subscribers", "/admin/subscribers", "Subscribers"),
        ("subscriber detail", f"/admin/subscribers/{subscriber.id}", subscriber.email),
        ("outbox", "/admin/outbox", "Outbox"),
        ("bounces", "/admin/bounces", "Bounces and complaints"),
        ("bounces filtered", "/admin/bounces?kind=hard", "Bounces and complaints"),
        ("audit", "/admin/audit", "Audit log"),
        ("users", "/admin/users", "Users"),
        ("account", "/admin/account", "Your account"),
        ("campaigns", "/admin/campaigns", "Campaigns"),
        ("new campaign", "/admin/campaigns/new", "New campaign"),
        ("campaign", f"/admin/campaigns/{campaign.id}", campaign.subject),
        ("campaign preview", f"/admin/campaigns/{campaign.id}/preview", "Preview"),
        ("articles", "/admin/articles", "Articles"),
        ("reports", "/admin/reports", "Reports"),
        ("campaign report", f"/admin/reports/campaigns/{campaign.id}", f"Report: {campaign.subject}"),
        ("content report", "/admin/reports/content", "Content report"),
        ("lead sources", "/admin/reports/leads", "Lead sources"),
        ("audience", "/admin/reports/audience", "Audience"),
    ):
        await audit.visit(name, path, heading)
    await audit.visit("digest rules", "/admin/digest-rules", "Recurring digests")
    await audit.visit("subscribers, newest page", "/admin/subscribers?status=confirmed", "Subscribers")
    pager = page.get_by_role("navigation", name="Subscriber list pages")
    await pager.get_by_role("link", name="Older »").click()
    await audit.check("subscribers, older page", "Subscribers")
    assert "status=confirmed" in page.url and "after=" in page.url
    await pager.get_by_role("link", name="« Newest").click()
    await audit.check("subscribers, back to the newest", "Subscribers")
    assert page.url.endswith("/admin/subscribers?status=confirmed")
    await audit.visit("not found", "/admin/inquiries/987654", "Not found", 404)
    assert "There is no such inquiry." in await page.inner_text("main")
    for path in everything:  # the rest of the admin, as the phone sweep sees it
        if path not in audit.visited:
            await page.goto(f"{live.url}{path}")
            await audit.check_without_heading(path)
    assert audit.found == {}


async def test_german_pages_read_german_and_have_no_serious_violation(browser: Any, live: LiveServer,
                                                                      db: Database) -> None:
    """The forms in German (`?lang=`, as a German blog would link them), at desktop and phone width:
    `<html lang="de">`, German labels and errors, and axe as clean as the English pages."""
    for viewport in ({"width": 1280, "height": 900}, {"width": 390, "height": 844}):
        context = await browser.new_context(viewport=viewport)
        try:
            await with_axe(context)
            page = await context.new_page()
            audit = Audit(page, live)
            await audit.visit("kontakt", "/contact?lang=de", "Lassen Sie uns gemeinsam beginnen!")
            assert await page.get_attribute("html", "lang") == "de"
            await page.get_by_role("button", name="Anfrage senden").click()
            await audit.check("kontakt mit Fehlern", "Lassen Sie uns gemeinsam beginnen!")
            assert "Es gibt 5 Probleme bei Ihren Angaben" in await page.inner_text(".error-summary")
            await page.get_by_label("Ihr Name").fill("Alex Beispiel")
            await page.get_by_label("E-Mail-Adresse").fill("alex@example.org")
            await page.get_by_label("Worüber möchten Sie sprechen?").select_option(label="Other")
            await page.get_by_label("Ihre Nachricht").fill("Wann ist Ihr nächster Informationsabend?")
            await page.get_by_label("Sie dürfen mich zu meiner Anfrage kontaktieren.").check()
            await page.get_by_role("button", name="Anfrage senden").click()
            await page.wait_for_url(f"{live.url}/contact/thanks?lang=de")
            await audit.check("kontakt/danke", "Vielen Dank")
            await audit.visit("anmeldung", "/subscribe?lang=de", "Melden Sie sich für unseren Newsletter an")
            await page.get_by_role("button", name="Anmelden").click()
            await audit.check("anmeldung mit Fehlern", "Melden Sie sich für unseren Newsletter an")
            assert audit.found == {}
        finally:
            await context.close()
