"""Digest rendering: the whole email is rendered (and its CSS inlined) ONCE per campaign; per
recipient it is only assembled from the pre-rendered pieces: the greeting (escaped), the article
blocks that match the subscriber's topics, and the unsubscribe / preference URL.

The template wraps every article in `<!--article:ID-->` markers and uses fixed placeholders for
the personal parts, so the assembly is a few string joins and replaces, not a template run.
"""

from __future__ import annotations

import binascii
import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from markdown_it import MarkdownIt
from markupsafe import Markup

from service.admin.brand import Brand, brand_context, effective_brand
from service.articles.ingest import sanitize_html
from service.articles.models import Article
from service.i18n import SOURCE_LANGUAGE, current_language, format_date, gettext, language
from service.insight.links import DigestLinks
from service.mail.dkim import relaxed_lines
from service.mail.render import html_env, inline_css, text_env
from service.newsletter.audience import topics_match
from service.settings import Settings
from service.validation import safe_http_url

GREETING = "@@TIDINGS_GREETING@@"
UNSUBSCRIBE = "@@TIDINGS_UNSUBSCRIBE_URL@@"
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_BLOCK = re.compile(r"<!--article:(\d+)-->\n?(.*?)<!--/article:\1-->\n?", re.DOTALL)


def qp(text: str) -> bytes:
    """Quoted-printable UTF-8 with CRLF line ends (binascii, in C). Encoding whole lines
    separately gives the same bytes as encoding them together, so pieces are encoded once."""
    data = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True, header=False)
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _lines_end(piece: str) -> str:
    return piece if piece.endswith("\n") else piece + "\n"


@dataclass(frozen=True)
class Encoded:
    """A line-aligned piece: static runs of lines pre-encoded, lines with placeholders kept."""

    parts: tuple[bytes | str, ...]
    canon: tuple[bytes | str, ...] = ()  # the same, its static runs in DKIM's relaxed form

    @classmethod
    def of(cls, piece: str) -> Encoded:
        if not piece:
            return cls((), ())
        parts: list[bytes | str] = []
        static: list[str] = []
        for line in _lines_end(piece).splitlines(keepends=True):
            if GREETING in line or UNSUBSCRIBE in line:
                if static:
                    parts.append(qp("".join(static)))
                    static = []
                parts.append(line)
            else:
                static.append(line)
        if static:
            parts.append(qp("".join(static)))
        return cls(tuple(parts), tuple(relaxed_lines(p) if isinstance(p, bytes) else p for p in parts))

    def fill(self, greeting: str, url: str) -> bytes:
        return b"".join(
            p if isinstance(p, bytes) else qp(p.replace(GREETING, greeting).replace(UNSUBSCRIBE, url))
            for p in self.parts
        )

    def fill_signed(self, greeting: str, url: str) -> tuple[bytes, bytes]:
        """`fill`, and the same lines canonicalised for DKIM (only the personal ones per call)."""
        out: list[bytes] = []
        canon: list[bytes] = []
        for part, relaxed in zip(self.parts, self.canon, strict=True):
            if isinstance(part, bytes) and isinstance(relaxed, bytes):
                out.append(part)
                canon.append(relaxed)
            else:
                line = qp(str(part).replace(GREETING, greeting).replace(UNSUBSCRIBE, url))
                out.append(line)
                canon.append(relaxed_lines(line))
        return b"".join(out), b"".join(canon)


@dataclass(frozen=True)
class Block:
    article_id: int
    topics: frozenset[str]
    html: str
    text: str
    html_qp: bytes
    text_qp: bytes
    html_canon: bytes = b""  # html_qp and text_qp in DKIM's relaxed form (`relaxed_lines`)
    text_canon: bytes = b""


class Bodies(NamedTuple):
    """One recipient's bodies, quoted-printable, and (for DKIM) in the relaxed form."""

    html: bytes
    text: bytes
    html_relaxed: bytes | None = None
    text_relaxed: bytes | None = None


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
    encoded: tuple[Encoded, Encoded, Encoded, Encoded]  # html head, html tail, text head, text tail
    # A campaign with its own body goes to everyone it is queued for, whether or not an article
    # matches their topics; a digest without one only to those who get at least one article.
    has_body: bool = False
    lang: str = SOURCE_LANGUAGE  # of its fixed texts (greeting, footer, dates): one rendering per language

    def encode_for(self, *, name: str, topics: Iterable[str], unsubscribe_url: str, relaxed: bool = False
                   ) -> Bodies | None:
        """The HTML and text bodies, quoted-printable, for the message builder; None when no
        article matches. Only the lines with a personal part are encoded per recipient. With
        `relaxed` (DKIM), each body in the relaxed form too: the shared pieces were canonicalised
        once per campaign, so signing hashes without canonicalising the whole message again."""
        blocks = self.articles_for(topics)
        if not blocks and not self.has_body:
            return None
        greeting = greeting_for(name, self.lang)
        html_head, html_tail, text_head, text_tail = self.encoded
        url_html = html.escape(unsubscribe_url, quote=True)
        greeting_html = html.escape(greeting, quote=False)
        if not relaxed:
            return Bodies(b"".join([html_head.fill(greeting_html, url_html), *(b.html_qp for b in blocks),
                                    html_tail.fill("", url_html)]),
                          b"".join([text_head.fill(greeting, unsubscribe_url), *(b.text_qp for b in blocks),
                                    text_tail.fill("", unsubscribe_url)]))
        hh, hh_r = html_head.fill_signed(greeting_html, url_html)
        ht, ht_r = html_tail.fill_signed("", url_html)
        th, th_r = text_head.fill_signed(greeting, unsubscribe_url)
        tt, tt_r = text_tail.fill_signed("", unsubscribe_url)
        return Bodies(b"".join([hh, *(b.html_qp for b in blocks), ht]),
                      b"".join([th, *(b.text_qp for b in blocks), tt]),
                      b"".join([hh_r, *(b.html_canon for b in blocks), ht_r]),
                      b"".join([th_r, *(b.text_canon for b in blocks), tt_r]))

    def articles_for(self, topics: Iterable[str]) -> list[Block]:
        """The blocks a subscriber with `topics` wants (`service.newsletter.audience.topics_match`)."""
        chosen = frozenset(topics)
        return [b for b in self.blocks if topics_match(chosen, b.topics)]

    def personalise(self, *, name: str, topics: Iterable[str], unsubscribe_url: str) -> Personal | None:
        """This recipient's HTML and text, or None when none of the articles match their topics."""
        blocks = self.articles_for(topics)
        if not blocks and not self.has_body:
            return None
        greeting = greeting_for(name, self.lang)
        url_html = html.escape(unsubscribe_url, quote=True)
        greeting_html = html.escape(greeting, quote=False)
        body_html = "".join(
            [_fill(self.html_head, greeting_html, url_html), *(b.html for b in blocks),
             _fill(self.html_tail, "", url_html)]
        )
        body_text = "".join(
            [_fill(self.text_head, greeting, unsubscribe_url), *(b.text for b in blocks),
             _fill(self.text_tail, "", unsubscribe_url)]
        )
        return Personal(body_html, body_text, tuple(b.article_id for b in blocks))


def _fill(piece: str, greeting: str, url: str) -> str:
    return piece.replace(GREETING, greeting).replace(UNSUBSCRIBE, url)


def markdown_html(body: str) -> Markup:
    """A campaign body (Markdown, raw HTML not passed through) as sanitised HTML (nh3)."""
    return Markup(sanitize_html(_MARKDOWN.render(body))) if body.strip() else Markup("")  # noqa: S704 (nh3-cleaned)


def greeting_for(name: str, lang: str | None = None) -> str:
    name = " ".join(name.split())  # no line breaks or runs of spaces from a stored name
    with language(lang or current_language()):
        return gettext("Hello %(name)s,", name=name) if name else gettext("Hello,")


def article_context(article: Article, lang: str | None = None) -> dict[str, Any]:
    """An article as the digest and archive templates show it (its date in `lang`, default the
    current language)."""
    return {
        "id": article.id,
        "title": article.title,
        # Checked again at render time: a row stored before the rule must not become a link.
        "link": safe_http_url(article.link),
        "summary": article.summary,
        "image_url": safe_http_url(article.image_url),
        "image_alt": article.image_alt or article.title,
        "published": format_date(article.published_at, lang),
        "topics": article.topics,
    }


def digest_context(
    settings: Settings, *, subject: str, preheader: str, intro: str, articles: Sequence[Article],
    slug: str | None, brand: Brand | None = None, archive_url: str | None = None, body: str = "",
    lang: str = SOURCE_LANGUAGE, campaign_id: int | None = None,
) -> dict[str, Any]:
    """The digest template's context; `archive_url` overrides the archive page's address (a test
    send's signed preview link), `brand` is the one in force (`load_brand`; None: the defaults).
    With `campaign_id` (what subscribers get; not a preview or test send) the article and "view
    in browser" links are Insight's: utm-tagged and counted through /r/ (`service.insight.links`)."""
    ctx: dict[str, Any] = {
        **brand_context(brand or effective_brand(None, settings)),
        "body_html": markdown_html(body),
        "body_text": body.strip(),
        "lang": lang,
        "subject": subject,
        "preheader": preheader or (articles[0].title if articles else subject),
        "intro_paragraphs": [p.strip() for p in re.split(r"\n\s*\n", intro) if p.strip()],
        "articles": [article_context(a, lang) for a in articles],
        "archive_url": archive_url or (f"{settings.base_url}/archive/{slug}{_lang_query(settings, lang)}"
                                       if slug else None),
    }
    if campaign_id is not None:
        links = DigestLinks(settings, campaign_id=campaign_id, campaign=slug or str(campaign_id))
        for article in ctx["articles"]:
            article["link"] = links.article(article["id"], article["link"])
        ctx["archive_url"] = links.archive(ctx["archive_url"])
    return ctx


def _lang_query(settings: Settings, lang: str) -> str:
    return "" if lang == settings.language else f"?lang={lang}"


def _split(document: str, kind: str, *, articles: bool = True) -> tuple[str, str, dict[int, str]]:
    matches = list(_BLOCK.finditer(document))
    if not articles:
        return document, "", {}
    if not matches:
        raise ValueError(f"digest {kind} template has no article markers")
    head = _lines_end(document[: matches[0].start()])
    tail = _lines_end(document[matches[-1].end():])
    return head, tail, {int(m.group(1)): _lines_end(m.group(2)) for m in matches}


def build_digest(
    settings: Settings, *, subject: str, preheader: str, intro: str, articles: Sequence[Article],
    slug: str | None = None, brand: Brand | None = None, archive_url: str | None = None, body: str = "",
    lang: str | None = None, campaign_id: int | None = None,
) -> DigestTemplate:
    """Render the campaign once (HTML with CSS inlined, and text) with placeholders: its own
    Markdown body, its articles below it, or both; its fixed texts in `lang` (default the
    install's LANGUAGE). Staff's own words (subject, intro, body) are used as written;
    `campaign_id` for the links subscribers get."""
    lang = lang or settings.language
    if not articles and not body.strip():
        raise ValueError("a campaign needs a body or at least one article")
    ctx = digest_context(settings, subject=subject, preheader=preheader, intro=intro, articles=articles, slug=slug,
                         brand=brand, archive_url=archive_url, body=body, lang=lang, campaign_id=campaign_id)
    ctx.update(greeting=GREETING, unsubscribe_url=UNSUBSCRIBE, preferences_url=UNSUBSCRIBE)
    html_doc = inline_css(html_env(lang).get_template("digest.html").render(ctx))
    text_doc = text_env(lang).get_template("digest.txt").render(ctx)
    html_head, html_tail, html_blocks = _split(html_doc, "HTML", articles=bool(articles))
    text_head, text_tail, text_blocks = _split(text_doc, "text", articles=bool(articles))
    blocks = []
    for a in articles:
        html_qp, text_qp = qp(html_blocks[a.id]), qp(text_blocks[a.id])
        blocks.append(Block(a.id, frozenset(a.topics), html_blocks[a.id], text_blocks[a.id], html_qp, text_qp,
                            relaxed_lines(html_qp), relaxed_lines(text_qp)))
    encoded = (Encoded.of(html_head), Encoded.of(html_tail), Encoded.of(text_head), Encoded.of(text_tail))
    return DigestTemplate(subject, html_head, html_tail, text_head, text_tail, tuple(blocks), encoded,
                          has_body=bool(body.strip()), lang=lang)
