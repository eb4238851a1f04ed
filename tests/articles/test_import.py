"""Articles come in from the sample feed and the Markdown posts, update in place, map their tags
to topics, are sanitized, and a broken or unreachable feed changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.articles.flows import import_articles
from service.articles.ingest import IngestError
from service.articles.models import Article
from service.settings import Settings
from tests.conftest import Database

SAMPLE = Path("/work/shared/sample-blog")
if not SAMPLE.exists():  # the repository's own copy when shared/ sits elsewhere
    SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "sample-blog"

RSS = """<?xml version="1.0"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>t</title>
<link>https://blog.clinic.test/</link><description>d</description>
<item><title>{title}</title><link>https://blog.clinic.test/a/</link><guid>a-1</guid>
<pubDate>Mon, 20 Jan 2025 16:45:00 +0000</pubDate><category>PTSD</category><category>Chronic-Pain</category>
<category>news</category>
<description>Short &lt;b&gt;summary&lt;/b&gt;</description>
<content:encoded><![CDATA[<p onclick="x()">Body<script>alert(1)</script><a href="javascript:alert(2)">j</a>
<img src="https://blog.clinic.test/i.png" alt="A picture"></p>]]></content:encoded></item>
</channel></rss>"""


async def _articles(db: Database) -> list[Article]:
    async with db.sessions() as session:
        return list((await session.scalars(select(Article).order_by(Article.published_at))).all())


async def test_sample_feed_imports_every_article_with_topics(db: Database, settings: Settings) -> None:
    result = await import_articles(db.sessions, settings, [str(SAMPLE / "feed.xml")])
    assert result.created == 5
    rows = await _articles(db)
    assert [r.title for r in rows][-1] == "The Therapeutic Benefits of Ketamine"
    science = next(r for r in rows if "Science" in r.title)
    assert science.topics == ["PTSD", "chronic pain", "depression"]
    assert science.link == "https://blog.example.com/posts/science-of-ketamine-therapy/"
    assert all(r.summary and r.content_html.startswith("<p>") for r in rows)


async def test_markdown_posts_import_and_match_the_feed_articles(db: Database, settings: Settings) -> None:
    result = await import_articles(db.sessions, settings, [str(SAMPLE / "posts")])
    assert result.created == 5
    rows = await _articles(db)
    post = next(r for r in rows if r.title == "Does Ketamine Therapy Get You High?")
    assert "<h2>What is Ketamine Therapy?</h2>" in post.content_html
    assert "<li>" in post.content_html
    assert post.topics == ["PTSD", "anxiety", "depression"]
    # the feed describes the same posts (same guid): importing it updates, never duplicates
    again = await import_articles(db.sessions, settings, [str(SAMPLE / "feed.xml")])
    assert again.created == 0 and again.updated == 5
    assert len(await _articles(db)) == 5


async def test_reimport_updates_in_place(db: Database, settings: Settings, tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_text(RSS.format(title="First title"))
    await import_articles(db.sessions, settings, [str(feed)])
    (before,) = await _articles(db)
    feed.write_text(RSS.format(title="Better title"))
    result = await import_articles(db.sessions, settings, [str(feed)])
    assert (result.created, result.updated) == (0, 1)
    (after,) = await _articles(db)
    assert after.id == before.id and after.title == "Better title"
    assert (await import_articles(db.sessions, settings, [str(feed)])).unchanged == 1


async def test_feed_html_is_sanitized_and_tags_map_case_insensitively(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_text(RSS.format(title="Hello"))
    await import_articles(db.sessions, settings, [str(feed)])
    (row,) = await _articles(db)
    assert "<script" not in row.content_html and "alert(1)" not in row.content_html
    assert "javascript:" not in row.content_html and "onclick" not in row.content_html
    assert row.summary == "Short summary"
    assert row.topics == ["PTSD", "chronic pain"] and row.tags == ["PTSD", "Chronic-Pain", "news"]
    assert row.image_url == "https://blog.clinic.test/i.png" and row.image_alt == "A picture"


@pytest.mark.parametrize("body", ["<html><body>not a feed</body></html>", "<rss><channel><item>", ""])
async def test_broken_feed_changes_nothing(db: Database, settings: Settings, tmp_path: Path, body: str) -> None:
    await import_articles(db.sessions, settings, [str(SAMPLE / "feed.xml")])
    before = [(a.id, a.title, a.updated_at) for a in await _articles(db)]
    broken = tmp_path / "broken.xml"
    broken.write_text(body)
    good = tmp_path / "good.xml"
    good.write_text(RSS.format(title="Would be new"))
    with pytest.raises(IngestError, match="broken.xml: not an RSS or Atom feed"):
        await import_articles(db.sessions, settings, [str(good), str(broken)])
    assert [(a.id, a.title, a.updated_at) for a in await _articles(db)] == before


async def test_unreachable_feed_url_is_one_clear_error(db: Database, settings: Settings) -> None:
    from tests.smtp import free_port

    url = f"http://127.0.0.1:{free_port()}/feed.xml"
    with pytest.raises(IngestError, match="cannot fetch the feed"):
        await import_articles(db.sessions, settings, [url])
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Article)) == 0


async def test_markdown_without_front_matter_is_refused(db: Database, settings: Settings, tmp_path: Path) -> None:
    post = tmp_path / "post.md"
    post.write_text("# Just a heading\n")
    with pytest.raises(IngestError, match="post.md: no front matter"):
        await import_articles(db.sessions, settings, [str(post)])
