"""Only http(s) addresses become links or images: a feed's `javascript:` guid, a front matter
`data:` image or a bad row already in the table never reach an `href` or `src` in a digest email,
the public archive or the admin."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from service.articles.flows import import_articles
from service.articles.models import Article
from service.campaigns import queries as q
from service.campaigns.models import Campaign
from service.campaigns.render import build_digest
from service.db import utcnow
from service.settings import Settings
from service.validation import safe_http_url
from tests.conftest import Database

JS_GUID_FEED = """<?xml version="1.0"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>t</title>
<link>https://blog.clinic.test/</link><description>d</description>
<item><title>Sneaky post</title><guid>javascript:alert(document.cookie)</guid>
<pubDate>Mon, 20 Jan 2025 16:45:00 +0000</pubDate>
<media:content url="javascript:alert(2)" medium="image"/>
<enclosure url="data:image/svg+xml,&lt;svg onload=alert(3)&gt;" type="image/svg+xml" length="1"/>
<description>Read me</description></item>
<item><title>Good post</title><link>https://blog.clinic.test/good/</link><guid>good-1</guid>
<pubDate>Tue, 21 Jan 2025 16:45:00 +0000</pubDate><description>Fine</description></item>
</channel></rss>"""

HREFS = re.compile(r'(?:href|src)="([^"]*)"')


def _bad_links(html: str) -> list[str]:
    """Every href/src in `html` that is neither http(s) nor one of our relative paths."""
    return [u for u in HREFS.findall(html) if not u.startswith(("http://", "https://", "/", "#"))]


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
    "data:text/html,<b>x</b>", "vbscript:x", "//evil.test/x", "/relative", "https://", "http:evil.test",
    "https://exa mple.org/", "https://example.org/\nx", "https://[::1", "ftp://example.org/", "", None, 3,
])
def test_safe_http_url_refuses_everything_but_absolute_http_urls(url: object) -> None:
    assert safe_http_url(url) is None


@pytest.mark.parametrize("url", ["https://blog.clinic.test/a?b=1#c", "HTTP://Example.org", "https://bücher.example/"])
def test_safe_http_url_keeps_web_addresses(url: str) -> None:
    assert safe_http_url(url) == url


async def _articles(db: Database) -> list[Article]:
    async with db.sessions() as session:
        return list((await session.scalars(select(Article).order_by(Article.published_at))).all())


async def _sent_campaign(db: Database, article_ids: list[int]) -> Campaign:
    async with db.sessions.begin() as session:
        campaign = await q.create_campaign(session, subject="Digest", article_ids=article_ids, now=utcnow(),
                                           preheader="", intro="Hello.")
        await q.start_campaign(session, campaign_id=campaign.id, now=utcnow())
        return campaign


async def test_a_javascript_guid_never_becomes_a_link(
    db: Database, settings: Settings, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_text(JS_GUID_FEED)
    result = await import_articles(db.sessions, settings, [str(feed)])
    assert result.created == 2
    sneaky, good = await _articles(db)
    assert sneaky.title == "Sneaky post" and sneaky.link == "" and sneaky.image_url is None
    assert good.link == "https://blog.clinic.test/good/"

    digest = build_digest(settings, subject="Digest", preheader="", intro="", articles=[sneaky, good])
    mail = digest.personalise(name="Ana", topics=(), unsubscribe_url="https://x.test/u")
    assert mail is not None
    assert "Sneaky post" in mail.html and "javascript:" not in mail.html + mail.text
    assert _bad_links(mail.html) == []
    assert 'href="https://blog.clinic.test/good/"' in mail.html

    campaign = await _sent_campaign(db, [sneaky.id, good.id])
    page = await client.get(f"/archive/{campaign.slug}")
    assert page.status_code == 200 and "Sneaky post" in page.text
    assert "javascript:" not in page.text and _bad_links(page.text) == []


async def test_stored_bad_urls_are_not_rendered_as_links(
    db: Database, settings: Settings, client: httpx.AsyncClient
) -> None:
    """Rows written before the rule (or by hand) are checked again when rendered."""
    async with db.sessions.begin() as session:
        row = Article(guid="old-1", link="javascript:alert(1)", title="Old post", summary="s",
                      content_html="<p>s</p>", image_url="data:image/png;base64,AAAA", image_alt="",
                      published_at=utcnow(), tags=[])
        session.add(row)
    (article,) = await _articles(db)
    digest = build_digest(settings, subject="Digest", preheader="", intro="", articles=[article])
    mail = digest.personalise(name="", topics=(), unsubscribe_url="https://x.test/u")
    assert mail is not None and "Old post" in mail.html
    assert "javascript:" not in mail.html + mail.text and "data:image" not in mail.html
    campaign = await _sent_campaign(db, [article.id])
    page = await client.get(f"/archive/{campaign.slug}")
    assert "Old post" in page.text and "javascript:" not in page.text and "data:image" not in page.text


async def test_markdown_front_matter_image_must_be_http(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    post = tmp_path / "post.md"
    post.write_text("---\ntitle: A post\nurl: https://blog.clinic.test/p/\npublished: 2025-01-20\n"
                    "image: javascript:alert(1)\n---\nBody with ![x](javascript:alert(2)) text.\n")
    await import_articles(db.sessions, settings, [str(post)])
    (row,) = await _articles(db)
    assert row.link == "https://blog.clinic.test/p/" and row.image_url is None
    assert _bad_links(row.content_html) == []
