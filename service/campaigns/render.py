"""Digest rendering: the whole email is rendered (and its CSS inlined) ONCE per campaign; per
recipient it is only assembled from the pre-rendered pieces: the greeting (escaped), the article
blocks that match the subscriber's topics, and the unsubscribe / preference URL.

The template wraps every article in `<!--article:ID-->` markers and uses fixed placeholders for
the personal parts, so the assembly is a few string joins and replaces, not a template run.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from service.articles.models import Article
from service.mail.render import html_env, inline_css, text_env
from service.settings import Settings

GREETING = "@@TIDINGS_GREETING@@"
UNSUBSCRIBE = "@@TIDINGS_UNSUBSCRIBE_URL@@"
_BLOCK = re.compile(r"<!--article:(\d+)-->\n?(.*?)<!--/article:\1-->\n?", re.DOTALL)


@dataclass(frozen=True)
class Block:
    article_id: int
    topics: frozenset[str]
    html: str
    text: str


@dataclass(frozen=True)
class Personal:
    html: str
    text: str
    article_ids: tuple[int, ...]


@dataclass(frozen=True)
class DigestTemplate:
    """A campaign's rendered digest, ready to be personalised per recipient."""

    subject: str
    html_head: str
    html_tail: str
    text_head: str
    text_tail: str
    blocks: tuple[Block, ...]

    def articles_for(self, topics: Iterable[str]) -> list[Block]:
        """Blocks for a subscriber with `topics` (none chosen = every topic); articles without
        topics are for everyone."""
        chosen = frozenset(topics)
        return [b for b in self.blocks if not chosen or not b.topics or b.topics & chosen]

    def personalise(self, *, name: str, topics: Iterable[str], unsubscribe_url: str) -> Personal | None:
        """This recipient's HTML and text, or None when none of the articles match their topics."""
        blocks = self.articles_for(topics)
        if not blocks:
            return None
        greeting = greeting_for(name)
        url_html = html.escape(unsubscribe_url, quote=True)
        body_html = "".join(
            [self.html_head.replace(GREETING, html.escape(greeting, quote=False)),
             *(b.html for b in blocks), self.html_tail.replace(UNSUBSCRIBE, url_html)]
        )
        body_text = "".join(
            [self.text_head.replace(GREETING, greeting), *(b.text for b in blocks),
             self.text_tail.replace(UNSUBSCRIBE, unsubscribe_url)]
        )
        return Personal(body_html, body_text, tuple(b.article_id for b in blocks))


def greeting_for(name: str) -> str:
    name = " ".join(name.split())  # no line breaks or runs of spaces from a stored name
    return f"Hello {name}," if name else "Hello,"


def article_context(article: Article) -> dict[str, Any]:
    return {
        "id": article.id,
        "title": article.title,
        "link": article.link,
        "summary": article.summary,
        "image_url": article.image_url,
        "image_alt": article.image_alt or article.title,
        "published": f"{article.published_at:%-d %B %Y}",
        "topics": article.topics,
    }


def digest_context(
    settings: Settings, *, subject: str, preheader: str, intro: str, articles: Sequence[Article],
    slug: str | None,
) -> dict[str, Any]:
    return {
        "lang": "en",
        "org_name": settings.org_name,
        "subject": subject,
        "preheader": preheader or (articles[0].title if articles else subject),
        "intro_paragraphs": [p.strip() for p in re.split(r"\n\s*\n", intro) if p.strip()],
        "articles": [article_context(a) for a in articles],
        "archive_url": f"{settings.base_url}/archive/{slug}" if slug else None,
    }


def _split(document: str, kind: str) -> tuple[str, str, dict[int, str]]:
    matches = list(_BLOCK.finditer(document))
    if not matches:
        raise ValueError(f"digest {kind} template has no article markers")
    head = document[: matches[0].start()]
    tail = document[matches[-1].end():]
    return head, tail, {int(m.group(1)): m.group(2) for m in matches}


def build_digest(
    settings: Settings, *, subject: str, preheader: str, intro: str, articles: Sequence[Article],
    slug: str | None = None,
) -> DigestTemplate:
    """Render the digest once (HTML with CSS inlined, and text) with placeholders."""
    if not articles:
        raise ValueError("a digest needs at least one article")
    ctx = digest_context(settings, subject=subject, preheader=preheader, intro=intro, articles=articles, slug=slug)
    ctx.update(greeting=GREETING, unsubscribe_url=UNSUBSCRIBE, preferences_url=UNSUBSCRIBE)
    html_doc = inline_css(html_env().get_template("digest.html").render(ctx))
    text_doc = text_env().get_template("digest.txt").render(ctx)
    html_head, html_tail, html_blocks = _split(html_doc, "HTML")
    text_head, text_tail, text_blocks = _split(text_doc, "text")
    blocks = tuple(
        Block(a.id, frozenset(a.topics), html_blocks[a.id], text_blocks[a.id]) for a in articles
    )
    return DigestTemplate(subject, html_head, html_tail, text_head, text_tail, blocks)
