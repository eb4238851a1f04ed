"""Reading articles: RSS 2.0 / Atom feeds (feedparser, fetched with httpx under a timeout and a
size cap) and Markdown files with a small YAML-like front matter (rendered with markdown-it-py).

Everything is parsed before anything is written, so a broken or unreachable source raises one
`IngestError` and the database is left as it was. Article HTML is sanitized with nh3 here, once,
so nothing from a feed can carry a script into an email or a page.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import httpx
import nh3
from markdown_it import MarkdownIt

from service.validation import safe_http_url

MAX_FEED_BYTES = 10 * 1024 * 1024
FETCH_TIMEOUT = 20.0  # per connect/read: how long the server may stay silent
FETCH_DEADLINE = 30.0  # the whole fetch (FEED_FETCH_DEADLINE): a server that drips bytes is cut off
SUMMARY_CHARS = 400


class IngestError(Exception):
    """A source could not be read or parsed; the message names it."""


@dataclass
class ParsedArticle:
    guid: str
    link: str
    title: str
    summary: str
    content_html: str
    published_at: dt.datetime
    tags: list[str] = field(default_factory=list)
    image_url: str | None = None
    image_alt: str = ""
    source: str = ""


_ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def sanitize_html(value: str) -> str:
    """Article HTML safe for an email or a page: no scripts, styles, event handlers or js: URLs."""
    return nh3.clean(value, url_schemes=_ALLOWED_URL_SCHEMES, link_rel="noopener noreferrer")


def html_to_text(value: str) -> str:
    """Plain text of an HTML fragment (tags dropped, entities decoded, whitespace collapsed)."""
    text = nh3.clean(value, tags=set(), attributes={})
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


def shorten(text: str, limit: int = SUMMARY_CHARS) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(" ,.;:") + "…"


def _first_image(content_html: str) -> tuple[str | None, str]:
    match = re.search(r"<img\b[^>]*>", content_html)
    if not match:
        return None, ""
    src = re.search(r'\bsrc="([^"]+)"', match.group(0))
    alt = re.search(r'\balt="([^"]*)"', match.group(0))
    return safe_http_url(html.unescape(src.group(1)) if src else None), html.unescape(alt.group(1)) if alt else ""


# -- feeds ---------------------------------------------------------------------------------


def parse_feed(data: bytes, *, source: str) -> list[ParsedArticle]:
    """Every entry of an RSS 2.0 or Atom document; IngestError when it is not a usable feed."""
    parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    reason = parsed.get("bozo_exception")
    # A feed that is not well-formed XML (truncated, HTML) is refused as a whole; a mere encoding
    # mismatch that feedparser recovered from is not.
    malformed = parsed.get("bozo") and not isinstance(
        reason, feedparser.CharacterEncodingOverride | feedparser.NonXMLContentType
    )
    if not parsed.get("version") or malformed or (parsed.get("bozo") and not parsed.entries):
        detail = f": {str(reason).splitlines()[0]}" if reason else ""
        raise IngestError(f"{source}: not an RSS or Atom feed{detail}")
    articles = [_feed_article(entry, source) for entry in parsed.entries]
    return [a for a in articles if a is not None]


def _feed_article(entry: Any, source: str) -> ParsedArticle | None:
    guid = str(entry.get("id") or entry.get("link") or "").strip()
    # Only an http(s) address may become the article's link; a guid such as
    # `javascript:…` or `tag:…` stays a key and nothing more (no link at all is fine).
    link = safe_http_url(entry.get("link")) or safe_http_url(guid) or ""
    title = html_to_text(entry.get("title", ""))
    if not guid or not title:
        return None
    content = ""
    if entry.get("content"):
        content = max((c.get("value", "") for c in entry.content), key=len)
    summary_html = entry.get("summary", "") or ""
    content_html = sanitize_html(content or summary_html)
    summary = shorten(html_to_text(summary_html or content_html))
    struct = entry.get("published_parsed") or entry.get("updated_parsed")
    published = dt.datetime(*struct[:6]).replace(tzinfo=dt.UTC) if struct else dt.datetime.now(dt.UTC)
    tags = [t.get("term", "").strip() for t in entry.get("tags", []) if t.get("term", "").strip()]
    image_url, image_alt = None, ""
    for media in [*entry.get("media_content", []), *entry.get("media_thumbnail", [])]:
        image_url = image_url or safe_http_url(media.get("url"))
    for enclosure in entry.get("enclosures", []):
        if str(enclosure.get("type", "")).startswith("image/"):
            image_url = image_url or safe_http_url(enclosure.get("href"))
    if image_url is None:
        image_url, image_alt = _first_image(content_html)
    return ParsedArticle(
        guid=guid[:1000], link=link, title=title[:500], summary=summary, content_html=content_html,
        published_at=published, tags=tags, image_url=image_url, image_alt=image_alt or title, source=source,
    )


async def fetch_feed(url: str, *, deadline: float = FETCH_DEADLINE, max_bytes: int = MAX_FEED_BYTES) -> bytes:
    """The body at `url`; IngestError when unreachable, not 200, larger than `max_bytes`, or not
    complete within `deadline` seconds in all (httpx's timeout applies to each read only, so a
    server sending a byte a second would otherwise hold the import for as long as it likes)."""
    try:
        async with asyncio.timeout(deadline):
            return await _fetch(url, time_limit=min(FETCH_TIMEOUT, deadline), max_bytes=max_bytes)
    except TimeoutError:
        raise IngestError(f"{url}: the feed did not arrive within {deadline:g} seconds") from None


async def _fetch(url: str, *, time_limit: float, max_bytes: int) -> bytes:
    try:
        async with httpx.AsyncClient(timeout=time_limit, follow_redirects=True, max_redirects=5) as client:
            async with client.stream("GET", url, headers={"User-Agent": "Tidings feed reader"}) as response:
                if response.status_code != 200:
                    raise IngestError(f"{url}: the server answered HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise IngestError(f"{url}: the feed is larger than {max_bytes // (1024 * 1024)} MB")
                return bytes(body)
    except httpx.HTTPError as exc:
        raise IngestError(f"{url}: cannot fetch the feed ({type(exc).__name__}: {exc})") from exc


# -- Markdown files --------------------------------------------------------------------------

_MD = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.DOTALL)


def parse_front_matter(text: str, *, source: str) -> tuple[dict[str, Any], str]:
    """(fields, body) of a document with `key: value` front matter (strings, [lists])."""
    match = _FRONT_MATTER.match(text)
    if not match:
        raise IngestError(f"{source}: no front matter (a block between --- lines at the top)")
    fields: dict[str, Any] = {}
    for number, line in enumerate(match.group(1).splitlines(), start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip() or key != key.strip():
            raise IngestError(f"{source}: front matter line {number} is not 'key: value'")
        fields[key.strip()] = _scalar_or_list(value.strip())
    return fields, text[match.end():]


def _scalar_or_list(value: str) -> Any:
    if value.startswith("[") and value.endswith("]"):
        return [_unquote(v.strip()) for v in value[1:-1].split(",") if v.strip()]
    return _unquote(value)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        inner = value[1:-1]
        return inner.replace('\\"', '"').replace("\\\\", "\\") if value[0] == '"' else inner.replace("''", "'")
    return value


def parse_markdown(text: str, *, source: str) -> ParsedArticle:
    """One article from a Markdown file with front matter (title, url, published, tags, summary)."""
    fields, body = parse_front_matter(text, source=source)
    title = str(fields.get("title") or "").strip()
    if not title:
        raise IngestError(f"{source}: front matter has no title")
    link = safe_http_url(str(fields.get("url") or fields.get("link") or ""))
    if not link:
        raise IngestError(f"{source}: front matter has no http(s) url")
    try:
        published = dt.datetime.fromisoformat(str(fields.get("published") or fields.get("date") or ""))
    except ValueError:
        raise IngestError(
            f"{source}: front matter 'published' is not an ISO date such as 2025-01-20T16:45:00+00:00"
        ) from None
    if published.tzinfo is None:
        published = published.replace(tzinfo=dt.UTC)
    tags = fields.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    content_html = sanitize_html(_MD.render(body))
    summary = shorten(html_to_text(str(fields.get("summary") or "")) or html_to_text(content_html))
    image_url = safe_http_url(str(fields.get("image") or "")) or _first_image(content_html)[0]
    return ParsedArticle(
        guid=str(fields.get("guid") or link), link=link, title=title[:500], summary=summary,
        content_html=content_html, published_at=published.astimezone(dt.UTC), tags=list(tags),
        image_url=image_url, image_alt=str(fields.get("image_alt") or title), source=source,
    )


# -- sources ---------------------------------------------------------------------------------


def _read_file(path: Path) -> list[ParsedArticle]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if path.suffix.lower() in (".md", ".markdown"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise IngestError(f"{path}: not UTF-8 text") from None
        return [parse_markdown(text, source=str(path))]
    return parse_feed(data, source=str(path))


def _read_path(source: str) -> list[ParsedArticle]:
    path = Path(source[len("file://"):] if source.startswith("file://") else source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".md", ".markdown"))
        if not files:
            raise IngestError(f"{path}: no Markdown files in this folder")
        return [article for file in files for article in _read_file(file)]
    if path.exists():
        return _read_file(path)
    raise IngestError(f"{source}: no such file, and not an http(s) URL")


async def load_sources(sources: Iterable[str], *, deadline: float = FETCH_DEADLINE) -> list[ParsedArticle]:
    """Parse every source (feed URL, feed file, Markdown file, or a folder of .md files) first;
    each URL must arrive within `deadline` seconds."""
    articles: list[ParsedArticle] = []
    for source in sources:
        if urlsplit(source).scheme in ("http", "https"):
            articles += parse_feed(await fetch_feed(source, deadline=deadline), source=source)
            continue
        articles += await asyncio.to_thread(_read_path, source)
    return articles
