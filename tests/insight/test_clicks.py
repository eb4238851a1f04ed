"""A real digest sent through a real SMTP server, its links followed by an HTTP client: the
clicks are counted per campaign and link, scanners apart, nothing names a subscriber, a changed
token is refused, and the redirect only ever goes to the address that was signed."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select

from service.app import create_app
from service.insight.models import ClickReader
from service.settings import Settings
from tests.conftest import Database, make_settings
from tests.factories import (
    click_counts,
    digest_links,
    flush_clicks,
    new_client,
    send_digest,
    text_of,
)
from tests.smtp import SmtpServer

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


async def _send(db: Database, settings: Settings, smtp: SmtpServer) -> int:
    return await send_digest(db, settings, smtp, ["ana@example.org", "ben@example.org"])


def _path(url: str) -> str:
    assert url.startswith("http://testserver/r/"), url
    return url.removeprefix("http://testserver")


async def test_digest_links_are_counted_per_campaign_and_link_and_name_nobody(
    db: Database, settings: Settings, smtp: SmtpServer, app, client: httpx.AsyncClient  # type: ignore[no-untyped-def]
) -> None:
    campaign_id = await _send(db, settings, smtp)
    ana, ben = (next(m.message for m in smtp.received if m.recipients == [a])
                for a in ("ana@example.org", "ben@example.org"))
    links = [u for u in digest_links(ana) if "/r/" in u]
    assert links and links == [u for u in digest_links(ben) if "/r/" in u]  # the same links for everyone
    assert "/r/" in text_of(ana) and "blog.example.com" not in text_of(ana)

    first = await client.get(_path(links[0]), headers={"user-agent": BROWSER})
    assert first.status_code == 302
    target = urlsplit(first.headers["location"])
    assert target.netloc == "blog.example.com"
    assert parse_qs(target.query) == {"utm_source": ["newsletter"], "utm_medium": ["email"],
                                      "utm_campaign": [await _slug(db, campaign_id)]}
    await client.get(_path(links[0]), headers={"user-agent": BROWSER})  # the same reader again
    other = new_client(app, ip="198.51.100.9")
    async with other:
        await other.get(_path(links[0]), headers={"user-agent": BROWSER})
    signed = {u: app.state.links.read(_path(u).removeprefix("/r/")) for u in links}
    article_link = signed[links[0]].link
    archive = next(u for u, link in signed.items() if link.link == 0)  # "view in browser"
    r = await client.get(_path(archive), headers={"user-agent": BROWSER})
    assert r.status_code == 302 and r.headers["location"] == f"http://testserver/archive/{await _slug(db, campaign_id)}"
    assert await click_counts(db) == {}  # counted in memory, written in batches
    await flush_clicks(app)

    assert await click_counts(db) == {(campaign_id, article_link, "person"): 3, (campaign_id, 0, "person"): 1}
    async with db.sessions() as session:
        readers = (await session.scalars(select(ClickReader).where(ClickReader.link == article_link))).all()
        assert len(readers) == 2  # two clients: distinct readers, not clicks
        for table in ("click_counts", "click_readers"):
            columns = await session.run_sync(lambda s, t=table: [c["name"] for c in sa_inspect(s.connection())
                                                                 .get_columns(t)])
            assert not any("subscriber" in c or "email" in c or "ip" in c for c in columns), columns
    assert all(len(r.reader) == 16 for r in readers)


async def _slug(db: Database, campaign_id: int) -> str:
    from service.campaigns.models import Campaign

    async with db.sessions() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        return campaign.slug


async def test_a_changed_token_is_refused_and_counts_nothing(
    db: Database, settings: Settings, smtp: SmtpServer, app, client: httpx.AsyncClient  # type: ignore[no-untyped-def]
) -> None:
    await _send(db, settings, smtp)
    link = _path(next(u for u in digest_links(smtp.received[0].message) if "/r/" in u))
    token = link.removeprefix("/r/")
    changed = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for bad in (f"/r/{changed}", "/r/x", f"/r/{token[:20]}"):
        r = await client.get(bad, headers={"user-agent": BROWSER})
        assert r.status_code == 400 and "This link is not valid" in r.text
        assert "location" not in r.headers
    await flush_clicks(app)
    assert await click_counts(db) == {}


async def test_a_scanners_head_request_is_counted_apart_and_still_redirected(
    db: Database, settings: Settings, smtp: SmtpServer, app, client: httpx.AsyncClient  # type: ignore[no-untyped-def]
) -> None:
    campaign_id = await _send(db, settings, smtp)
    link = _path(next(u for u in digest_links(smtp.received[0].message) if "/r/" in u))
    r = await client.head(link, headers={"user-agent": BROWSER})
    assert r.status_code == 302 and r.headers["location"].startswith("https://blog.example.com/")
    await client.get(link, headers={"user-agent": "Mozilla/5.0 (compatible; BarracudaCentral)"})
    await client.get(link, headers={"user-agent": BROWSER})
    await flush_clicks(app)
    counts = await click_counts(db)
    kinds = {k: n for (c, _link, k), n in counts.items() if c == campaign_id}
    assert kinds == {"head": 1, "agent": 1, "person": 1}


async def test_with_click_counting_off_links_go_straight_to_the_blog_with_utm_fields(
    db: Database, smtp: SmtpServer
) -> None:
    settings = make_settings(db, click_counting=False)
    campaign_id = await _send(db, settings, smtp)
    links = digest_links(smtp.received[0].message)
    assert not any("/r/" in u for u in links)
    article = next(u for u in links if u.startswith("https://blog.example.com/"))
    assert f"utm_campaign={await _slug(db, campaign_id)}" in article and "utm_source=newsletter" in article
    assert any(u.startswith("http://testserver/archive/") for u in links)


async def test_with_utm_tagging_off_the_signed_link_is_the_articles_own(db: Database, smtp: SmtpServer) -> None:
    settings = make_settings(db, utm_tagging=False)
    await _send(db, settings, smtp)
    link = _path(next(u for u in digest_links(smtp.received[0].message) if "/r/" in u))
    async with new_client(create_app(settings, sessions=db.sessions)) as client:
        r = await client.get(link, headers={"user-agent": BROWSER})
    assert r.status_code == 302 and "utm_" not in r.headers["location"]
    assert re.fullmatch(r"https://blog\.example\.com/posts/[a-z0-9-]+/", r.headers["location"])


async def test_a_redirect_carries_the_headers_of_every_answer_and_logs_one_line_without_its_token(
    db: Database, settings: Settings, smtp: SmtpServer, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await _send(db, settings, smtp)
    link = _path(next(u for u in digest_links(smtp.received[0].message) if "/r/" in u))
    page = await client.get("/healthz")
    with caplog.at_level(logging.INFO, logger="tidings.access"):
        r = await client.get(link, headers={"user-agent": BROWSER})
    assert r.status_code == 302 and r.headers["cache-control"] == "no-store" and r.content == b""
    for name in ("content-security-policy", "x-content-type-options", "referrer-policy",
                 "cross-origin-opener-policy", "permissions-policy"):
        assert r.headers[name] == page.headers[name], name
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "tidings.access"]
    assert len(lines) == 1 and lines[0].startswith("GET /r/… 302 ")
    assert link.removeprefix("/r/") not in lines[0] and r.headers["x-request-id"] in lines[0]


async def test_a_link_sent_before_click_counting_was_switched_off_still_leads_to_its_article(
    db: Database, settings: Settings, smtp: SmtpServer
) -> None:
    await _send(db, settings, smtp)
    link = _path(next(u for u in digest_links(smtp.received[0].message) if "/r/" in u))
    off = create_app(settings.with_(click_counting=False), sessions=db.sessions)
    async with new_client(off) as client:
        r = await client.get(link, headers={"user-agent": BROWSER})
        assert (await client.post(link)).status_code == 405
    assert r.status_code == 302 and r.headers["location"].startswith("https://blog.example.com/posts/")
    await flush_clicks(off)
    assert await click_counts(db) == {}
