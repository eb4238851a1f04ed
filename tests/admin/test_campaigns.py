"""Campaign pages as staff use them: compose a digest (pick and order articles), preview as a
subscriber, send a test to a real SMTP server, send now, watch the progress, pause/resume/cancel,
schedule, recurring rules, articles and "Import now"; CSRF, validation and escaping."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from markupsafe import escape
from sqlalchemy import func, select

from service.admin.models import AuditEvent
from service.app import create_app
from service.articles.models import Article
from service.campaigns import queries as cq
from service.campaigns.flows import create_digest
from service.campaigns.models import Campaign, CampaignArticle, Delivery, DigestRule
from service.db import utcnow
from service.settings import Settings
from tests.conftest import Database, make_settings
from tests.factories import (
    SAMPLE,
    add_subscriber,
    audit_actions,
    count,
    csrf,
    sample_articles,
    sender_for,
    signed_in_client,
    token_in,
)
from tests.smtp import SmtpServer

XSS = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


@pytest.fixture
def mail_settings(db: Database, smtp: SmtpServer) -> Settings:
    return make_settings(db, smtp_url=smtp.url)


@pytest.fixture
async def staff(db: Database, mail_settings: Settings, admin: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-in admin on an app that sends through the test SMTP server."""
    async with signed_in_client(create_app(mail_settings, sessions=db.sessions), admin) as c:
        yield c


async def _campaign(db: Database, campaign_id: int) -> Campaign:
    async with db.sessions() as session:
        row = await session.get(Campaign, campaign_id)
        assert row is not None
        return row


async def _order(db: Database, campaign_id: int) -> list[int]:
    async with db.sessions() as session:
        rows = await session.scalars(select(CampaignArticle.article_id).where(
            CampaignArticle.campaign_id == campaign_id).order_by(CampaignArticle.position))
        return list(rows.all())


def _form(token: str, article_ids: list[int], **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"csrf_token": token, "subject": "November at the clinic", "preheader": "Five reads",
                            "intro": "Hello.\n\nHere is what we wrote.", "audience": "all",
                            "order": [str(i) for i in article_ids], "article": [str(i) for i in article_ids]}
    data.update(fields)
    return data


async def _create(staff: httpx.AsyncClient, article_ids: list[int], **fields: Any) -> int:
    page = await staff.get("/admin/campaigns/new")
    r = await staff.post("/admin/campaigns/new", data=_form(token_in(page.text), article_ids, **fields))
    assert r.status_code == 303, r.text
    found = re.match(r"/admin/campaigns/(\d+)\?notice=created", r.headers["location"])
    assert found
    return int(found.group(1))


async def test_digest_from_compose_to_sent_with_a_live_progress(
    staff: httpx.AsyncClient, db: Database, mail_settings: Settings, smtp: SmtpServer
) -> None:
    articles = await sample_articles(db, mail_settings)  # newest first
    await add_subscriber(db, "pain@example.org", name="Pat", topics=["chronic pain"])
    await add_subscriber(db, "all@example.org", name="Alex")

    page = await staff.get("/admin/campaigns/new")
    assert page.status_code == 200
    # Default: every article since the last digest is ticked, newest first.
    assert page.text.count('name="article" value=') == 5 and page.text.count("checked>") >= 5
    assert page.text.index(escape(articles[0].title)) < page.text.index(escape(articles[-1].title))

    chosen = [a.id for a in reversed(articles)]  # oldest first: a deliberate order
    campaign_id = await _create(staff, chosen)
    assert await _order(db, campaign_id) == chosen

    # Preview as the chronic-pain subscriber: only the articles of that topic.
    r = await staff.get(f"/admin/campaigns/{campaign_id}/preview", params={"email": "pain@example.org"})
    assert r.status_code == 200
    text = r.text.split('<pre class="mail-text">')[1]
    wanted = [a for a in articles if "chronic pain" in a.topics or not a.topics]
    assert wanted and len(wanted) < len(articles)
    for a in articles:
        assert (str(escape(a.title)) in text) == (a in wanted), a.title
    assert "Pat" in text
    html = await staff.get(f"/admin/campaigns/{campaign_id}/preview.html", params={"email": "pain@example.org"})
    assert html.status_code == 200 and html.headers["content-security-policy"].startswith("sandbox")
    r = await staff.get(f"/admin/campaigns/{campaign_id}/preview", params={"email": "nobody@example.org"})
    assert r.status_code == 422 and "no subscriber nobody@example.org" in r.text

    # A test to an address arrives at the SMTP server, marked [TEST]; nothing is recorded as sent.
    token = await csrf(staff)
    r = await staff.post(f"/admin/campaigns/{campaign_id}/test", data={"csrf_token": token,
                                                                      "address": "me@example.org"})
    # Post/redirect/get: the answer is a page of its own, so reloading it sends nothing again.
    assert r.status_code == 303 and r.headers["location"].endswith("?notice=test-sent&to=me%40example.org")
    shown = await staff.get(r.headers["location"])
    # The staff member reads a sentence, not the server's reply code ("250 OK"); attribute values
    # (the random CSRF token may hold "250") are not what anybody reads, so only text is checked.
    shown_text = re.sub(r"<[^>]*>", " ", shown.text.split("<main")[1])
    assert "Test sent to me@example.org." in shown_text and "250" not in shown_text
    assert [m.recipients for m in smtp.received] == [["me@example.org"]]
    assert smtp.received[0].message["Subject"] == "[TEST] November at the clinic"
    assert await count(db, Delivery) == 0

    # Send now: the deliveries are queued, the worker (here: the campaign sender) sends them.
    r = await staff.post(f"/admin/campaigns/{campaign_id}/send", data={"csrf_token": token})
    assert r.status_code == 303 and (await _campaign(db, campaign_id)).status == "sending"
    progress = (await staff.get(f"/admin/campaigns/{campaign_id}/progress")).json()
    assert progress["status"] == "sending" and progress["queued"] == 2 and progress["percent"] == 0
    assert await sender_for(db, mail_settings, smtp.url).run_campaign(campaign_id) == "sent"

    progress = (await staff.get(f"/admin/campaigns/{campaign_id}/progress")).json()
    assert progress["status"] == "sent" and progress["percent"] == 100.0
    assert (progress["sent"], progress["failed"], progress["total"]) == (2, 0, 2)
    assert sorted(m.recipients[0] for m in smtp.received[1:]) == ["all@example.org", "pain@example.org"]
    detail = await staff.get(f"/admin/campaigns/{campaign_id}")
    assert re.search(r'<td data-field="sent">2</td>', detail.text)
    assert '<progress id="p-bar" max="2" value="2"' in detail.text
    listing = await staff.get("/admin/campaigns")
    assert "November at the clinic" in listing.text and "badge-sent" in listing.text
    dashboard = await staff.get("/admin/")
    assert f'href="/admin/campaigns/{campaign_id}">November at the clinic</a>' in dashboard.text
    assert "<td>2 of 2</td>" in dashboard.text
    actions = [a for a, _who, target in await audit_actions(db) if a.startswith("campaign")]
    assert actions == ["campaign_create", "campaign_test_send", "campaign_send"]


async def test_up_and_down_buttons_reorder_without_saving(staff: httpx.AsyncClient, db: Database,
                                                          mail_settings: Settings) -> None:
    articles = await sample_articles(db, mail_settings)
    ids = [a.id for a in articles]
    page = await staff.get("/admin/campaigns/new")
    r = await staff.post("/admin/campaigns/new", data=_form(token_in(page.text), ids, move=f"up:{ids[2]}"))
    assert r.status_code == 200 and await count(db, Campaign) == 0
    shown = [int(i) for i in re.findall(r'name="order" value="(\d+)"', r.text)]
    assert shown == [ids[0], ids[2], ids[1], ids[3], ids[4]]
    r = await staff.post("/admin/campaigns/new", data=_form(token_in(r.text), shown))
    campaign_id = int(r.headers["location"].split("/")[3].split("?")[0])
    assert await _order(db, campaign_id) == shown

    # Editing the draft keeps a new order and a smaller selection.
    page = await staff.get(f"/admin/campaigns/{campaign_id}/edit")
    assert [int(i) for i in re.findall(r'name="order" value="(\d+)"', page.text)] == shown
    r = await staff.post(f"/admin/campaigns/{campaign_id}/edit",
                         data=_form(token_in(page.text), [ids[4], ids[0]], subject="Edited"))
    assert r.status_code == 303
    assert await _order(db, campaign_id) == [ids[4], ids[0]]
    assert (await _campaign(db, campaign_id)).subject == "Edited"


async def test_compose_errors_name_each_field_and_save_nothing(staff: httpx.AsyncClient, db: Database,
                                                               mail_settings: Settings) -> None:
    articles = await sample_articles(db, mail_settings)
    page = await staff.get("/admin/campaigns/new")
    data = _form(token_in(page.text), [], subject="Line one\r\nBcc: victim@example.org", audience="topics",
                 topics="astrology")
    r = await staff.post("/admin/campaigns/new", data=data)
    assert r.status_code == 422
    assert "Subject must be a single line" in r.text
    assert "Write a body, or pick at least one article (or both)." in r.text
    assert "Unknown topic(s): astrology." in r.text
    r = await staff.post("/admin/campaigns/new", data=_form(token_in(page.text), [articles[0].id], subject="",
                                                            audience="topics"))
    assert r.status_code == 422 and "Please enter subject" in r.text
    assert "Choose at least one topic" in r.text
    assert await count(db, Campaign) == 0


async def test_pause_resume_cancel_change_status_and_are_audited(staff: httpx.AsyncClient, db: Database,
                                                                 mail_settings: Settings) -> None:
    articles = await sample_articles(db, mail_settings)
    await add_subscriber(db, "a@example.org")
    campaign_id = await _create(staff, [a.id for a in articles])
    token = await csrf(staff)
    url = f"/admin/campaigns/{campaign_id}"
    assert (await staff.post(f"{url}/send", data={"csrf_token": token})).status_code == 303
    for action, status in (("pause", "paused"), ("resume", "sending"), ("pause", "paused"), ("cancel", "cancelled")):
        r = await staff.post(f"{url}/{action}", data={"csrf_token": token})
        assert r.status_code == 303, (action, r.text)
        assert (await _campaign(db, campaign_id)).status == status
    r = await staff.post(f"{url}/resume", data={"csrf_token": token})
    assert r.status_code == 409 and "cannot become sending" in r.text
    assert (await _campaign(db, campaign_id)).status == "cancelled"
    r = await staff.post(f"{url}/send", data={"csrf_token": token})
    assert r.status_code == 409 and "cannot be sent again" in r.text
    actions = [a for a, _who, target in await audit_actions(db) if a.startswith("campaign")]
    assert actions == ["campaign_create", "campaign_send", "campaign_pause", "campaign_resume", "campaign_pause",
                       "campaign_cancel"]


async def test_campaign_actions_without_csrf_are_refused_and_change_nothing(
    staff: httpx.AsyncClient, db: Database, mail_settings: Settings, smtp: SmtpServer
) -> None:
    articles = await sample_articles(db, mail_settings)
    await add_subscriber(db, "a@example.org")
    campaign_id = await _create(staff, [a.id for a in articles])
    url = f"/admin/campaigns/{campaign_id}"
    for path, data in ((f"{url}/send", {}), (f"{url}/test", {"address": "x@example.org"}), (f"{url}/cancel", {}),
                       (f"{url}/schedule", {"when": "2099-01-01T09:00", "timezone": "UTC"}),
                       (f"{url}/edit", {"subject": "Changed"}), ("/admin/articles/import", {}),
                       ("/admin/campaigns/new", {"subject": "x", "article": str(articles[0].id)}),
                       ("/admin/digest-rules/new", {"weekday": "0", "at_time": "09:00", "timezone": "UTC"})):
        for token in (None, "forged"):
            r = await staff.post(path, data={**data, **({"csrf_token": token} if token else {})})
            assert r.status_code == 403, (path, token)
    campaign = await _campaign(db, campaign_id)
    assert (campaign.status, campaign.subject) == ("draft", "November at the clinic")
    assert await count(db, Campaign) == 1 and await count(db, Delivery) == 0 and await count(db, DigestRule) == 0
    assert smtp.received == []


async def test_schedule_in_a_time_zone_and_refuse_bad_input(staff: httpx.AsyncClient, db: Database,
                                                            mail_settings: Settings) -> None:
    articles = await sample_articles(db, mail_settings)
    campaign_id = await _create(staff, [a.id for a in articles])
    token = await csrf(staff)
    url = f"/admin/campaigns/{campaign_id}/schedule"
    for data, message in (({"when": "next week", "timezone": "UTC"}, "Date and time: expected"),
                          ({"when": "2099-01-05T09:00", "timezone": "Mars/Olympus"}, "is not an IANA time zone"),
                          ({"when": "2001-01-05T09:00", "timezone": "UTC"}, "this is in the past")):
        r = await staff.post(url, data={"csrf_token": token, **data})
        assert r.status_code == 422 and message in r.text
        assert (await _campaign(db, campaign_id)).status == "draft"
    r = await staff.post(url, data={"csrf_token": token, "when": "2099-07-06T09:30", "timezone": "Europe/London"})
    assert r.status_code == 303
    campaign = await _campaign(db, campaign_id)
    assert campaign.status == "scheduled"
    assert campaign.scheduled_at == dt.datetime(2099, 7, 6, 8, 30, tzinfo=dt.UTC)  # British Summer Time


async def test_recurring_rules_and_approval(staff: httpx.AsyncClient, db: Database, mail_settings: Settings) -> None:
    await sample_articles(db, mail_settings)
    token = await csrf(staff)
    bad = {"csrf_token": token, "weekday": "9", "at_time": "25:00", "timezone": "Nowhere/Land"}
    r = await staff.post("/admin/digest-rules/new", data=bad)
    assert r.status_code == 422 and "Day: pick a day" in r.text and "Time: expected" in r.text
    assert "not an IANA time zone" in r.text and await count(db, DigestRule) == 0
    good = {"csrf_token": token, "weekday": "0", "at_time": "09:00", "timezone": "Europe/London",
            "subject": "Weekly", "audience": "topics", "topics": "PTSD", "requires_approval": "1"}
    assert (await staff.post("/admin/digest-rules/new", data=good)).status_code == 303
    async with db.sessions() as session:
        rule = (await session.scalars(select(DigestRule))).one()
    assert (rule.weekday, rule.at_time, rule.timezone, rule.audience_topics, rule.requires_approval) == (
        0, "09:00", "Europe/London", ["PTSD"], True)
    page = await staff.get("/admin/digest-rules")
    assert "weekly on Monday 09:00 Europe/London" in page.text
    r = await staff.post(f"/admin/digest-rules/{rule.id}", data={**good, "weekday": "4", "at_time": "7:05"})
    assert r.status_code == 303
    r = await staff.post(f"/admin/digest-rules/{rule.id}/active", data={"csrf_token": token, "active": "0"})
    assert r.status_code == 303
    async with db.sessions() as session:
        rule = await session.get(DigestRule, rule.id)
        assert rule is not None and (rule.weekday, rule.at_time, rule.active) == (4, "07:05", False)

    # A digest a rule made that waits for approval: approve it from the admin.
    async with db.sessions.begin() as session:
        waiting = await create_digest(session, mail_settings, now=utcnow(), status="scheduled",
                                      requires_approval=True)
    page = await staff.get("/admin/digest-rules")
    assert "Digests awaiting approval" in page.text and f"/admin/campaigns/{waiting.id}/approve" in page.text
    r = await staff.post(f"/admin/campaigns/{waiting.id}/send", data={"csrf_token": token})
    assert r.status_code == 409 and "awaits a staff approval" in r.text
    r = await staff.post(f"/admin/campaigns/{waiting.id}/approve", data={"csrf_token": token})
    assert r.status_code == 303 and (await _campaign(db, waiting.id)).approved_at is not None
    r = await staff.post(f"/admin/campaigns/{waiting.id}/approve", data={"csrf_token": token})
    assert r.status_code == 409
    assert [a for a, _w, t in await audit_actions(db) if a.startswith(("campaign", "digest"))] == [
        "digest_rule_save", "digest_rule_save", "digest_rule_deactivate", "campaign_approve"]


async def test_import_now_reports_counts_errors_and_a_missing_feed(
    db: Database, admin: Any, tmp_path: Path
) -> None:
    async with signed_in_client(create_app(make_settings(db), sessions=db.sessions), admin) as c:
        r = await c.post("/admin/articles/import", data={"csrf_token": await csrf(c)})
        assert r.status_code == 409 and "FEED_URL is not set" in r.text
    broken = tmp_path / "broken.xml"
    broken.write_text("this is not a feed")
    async with signed_in_client(create_app(make_settings(db, feed_url=str(broken)), sessions=db.sessions), admin) as c:
        r = await c.post("/admin/articles/import", data={"csrf_token": await csrf(c)})
        assert r.status_code == 422 and "nothing changed" in r.text and await count(db, Article) == 0
    async with signed_in_client(create_app(make_settings(db, feed_url=str(SAMPLE / "feed.xml")),
                                           sessions=db.sessions), admin) as c:
        r = await c.post("/admin/articles/import", data={"csrf_token": await csrf(c)})
        assert r.status_code == 200 and "Imported: 5 new, 0 updated" in r.text
        r = await c.post("/admin/articles/import", data={"csrf_token": await csrf(c)})
        assert "Imported: 0 new, 0 updated, 5 unchanged" in r.text
        page = await c.get("/admin/articles")
        assert page.text.count("<tr>") == 6 and "PTSD" in page.text
    assert await count(db, Article) == 5
    async with db.sessions() as session:
        n = await session.scalar(select(func.count()).where(AuditEvent.action == "articles_import"))
    assert n == 3


async def test_xss_in_campaign_and_article_text_renders_inert(staff: httpx.AsyncClient, db: Database,
                                                              mail_settings: Settings) -> None:
    articles = await sample_articles(db, mail_settings)
    async with db.sessions.begin() as session:
        row = await session.get(Article, articles[0].id)
        assert row is not None
        row.title = XSS
        row.link = "javascript:alert(1)"
    campaign_id = await _create(staff, [a.id for a in articles], subject=XSS, intro=XSS, preheader=XSS)
    async with db.sessions.begin() as session:
        await cq.start_campaign(session, campaign_id=campaign_id, now=utcnow())
    for path in ("/admin/campaigns", f"/admin/campaigns/{campaign_id}", "/admin/articles", "/admin/",
                 f"/admin/campaigns/{campaign_id}/preview", "/admin/campaigns/new"):
        r = await staff.get(path)
        assert r.status_code == 200, path
        body = r.text.split("</head>")[1]
        assert "<script>alert" not in body and "<img src=x" not in body, path
        assert 'href="javascript:' not in body, path
        assert str(escape(XSS)) in body, path


async def test_a_test_send_on_the_embedded_default_lands_in_the_local_outbox(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    from service.mail.models import MailboxMessage

    articles = await sample_articles(db, settings)
    campaign_id = await _create(admin_client, [a.id for a in articles])
    r = await admin_client.post(f"/admin/campaigns/{campaign_id}/test",
                                data={"csrf_token": await csrf(admin_client), "address": "me@example.org"})
    assert r.status_code == 303 and "notice=test-sent" in r.headers["location"]
    assert "Test sent to me@example.org." in (await admin_client.get(r.headers["location"])).text
    async with db.sessions() as session:
        stored = (await session.scalars(select(MailboxMessage))).one()
    assert stored.recipients == "me@example.org" and stored.subject == "[TEST] November at the clinic"
    outbox = await admin_client.get("/admin/outbox")
    assert "[TEST] November at the clinic" in outbox.text
    r = await admin_client.post(f"/admin/campaigns/{campaign_id}/test",
                                data={"csrf_token": await csrf(admin_client), "address": "not an address"})
    assert r.status_code == 422 and 'id="err-address"' in r.text and await count(db, MailboxMessage) == 1
