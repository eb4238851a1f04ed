"""Staff see what the mail world reported: the Bounces page (filter, pages, links, escaping,
signed-in staff only), a subscriber's bounce history, a campaign's bounce and complaint rates,
the dashboard's warning when the last campaign's rates are too high, and the inquiry flagged
"the address bounced: call them". Erasing a subscriber takes their reports off every page."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest

from service.bounces.models import BounceEvent
from service.db import utcnow
from service.inquiries.models import Inquiry
from service.mail.outbox import OutboxWorker
from service.mail.transport import SmtpTransport
from service.settings import RateLimit, Settings
from tests.bounces.helpers import event, record_one, token_of
from tests.conftest import Database, make_settings
from tests.factories import (
    add_inquiries,
    add_subscriber,
    inquiry_row,
    make_campaign,
    new_client,
    posted_id,
    sender_for,
    token_in,
)
from tests.smtp import SmtpServer

RETURN_PATH = "bounces+{token}@bounces.clinic.test"


@pytest.fixture
def settings(db: Database) -> Settings:
    return make_settings(db, return_path=RETURN_PATH, form_rate_limit=RateLimit(10_000, 600))


async def _send(db: Database, settings: Settings, smtp: SmtpServer, emails: list[str],
                subject: str = "November at the clinic") -> tuple[int, dict[str, tuple[int, str]]]:
    """A campaign sent to `emails`: its id, and address -> (subscriber id, return token)."""
    ids = {e: await add_subscriber(db, e) for e in emails}
    campaign_id = await make_campaign(db, settings, subject=subject)
    sender = sender_for(db, settings, smtp.url)
    assert await sender.run_campaign(campaign_id) == "sent"
    await sender.transport.close()
    return campaign_id, {m.recipients[0]: (ids[m.recipients[0]], token_of(m.sender)) for m in smtp.received
                         if m.recipients[0] in ids}


async def test_bounces_page_lists_reports_with_their_links_and_filters_by_type(
        admin_client: httpx.AsyncClient, db: Database, settings: Settings, smtp: SmtpServer) -> None:
    campaign_id, sent = await _send(db, settings, smtp, ["gone@example.org", "angry@example.org", "ok@example.org"])
    await record_one(db, settings, event("hard", "gone@example.org", token=sent["gone@example.org"][1],
                                         status="5.1.1", diagnostic="smtp; 550 5.1.1 <b>no such user</b>"))
    await record_one(db, settings, event("complaint", "angry@example.org", token=sent["angry@example.org"][1],
                                         source="mailbox", diagnostic="abuse report <script>alert(1)</script>"))

    r = await admin_client.get("/admin/bounces")
    assert r.status_code == 200
    assert '<a href="/admin/bounces" aria-current="page">Bounces</a>' in r.text  # in the admin's navigation
    assert "all (2)" in r.text and "hard bounces (1)" in r.text and "complaints (1)" in r.text
    gone_id, angry_id = sent["gone@example.org"][0], sent["angry@example.org"][0]
    assert f'<a href="/admin/subscribers/{gone_id}">gone@example.org</a>' in r.text
    assert f'<a href="/admin/campaigns/{campaign_id}">November at the clinic</a>' in r.text
    assert "5.1.1" in r.text and "&lt;b&gt;no such user&lt;/b&gt;" in r.text
    assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "suppressed" in r.text and "unsubscribed" in r.text and "mailbox" in r.text

    complaints = await admin_client.get("/admin/bounces?kind=complaint")
    assert complaints.status_code == 200
    assert f"/admin/subscribers/{angry_id}" in complaints.text
    assert f"/admin/subscribers/{gone_id}" not in complaints.text
    soft = await admin_client.get("/admin/bounces?kind=soft")
    assert "No reports." in soft.text and "/admin/subscribers/" not in soft.text.split("<h1>")[1]


@pytest.mark.parametrize(("query", "message"), [("kind=bounce", "Type: expected one of hard, soft, complaint."),
                                                ("after=yesterday_1", "")])
async def test_a_bad_filter_is_refused_and_named(admin_client: httpx.AsyncClient, query: str, message: str) -> None:
    r = await admin_client.get(f"/admin/bounces?{query}")
    assert r.status_code == 400 and 'role="alert"' in r.text
    assert message in r.text


async def test_bounces_page_is_paged_like_the_other_lists(admin_client: httpx.AsyncClient, db: Database) -> None:
    start = dt.datetime(2026, 11, 20, 8, tzinfo=dt.UTC)
    async with db.sessions.begin() as session:
        session.add_all(BounceEvent(
            event_key=f"k{i}", kind="soft" if i % 2 else "hard", source="webhook", recipient=f"r{i:02d}@example.org",
            recipient_key=f"r{i:02d}@example.org", occurred_at=start, received_at=start + dt.timedelta(minutes=i),
            diagnostic="", outcome="recorded") for i in range(53))
    first = await admin_client.get("/admin/bounces")
    shown = re.findall(r"r(\d\d)@example\.org", first.text)
    assert len(shown) == 50 and shown[0] == "52" and shown[-1] == "03"
    older = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert older is not None
    second = await admin_client.get(older.group(1).replace("&amp;", "&"))
    assert re.findall(r"r(\d\d)@example\.org", second.text) == ["02", "01", "00"]
    assert 'rel="next"' not in second.text and "« Newest" in second.text
    hard = await admin_client.get("/admin/bounces?kind=hard")
    assert len(re.findall(r"r(\d\d)@example\.org", hard.text)) == 27


async def test_only_signed_in_staff_see_the_bounces_page(app: object, db: Database,
                                                         staff_client: httpx.AsyncClient) -> None:
    async with new_client(app) as anonymous:
        r = await anonymous.get("/admin/bounces")
        assert r.status_code in (302, 303) and r.headers["location"].startswith("/admin/login")
    assert (await staff_client.get("/admin/bounces")).status_code == 200  # any staff role, like subscribers


async def test_subscriber_page_shows_their_bounce_history_and_erasing_takes_it_everywhere(
        admin_client: httpx.AsyncClient, db: Database, settings: Settings, smtp: SmtpServer) -> None:
    _campaign, sent = await _send(db, settings, smtp, ["lou@example.org", "kit@example.org"])
    lou, token = sent["lou@example.org"]
    await record_one(db, settings, event("soft", "lou@example.org", token=token, status="4.2.2",
                                         diagnostic="mailbox full"))
    page = await admin_client.get(f"/admin/subscribers/{lou}")
    history = page.text.split('id="bounce-history"')[1].split("</section>")[0]
    assert "soft bounce" in history and "4.2.2" in history and "mailbox full" in history and "counted" in history
    other = await admin_client.get(f"/admin/subscribers/{sent['kit@example.org'][0]}")
    assert "No bounce or complaint was reported for them." in other.text

    erase = await admin_client.get(f"/admin/subscribers/{lou}/erase")
    r = await admin_client.post(f"/admin/subscribers/{lou}/erase",
                                data={"csrf_token": token_in(erase.text), "confirm_email": "lou@example.org"})
    assert r.status_code == 303
    listing = await admin_client.get("/admin/bounces")
    assert "lou@example.org" not in listing.text and "mailbox full" not in listing.text and "all (0)" in listing.text


async def test_campaign_page_and_dashboard_show_rates_and_warn_when_the_last_campaign_passes_them(
        admin_client: httpx.AsyncClient, db: Database, settings: Settings, smtp: SmtpServer) -> None:
    emails = [f"reader{i}@example.org" for i in range(8)]
    campaign_id, sent = await _send(db, settings, smtp, emails)
    quiet = await admin_client.get("/admin/")
    assert 'id="deliverability-warning"' not in quiet.text  # no report yet: nothing to warn about
    page = await admin_client.get(f"/admin/campaigns/{campaign_id}")
    assert 'data-field="bounce_rate">0.00 %' in page.text and 'data-field="complaint_rate">0.00 %' in page.text

    await record_one(db, settings, event("hard", emails[0], token=sent[emails[0]][1], status="5.1.1"))
    await record_one(db, settings, event("complaint", emails[1], token=sent[emails[1]][1]))
    page = await admin_client.get(f"/admin/campaigns/{campaign_id}")
    assert 'class="error-text" data-field="bounce_rate">12.50 %' in page.text
    assert 'class="error-text" data-field="complaint_rate">12.50 %' in page.text
    assert "Complaint rate (feedback loops)" in page.text and "Postmaster Tools" in page.text
    dashboard = await admin_client.get("/admin/")
    warning = dashboard.text.split('id="deliverability-warning"')[1].split("</div>")[0]
    assert f'href="/admin/campaigns/{campaign_id}"' in warning
    assert "complaint rate from feedback loops is 12.50 % (1 of 8), above 0.1 %" in warning
    assert "Postmaster Tools" in warning and "bounce rate is 12.50 % (1 of 8), above 2 %" in warning

    smtp.handler.reset()  # a later campaign without reports is the last one now: the warning goes
    later, _ = await _send(db, settings, smtp, ["new@example.org"], subject="December")
    assert 'id="deliverability-warning"' not in (await admin_client.get("/admin/")).text
    assert later != campaign_id


async def test_inquiry_whose_automatic_answer_bounced_says_call_them(
        client: httpx.AsyncClient, admin_client: httpx.AsyncClient, db: Database, settings: Settings,
        smtp: SmtpServer) -> None:
    inquiry_id = await posted_id(client, db, email="ivy@example.org", phone="+44 20 7946 0000")
    (other,) = await add_inquiries(db, [inquiry_row(1, email="fine@example.org")])
    worker = OutboxWorker(db.sessions, SmtpTransport(smtp.url, timeout=5), owner="t", settings=settings)
    try:
        assert await worker.drain() == 2
    finally:
        await worker.mailer.close()
    (answer,) = [m for m in smtp.received if m.recipients == ["ivy@example.org"]]
    outcome = await record_one(db, settings, event("hard", "ivy@example.org", token=token_of(answer.sender),
                                                   status="5.1.1", diagnostic="550 5.1.1 <ivy@example.org> unknown"))
    assert outcome.action == "flagged"

    page = await admin_client.get(f"/admin/inquiries/{inquiry_id}")
    flag = page.text.split('id="inquiry-bounced"')[1].split("</div>")[0]
    async with db.sessions() as session:
        phone = (await session.get(Inquiry, inquiry_id)).phone  # type: ignore[union-attr]
    assert "The address bounced: call them." in flag and phone and f"Phone: {phone}." in flag
    assert "550 5.1.1 &lt;ivy@example.org&gt; unknown" in flag
    assert 'id="inquiry-bounced"' not in (await admin_client.get(f"/admin/inquiries/{other}")).text
    listing = await admin_client.get("/admin/inquiries")
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr class="status-\w+">.*?/admin/inquiries/(\d+)".*?</tr>',
                                                        listing.text, re.S)}
    assert "bounced: call them" in rows[str(inquiry_id)] and "bounced: call them" not in rows[str(other)]
    bounces = await admin_client.get("/admin/bounces")
    assert f'<a href="/admin/inquiries/{inquiry_id}">inquiry #{inquiry_id}</a>' in bounces.text
    assert "automatic answer" in bounces.text and utcnow().strftime("%Y-%m-%d") in bounces.text

    erase = await admin_client.get(f"/admin/inquiries/{inquiry_id}/erase")
    r = await admin_client.post(f"/admin/inquiries/{inquiry_id}/erase",
                                data={"csrf_token": token_in(erase.text), "confirm": "ERASE"})
    assert r.status_code == 303
    after = await admin_client.get("/admin/bounces")  # the reports about its emails went with it
    assert "ivy@example.org" not in after.text and f"/admin/inquiries/{inquiry_id}" not in after.text
