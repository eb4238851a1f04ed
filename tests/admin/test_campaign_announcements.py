"""Campaigns beyond the digest, through the real app, SMTP server and database: an announcement
with its own Markdown body (sanitised, previewed as sent, to the whole audience), the audience
size before sending, the progress JSON in every state, Delete for drafts, Duplicate for any
campaign, and Send test answered with post/redirect/get and a human message on failure."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.app import create_app
from service.campaigns.models import Campaign, CampaignArticle, Delivery
from service.settings import Settings
from tests.conftest import Database, make_settings
from tests.factories import (
    add_subscriber,
    audit_actions,
    count,
    csrf,
    deliveries,
    sample_articles,
    sender_for,
    signed_in_client,
    token_in,
)
from tests.smtp import SmtpServer, free_port

BODY = ("## New opening hours\n\nFrom January we also open on **Saturdays**, 9–13.\n\n"
        "- bring your card\n- [book online](https://clinic.test/book)\n\n"
        "<script>alert(1)</script> [bad](javascript:alert(1))")


@pytest.fixture
def mail_settings(db: Database, smtp: SmtpServer) -> Settings:
    return make_settings(db, smtp_url=smtp.url)


@pytest.fixture
async def staff(db: Database, mail_settings: Settings, admin: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with signed_in_client(create_app(mail_settings, sessions=db.sessions), admin) as c:
        yield c


async def _create(staff: httpx.AsyncClient, *, articles: list[int] = (), **fields: Any) -> int:  # type: ignore[assignment]
    page = await staff.get("/admin/campaigns/new")
    data: dict[str, Any] = {"csrf_token": token_in(page.text), "subject": "New opening hours", "preheader": "",
                            "intro": "", "body": BODY, "audience": "all",
                            "order": [str(i) for i in articles], "article": [str(i) for i in articles]}
    data.update(fields)
    r = await staff.post("/admin/campaigns/new", data=data)
    assert r.status_code == 303, r.text
    found = re.match(r"/admin/campaigns/(\d+)\?notice=created", r.headers["location"])
    assert found, r.headers["location"]
    return int(found.group(1))


def _parts(message: EmailMessage) -> tuple[str, str]:
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


async def test_an_announcement_without_articles_goes_to_the_whole_audience_as_previewed(
    staff: httpx.AsyncClient, db: Database, mail_settings: Settings, smtp: SmtpServer
) -> None:
    await add_subscriber(db, "pain@example.org", name="Pat", topics=["chronic pain"])
    await add_subscriber(db, "all@example.org", name="Alex")
    await add_subscriber(db, "pending@example.org", status="pending")
    campaign_id = await _create(staff)

    detail = await staff.get(f"/admin/campaigns/{campaign_id}")
    assert "None: only the body is sent." in detail.text
    assert "<strong>Saturdays</strong>" in detail.text and "<script>alert" not in detail.text
    # The preview is the email the reader gets: the same template as a digest, the body cleaned.
    frame = await staff.get(f"/admin/campaigns/{campaign_id}/preview.html")
    assert frame.status_code == 200 and 'class="brand"' in frame.text
    assert re.search(r"<h2[^>]*>New opening hours</h2>", frame.text)
    assert re.search(r"<strong[^>]*>Saturdays</strong>", frame.text)
    assert re.search(r'<a href="https://clinic.test/book"[^>]*>book online</a>', frame.text)
    assert "<script" not in frame.text and "&lt;script&gt;" in frame.text  # shown as text, never run
    assert 'href="javascript:' not in frame.text
    preview = await staff.get(f"/admin/campaigns/{campaign_id}/preview", params={"email": "pain@example.org"})
    assert preview.status_code == 200 and "**Saturdays**" in preview.text

    token = await csrf(staff)
    assert (await staff.post(f"/admin/campaigns/{campaign_id}/send", data={"csrf_token": token})).status_code == 303
    assert await sender_for(db, mail_settings, smtp.url).run_campaign(campaign_id) == "sent"
    got = {m.recipients[0]: m.message for m in smtp.received}
    assert sorted(got) == ["all@example.org", "pain@example.org"]  # confirmed only; topics do not matter
    html, text = _parts(got["pain@example.org"])
    assert "Hello Pat," in html and re.search(r"<strong[^>]*>Saturdays</strong>", html) and "<script" not in html
    assert "Saturdays" in text and "Read more" not in text
    assert [d.status for d in await deliveries(db, campaign_id)] == ["sent", "sent"]
    archive = await httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(mail_settings,
                                      sessions=db.sessions)), base_url="http://testserver").get(
        f"/archive/{(await _row(db, campaign_id)).slug}")
    assert archive.status_code == 200 and "<strong>Saturdays</strong>" in archive.text


async def test_a_body_with_articles_reaches_even_those_whose_topics_match_no_article(
    staff: httpx.AsyncClient, db: Database, mail_settings: Settings, smtp: SmtpServer
) -> None:
    articles = await sample_articles(db, mail_settings)
    used = {t for a in articles for t in a.topics}
    lonely = next(t for t in mail_settings.topics if t not in used)
    assert all(a.topics for a in articles)  # else everyone wants every article and this proves nothing
    await add_subscriber(db, "lonely@example.org", topics=[lonely])
    await add_subscriber(db, "all@example.org")
    digest = await _create(staff, articles=[a.id for a in articles], body="", subject="Digest only")
    both = await _create(staff, articles=[a.id for a in articles], subject="Hours and reads")

    # Before sending: the digest reaches 1 of the 2, the announcement with articles both.
    assert "<strong data-field=\"receiving\">1</strong>" in (await staff.get(f"/admin/campaigns/{digest}")).text
    assert "<strong data-field=\"receiving\">2</strong>" in (await staff.get(f"/admin/campaigns/{both}")).text

    token = await csrf(staff)
    await staff.post(f"/admin/campaigns/{both}/send", data={"csrf_token": token})
    assert await sender_for(db, mail_settings, smtp.url).run_campaign(both) == "sent"
    got = {m.recipients[0]: _parts(m.message)[1] for m in smtp.received}
    assert sorted(got) == ["all@example.org", "lonely@example.org"]
    assert "Saturdays" in got["lonely@example.org"] and "Read more" not in got["lonely@example.org"]
    assert "Saturdays" in got["all@example.org"] and got["all@example.org"].count("Read more") == len(articles)


async def _row(db: Database, campaign_id: int) -> Campaign:
    async with db.sessions() as session:
        row = await session.get(Campaign, campaign_id)
        assert row is not None
        return row


async def test_the_audience_size_is_counted_now_from_the_mailing_rule_and_per_topic(
    staff: httpx.AsyncClient, db: Database, mail_settings: Settings
) -> None:
    await add_subscriber(db, "a@example.org", topics=["anxiety"])
    await add_subscriber(db, "b@example.org", topics=["depression", "anxiety"])
    await add_subscriber(db, "gone@example.org", topics=["anxiety"], status="unsubscribed")
    campaign_id = await _create(staff, audience="topics", topics=["anxiety"])
    page = await staff.get(f"/admin/campaigns/{campaign_id}")
    assert "Recipients" not in page.text  # no table of zeros for a draft
    assert '<strong data-field="receiving">2</strong>' in page.text and "anxiety 2" in page.text
    progress = (await staff.get(f"/admin/campaigns/{campaign_id}/progress")).json()
    assert (progress["audience"], progress["receiving"], progress["state"]) == (2, 2, "Draft: nothing has been sent.")

    # The audience changes: the page and the JSON follow at once (nothing cached).
    await add_subscriber(db, "c@example.org")  # chose no topic: wants everything
    await add_subscriber(db, "d@example.org", topics=["PTSD"])  # not in this audience
    progress = (await staff.get(f"/admin/campaigns/{campaign_id}/progress")).json()
    assert (progress["audience"], progress["receiving"]) == (3, 3)
    page = await staff.get(f"/admin/campaigns/{campaign_id}")
    assert "anxiety 2" in page.text and "no topic chosen (they get everything) 1" in page.text
    listing = await staff.get("/admin/campaigns")
    assert "3 (audience)" in listing.text

    # The composer asks for the figures of its current choices.
    r = await staff.get("/admin/campaigns/audience", params={"audience": "topics", "topics": ["PTSD", "bogus"],
                                                             "body": "1"})
    assert r.json() == {"audience": 2, "receiving": 2, "by_topic": {"PTSD": 1}, "any_topic": 1}
    r = await staff.get("/admin/campaigns/audience", params={"audience": "all", "body": "0"})
    assert (r.json()["audience"], r.json()["receiving"]) == (4, 0)  # no body and no article: nobody gets it
    new = await staff.get("/admin/campaigns/new")
    assert re.search(r'data-audience="audience">4<', new.text)


async def test_the_progress_json_tells_the_real_state_at_every_step(
    staff: httpx.AsyncClient, db: Database, mail_settings: Settings, smtp: SmtpServer
) -> None:
    for i in range(3):
        await add_subscriber(db, f"s{i}@example.org")
    campaign_id = await _create(staff)
    url = f"/admin/campaigns/{campaign_id}"
    token = await csrf(staff)
    await staff.post(f"{url}/send", data={"csrf_token": token})

    p = (await staff.get(f"{url}/progress")).json()
    assert p["status"] == "sending" and p["rate"] is None and p["finished"] is False
    assert p["state"] == "Queued for 3: waiting for the send worker to start."
    assert p["audience"] is None  # queued: the recipients are the deliveries now
    page = await staff.get(url)
    assert 'data-field="rate">—</span>' in page.text and "waiting for the send worker" in page.text

    sender = sender_for(db, mail_settings, smtp.url, batch_size=1)
    assert await sender.send_batch(campaign_id) == 1
    p = (await staff.get(f"{url}/progress")).json()
    assert p["state"] == "Sending: 1 of 3 handled, 2 left." and p["rate"] is not None and p["rate"] > 0

    await staff.post(f"{url}/pause", data={"csrf_token": token})
    p = (await staff.get(f"{url}/progress")).json()
    assert (p["status"], p["state"]) == ("paused", "Paused with 2 left to send. Resume to go on.")
    await staff.post(f"{url}/resume", data={"csrf_token": token})
    assert await sender_for(db, mail_settings, smtp.url).run_campaign(campaign_id) == "sent"
    p = (await staff.get(f"{url}/progress")).json()
    assert (p["status"], p["finished"], p["percent"]) == ("sent", True, 100.0)
    assert p["state"] == "Finished: 3 sent, 0 failed, 0 skipped."
    # The finished page offers nothing that no longer applies.
    page = await staff.get(url)
    assert "Finished: 3 sent" in page.text
    for gone in (">Pause<", ">Cancel campaign<", ">Send now<", "Send a test to"):
        assert gone not in page.text, gone

    other = await _create(staff, subject="Cancelled one")
    await staff.post(f"/admin/campaigns/{other}/send", data={"csrf_token": token})
    await staff.post(f"/admin/campaigns/{other}/cancel", data={"csrf_token": token})
    p = (await staff.get(f"/admin/campaigns/{other}/progress")).json()
    assert (p["status"], p["finished"]) == ("cancelled", True)
    assert p["state"] == "Cancelled after 0 sent; the 3 left will not be sent."


async def test_a_draft_can_be_deleted_with_csrf_and_audit_and_nothing_else_can(
    staff: httpx.AsyncClient, db: Database, mail_settings: Settings
) -> None:
    await add_subscriber(db, "a@example.org")
    draft = await _create(staff)
    page = await staff.get(f"/admin/campaigns/{draft}")
    assert ">Delete draft<" in page.text and ">Cancel campaign<" not in page.text
    for token in (None, "forged"):
        r = await staff.post(f"/admin/campaigns/{draft}/delete", data={"csrf_token": token} if token else {})
        assert r.status_code == 403
    assert await count(db, Campaign) == 1
    r = await staff.post(f"/admin/campaigns/{draft}/delete", data={"csrf_token": await csrf(staff)})
    assert r.status_code == 303 and r.headers["location"] == "/admin/campaigns?notice=deleted"
    assert "Draft deleted." in (await staff.get(r.headers["location"])).text
    assert await count(db, Campaign) == 0
    assert (await staff.get(f"/admin/campaigns/{draft}")).status_code == 404
    assert ("campaign_delete", "admin@clinic.test", f"campaign {draft}") in await _audit(db)

    sending = await _create(staff, subject="Going out")
    token = await csrf(staff)
    await staff.post(f"/admin/campaigns/{sending}/send", data={"csrf_token": token})
    page = await staff.get(f"/admin/campaigns/{sending}")
    assert ">Delete draft<" not in page.text and ">Cancel campaign<" in page.text
    r = await staff.post(f"/admin/campaigns/{sending}/delete", data={"csrf_token": token})
    assert r.status_code == 409 and "only a draft can be deleted" in r.text
    assert (await _row(db, sending)).status == "sending" and await count(db, Delivery) == 1


async def _audit(db: Database) -> list[tuple[str, str, str]]:
    return [(a, who, f"campaign {target}") for a, who, target in await audit_actions(db)]


async def test_duplicate_makes_a_new_draft_of_any_campaign(
    staff: httpx.AsyncClient, db: Database, mail_settings: Settings, smtp: SmtpServer
) -> None:
    articles = await sample_articles(db, mail_settings)
    await add_subscriber(db, "a@example.org", topics=["anxiety"])
    chosen = [articles[2].id, articles[0].id]
    source = await _create(staff, articles=chosen, audience="topics", topics=["anxiety", "PTSD"],
                           intro="Hello all.")
    token = await csrf(staff)
    await staff.post(f"/admin/campaigns/{source}/send", data={"csrf_token": token})
    assert await sender_for(db, mail_settings, smtp.url).run_campaign(source) == "sent"
    assert ">Duplicate<" in (await staff.get(f"/admin/campaigns/{source}")).text

    r = await staff.post(f"/admin/campaigns/{source}/duplicate", data={})
    assert r.status_code == 403 and await count(db, Campaign) == 1
    r = await staff.post(f"/admin/campaigns/{source}/duplicate", data={"csrf_token": token})
    assert r.status_code == 303
    copy_id = int(re.match(r"/admin/campaigns/(\d+)\?notice=duplicated", r.headers["location"]).group(1))  # type: ignore[union-attr]
    assert "A copy, as a new draft" in (await staff.get(r.headers["location"])).text
    original, copy = await _row(db, source), await _row(db, copy_id)
    assert (copy.status, copy.subject, copy.body, copy.intro, copy.audience_topics) == (
        "draft", original.subject, BODY, "Hello all.", ["PTSD", "anxiety"])
    assert copy.slug != original.slug and copy.started_at is None
    async with db.sessions() as session:
        order = list((await session.scalars(select(CampaignArticle.article_id).where(
            CampaignArticle.campaign_id == copy_id).order_by(CampaignArticle.position))).all())
    assert order == chosen
    assert ("campaign_duplicate", "admin@clinic.test", f"campaign {copy_id}") in await _audit(db)


async def test_compose_refuses_a_body_too_long_or_no_content_and_saves_nothing(
    staff: httpx.AsyncClient, db: Database, mail_settings: Settings
) -> None:
    page = await staff.get("/admin/campaigns/new")
    base = {"csrf_token": token_in(page.text), "subject": "Hours", "audience": "all"}
    r = await staff.post("/admin/campaigns/new", data={**base, "body": "x" * 50001})
    assert r.status_code == 422 and 'id="err-body"' in r.text and "Body" in r.text
    r = await staff.post("/admin/campaigns/new", data={**base, "body": "bad \x07 bell"})
    assert r.status_code == 422 and "Body contains control characters" in r.text
    r = await staff.post("/admin/campaigns/new", data={**base, "body": "   "})
    assert r.status_code == 422 and "Write a body, or pick at least one article" in r.text
    assert await count(db, Campaign) == 0
    # "Save and preview" saves, then opens the preview.
    r = await staff.post("/admin/campaigns/new?then=preview", data={**base, "body": "Open on **Saturdays**."})
    assert r.status_code == 303 and re.fullmatch(r"/admin/campaigns/\d+/preview", r.headers["location"])


async def test_send_test_redirects_and_a_failure_reads_as_words_not_server_text(
    db: Database, admin: Any, smtp: SmtpServer
) -> None:
    settings = make_settings(db, smtp_url=smtp.url)
    async with signed_in_client(create_app(settings, sessions=db.sessions), admin) as staff:
        campaign_id = await _create(staff)
        smtp.handler.behaviour.refuse_recipients = {"typo@example.org": "550 5.1.1 <typo@example.org>: no mailbox"}
        r = await staff.post(f"/admin/campaigns/{campaign_id}/test",
                             data={"csrf_token": await csrf(staff), "address": "typo@example.org"})
        assert r.status_code == 303 and "notice=test-failed" in r.headers["location"]
        page = await staff.get(r.headers["location"])
        assert "The test was not sent. The mail server refused this address." in page.text
        assert "5.1.1" not in page.text and "no mailbox" not in page.text
        assert smtp.received == [] and await count(db, Delivery) == 0

    down = make_settings(db, smtp_url=f"smtp://127.0.0.1:{free_port()}")
    async with signed_in_client(create_app(down, sessions=db.sessions), admin) as staff:
        r = await staff.post(f"/admin/campaigns/{campaign_id}/test",
                             data={"csrf_token": await csrf(staff), "address": "me@example.org"})
        assert r.status_code == 303
        page = await staff.get(r.headers["location"])
        assert "could not be reached or asked us to try later" in page.text and "Errno" not in page.text
        # A made-up reason in the address bar shows the generic words, never the text given.
        page = await staff.get(f"/admin/campaigns/{campaign_id}?notice=test-failed&reason=Call+0900+now")
        assert "Call 0900 now" not in page.text and "The mail server did not take it." in page.text
        page = await staff.get(f"/admin/campaigns/{campaign_id}?notice=test-sent&to=Call+0900+now")
        assert "Call 0900 now" not in page.text and "Test sent." in page.text
    actions = [a for a, _who, _t in await audit_actions(db) if a == "campaign_test_send"]
    assert actions == []  # nothing was sent, nothing recorded as sent
