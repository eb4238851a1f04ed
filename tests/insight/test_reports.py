"""The admin's reports: a digest read and an inquiry sent from its article show in the campaign's
and the article's reports; every report is right on known data, exports CSV (audited) and stays
behind the admin's sign-in."""

from __future__ import annotations

import csv
import datetime as dt
import io
from urllib.parse import parse_qs, urlsplit

import httpx

from service.campaigns.models import Campaign
from service.db import utcnow
from service.insight.audience import monday
from service.insight.models import ClickCount, ClickReader
from service.insight.sources import ROWS_SHOWN
from service.settings import Settings
from tests.conftest import Database
from tests.factories import (
    ADMIN_EMAIL,
    add_inquiries,
    add_subscriber,
    audit_actions,
    digest_links,
    flush_clicks,
    inquiry_row,
    new_client,
    post_json,
    sample_articles,
    send_digest,
    signup,
    subscriber,
)
from tests.smtp import SmtpServer

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


async def _csv(client: httpx.AsyncClient, url: str) -> list[list[str]]:
    r = await client.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), (url, r.status_code)
    return list(csv.reader(io.StringIO(r.text)))


def _measures(rows: list[list[str]]) -> dict[tuple[str, str], str]:
    return {(m, item): value for m, item, value in rows[1:]}


async def test_an_inquiry_sent_from_a_digest_article_shows_in_the_campaign_and_article_reports(
    db: Database, settings: Settings, smtp: SmtpServer, app, client: httpx.AsyncClient,  # type: ignore[no-untyped-def]
    admin_client: httpx.AsyncClient,
) -> None:
    campaign_id = await send_digest(db, settings, smtp, ["ana@example.org", "ben@example.org"])
    link = next(u for u in digest_links(smtp.received[0].message) if "/r/" in u)
    article_id = app.state.links.read(link.rsplit("/", 1)[1]).link
    r = await client.get(link.removeprefix("http://testserver"), headers={"user-agent": BROWSER})
    article_page = r.headers["location"]
    utm = {k: v[0] for k, v in parse_qs(urlsplit(article_page).query).items()}
    r = await post_json(client, source_page=article_page, referrer="", utm_term="", utm_content="", **utm)
    assert r.status_code == 201
    await flush_clicks(app)

    report = _measures(await _csv(admin_client, f"/admin/reports/campaigns/{campaign_id}.csv"))
    assert report[("delivered", "")] == "2" and report[("bounced", "")] == "0"
    assert report[("clicks", "")] == "1" and report[("readers", "")] == "1"
    assert report[("click_through_rate", "")] == "50.0 %"
    assert report[("inquiries", "")] == "1" and report[("inquiries_by_status", "new")] == "1"
    page = await admin_client.get(f"/admin/reports/campaigns/{campaign_id}")
    assert page.status_code == 200 and "<svg" in page.text and "Clicks by link" in page.text

    content = {row[0]: row for row in (await _csv(admin_client, "/admin/reports/content.csv"))[1:]}
    article = next(a for a in await sample_articles(db, settings) if a.id == article_id)
    assert content[article.title][3:] == ["1", "1", "1", "0"]  # clicks, readers, inquiries, signups
    assert sum(int(row[5]) for row in content.values()) == 1
    assert ("report_export", ADMIN_EMAIL, f"campaign-{campaign_id}") in await audit_actions(db)
    assert ("report_export", ADMIN_EMAIL, "content") in await audit_actions(db)


async def test_lead_sources_count_each_dimension_and_status_on_known_data(
    db: Database, admin_client: httpx.AsyncClient
) -> None:
    now = utcnow()
    last_month = now - dt.timedelta(days=35)
    await add_inquiries(db, [
        inquiry_row(1, created_at=now, status="new", topic="anxiety", utm_source="newsletter", utm_campaign="spring",
                    source_page="https://blog.clinic.test/posts/a/?utm_source=newsletter", referrer=""),
        inquiry_row(2, created_at=now, status="contacted", topic="anxiety", utm_source="newsletter",
                    utm_campaign="spring", source_page="https://blog.clinic.test/posts/a/",
                    referrer="https://www.google.com/search?q=x"),
        inquiry_row(3, created_at=last_month, status="closed", topic="PTSD", source_page="https://blog.clinic.test/contact",
                    referrer="https://www.google.com/"),
        inquiry_row(4, created_at=now, status="spam", topic="PTSD"),  # no lead
        inquiry_row(5, created_at=now, status="held", topic="PTSD"),  # no lead
        inquiry_row(6, created_at=now - dt.timedelta(days=800), status="qualified"),  # before the period
    ])
    rows = await _csv(admin_client, "/admin/reports/leads.csv?months=12")
    assert rows[0] == ["dimension", "value", "new", "contacted", "qualified", "closed", "total"]
    found = {(r[0], r[1]): r[2:] for r in rows[1:]}
    assert found[("page", "blog.clinic.test/posts/a")] == ["1", "1", "0", "0", "2"]
    assert found[("page", "blog.clinic.test/contact")] == ["0", "0", "0", "1", "1"]
    assert found[("site", "www.google.com")] == ["0", "1", "0", "1", "2"]
    assert found[("site", "(none)")] == ["1", "0", "0", "0", "1"]
    assert found[("utm_campaign", "spring")] == ["1", "1", "0", "0", "2"]
    assert found[("topic", "anxiety")] == ["1", "1", "0", "0", "2"] and ("topic", "PTSD") in found
    assert found[("topic", "PTSD")] == ["0", "0", "0", "1", "1"]  # spam and held left out
    assert found[("month", f"{now:%Y-%m}")][4] == "2" and found[("month", f"{last_month:%Y-%m}")][4] == "1"
    assert sum(int(v[4]) for (d, _), v in found.items() if d == "month") == 3
    page = await admin_client.get("/admin/reports/leads?months=12")
    assert page.status_code == 200 and "blog.clinic.test/posts/a" in page.text
    bad = await admin_client.get("/admin/reports/leads?months=lots")
    assert bad.status_code == 400 and "Months: enter a whole number" in bad.text


async def test_audience_counts_weeks_and_topics_on_known_data(db: Database, admin_client: httpx.AsyncClient) -> None:
    now = utcnow()
    this_week = dt.datetime.combine(monday(now.date()), dt.time(10), dt.UTC)
    before = this_week - dt.timedelta(weeks=1)
    await add_subscriber(db, "a@example.org", topics=["anxiety"], signup_at=this_week, confirmed_at=this_week)
    await add_subscriber(db, "b@example.org", topics=["anxiety", "PTSD"], signup_at=this_week, confirmed_at=this_week)
    await add_subscriber(db, "c@example.org", status="pending", signup_at=this_week, confirmed_at=None)
    await add_subscriber(db, "d@example.org", status="unsubscribed", signup_at=before, confirmed_at=before,
                         unsubscribed_at=this_week)
    await add_subscriber(db, "e@example.org", signup_at=before, confirmed_at=before)  # every topic
    rows = _measures(await _csv(admin_client, "/admin/reports/audience.csv"))
    week, last = this_week.date().isoformat(), before.date().isoformat()
    assert rows[("signups", week)] == "3" and rows[("confirmation_rate", week)] == "66.7 %"
    assert rows[("confirmed", week)] == "2" and rows[("unsubscribed", week)] == "1" and rows[("net", week)] == "1"
    assert rows[("signups", last)] == "2" and rows[("net", last)] == "2"
    assert rows[("subscribers_by_topic", "anxiety")] == "2"
    assert rows[("subscribers_by_topic", "PTSD")] == "1"
    assert rows[("subscribers_by_topic", "(every topic)")] == "1"
    page = await admin_client.get("/admin/reports/audience")
    assert page.status_code == 200 and page.text.count("<svg") == 2


async def test_campaign_clicks_over_time_and_beside_the_previous_campaign_on_known_data(
    db: Database, settings: Settings, admin_client: httpx.AsyncClient
) -> None:
    articles = await sample_articles(db, settings)
    from service.campaigns import queries as q

    started = dt.datetime(2026, 11, 3, 9, 20, tzinfo=dt.UTC)
    async with db.sessions.begin() as session:
        older = await q.create_campaign(session, subject="October", article_ids=[articles[0].id], now=started)
        newer = await q.create_campaign(session, subject="November", article_ids=[a.id for a in articles[:2]],
                                        now=started)
        for c, when in ((older, started - dt.timedelta(days=30)), (newer, started)):
            (await session.get(Campaign, c.id)).started_at = when  # type: ignore[union-attr]
        hour = started.replace(minute=0)
        session.add_all([
            ClickCount(campaign_id=newer.id, link=articles[0].id, hour=hour, kind="person", clicks=7),
            ClickCount(campaign_id=newer.id, link=articles[0].id, hour=hour + dt.timedelta(hours=5), kind="person",
                       clicks=3),
            ClickCount(campaign_id=newer.id, link=articles[1].id, hour=hour, kind="burst", clicks=4),
            ClickCount(campaign_id=newer.id, link=0, hour=hour + dt.timedelta(days=9), kind="person", clicks=2),
            ClickCount(campaign_id=older.id, link=articles[0].id, hour=hour, kind="person", clicks=5),
            *(ClickReader(campaign_id=newer.id, link=articles[0].id, day=started.date(), reader=f"{n:016x}")
              for n in range(6)),
            ClickReader(campaign_id=newer.id, link=0, day=started.date(), reader=f"{0:016x}"),
        ])
    report = _measures(await _csv(admin_client, f"/admin/reports/campaigns/{newer.id}.csv"))
    assert report[("clicks", "")] == "12" and report[("readers", "")] == "6"
    assert report[("scanner_clicks", "burst")] == "4"
    assert report[("clicks_by_link", articles[0].title)] == "10"
    assert report[("readers_by_link", articles[0].title)] == "6"
    assert report[("clicks_by_link", articles[1].title)] == "0"
    assert report[("clicks_by_hour", f"{hour:%Y-%m-%dT%H:00Z}")] == "7"
    assert report[("clicks_by_hour", f"{hour + dt.timedelta(hours=5):%Y-%m-%dT%H:00Z}")] == "3"
    assert report[("clicks_later", "")] == "2"
    page = await admin_client.get(f"/admin/reports/campaigns/{newer.id}")
    assert "October" in page.text and f"/admin/reports/campaigns/{older.id}" in page.text


async def test_reports_are_behind_the_sign_in(app) -> None:  # type: ignore[no-untyped-def]
    async with new_client(app) as anonymous:
        for path in ("/admin/reports", "/admin/reports/content", "/admin/reports/leads.csv",
                     "/admin/reports/audience.csv", "/admin/reports/campaigns/1"):
            r = await anonymous.get(path)
            assert r.status_code in (302, 303) and "/admin/login" in r.headers["location"], path


async def test_a_campaign_that_does_not_exist_has_no_report(admin_client: httpx.AsyncClient) -> None:
    r = await admin_client.get("/admin/reports/campaigns/999")
    assert r.status_code == 404 and "There is no such campaign" in r.text


async def test_signups_made_on_an_article_count_for_it_and_a_bad_page_is_not_kept(
    db: Database, settings: Settings, client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    article = (await sample_articles(db, settings))[0]
    r = await signup(client, "ana@example.org", source_page=f"{article.link}#subscribe")
    assert r.status_code == 303  # on to "check your inbox"
    r = await signup(client, "ben@example.org", headers={"referer": article.link.rstrip("/") + "?utm_source=x"})
    assert r.status_code == 303
    await signup(client, "cy@example.org", source_page="javascript:alert(1)")
    content = {row[0]: row for row in (await _csv(admin_client, "/admin/reports/content.csv"))[1:]}
    assert content[article.title][6] == "2"
    assert (await subscriber(db, "cy@example.org")).signup_page is None  # type: ignore[union-attr]


async def test_the_lead_sources_export_holds_every_source_and_the_page_the_busiest(
    db: Database, admin_client: httpx.AsyncClient
) -> None:
    now = utcnow()
    pages = ROWS_SHOWN + 5
    await add_inquiries(db, [inquiry_row(i, created_at=now, source_page=f"https://blog.clinic.test/posts/{i % pages}/")
                             for i in range(pages + 1)])  # posts/0 twice: the busiest
    rows = await _csv(admin_client, "/admin/reports/leads.csv")
    found = {r[1]: r[6] for r in rows[1:] if r[0] == "page"}
    assert len(found) == pages and found["blog.clinic.test/posts/0"] == "2"
    assert sum(int(n) for n in found.values()) == pages + 1
    page = (await admin_client.get("/admin/reports/leads")).text
    assert "blog.clinic.test/posts/0<" in page
    assert sum(f"blog.clinic.test/posts/{i}<" in page for i in range(pages)) == ROWS_SHOWN
