"""Previews of every email in a given brand, for the Settings page: the real templates rendered
with sample data. The inquiry emails come from the inquiries domain's own `inquiry_emails` (a
sample inquiry, never stored); the digest from `build_digest` with the newest articles (the
sample blog's when there are none yet); the others with the context their senders give them."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.brand import Brand, brand_context
from service.articles.ingest import parse_markdown
from service.articles.models import Article
from service.articles.queries import list_articles
from service.campaigns.render import build_digest
from service.demo import SAMPLE_POSTS
from service.inquiries.flows import inquiry_emails
from service.inquiries.models import Inquiry
from service.mail.render import render_email
from service.settings import Settings

# template name -> what the page calls it
PREVIEWS = {
    "digest": "Digest", "newsletter_confirm": "Signup confirmation", "newsletter_welcome": "Welcome",
    "newsletter_already": "Already subscribed", "inquiry_autoreply": "Auto-reply to an inquiry",
    "inquiry_staff": "Staff notice of an inquiry", "staff_invite": "Staff invitation",
    "staff_password_reset": "Password reset", "privacy_access": "Your data (access request)",
}
SAMPLE_NAME = "Maya Fischer"
SAMPLE_EMAIL = "maya.fischer@example.org"


@dataclass(frozen=True)
class Preview:
    subject: str
    html: str
    text: str


async def _articles(session: AsyncSession, settings: Settings) -> list[Article]:
    stored = list(await list_articles(session))
    if stored:
        return stored[:3]
    posts = []
    for i, path in enumerate(sorted(SAMPLE_POSTS.glob("*.md"))[:3], start=1):
        parsed = parse_markdown(path.read_text(encoding="utf-8"), source=str(path))
        posts.append(Article(id=i, guid=parsed.guid, link=parsed.link, title=parsed.title, summary=parsed.summary,
                             content_html="", image_url=parsed.image_url, image_alt=parsed.image_alt,
                             published_at=parsed.published_at, tags=parsed.tags, topic_rows=[]))
    return posts


def _inquiry(settings: Settings) -> Inquiry:
    return Inquiry(id=1042, created_at=dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.UTC), name=SAMPLE_NAME,
                   email=SAMPLE_EMAIL, phone="+49 170 1234567", topic=settings.topics[0], contact_method="email",
                   message="(sample)", newsletter_optin=True, source_page="https://blog.example.org/posts/first/")


async def render_brand_preview(session: AsyncSession, settings: Settings, name: str, brand: Brand) -> Preview:
    """Email `name` (a key of PREVIEWS; KeyError otherwise) as it would look in `brand`."""
    label = PREVIEWS[name]
    base = settings.base_url
    if name == "digest":
        subject = f"{brand.name} digest, 2 December 2026"
        digest = build_digest(settings, subject=subject, preheader="", brand=brand, slug="preview",
                              intro="Here is what we published since our last digest.",
                              articles=await _articles(session, settings))
        personal = digest.personalise(name=SAMPLE_NAME, topics=(), unsubscribe_url=f"{base}/unsubscribe/preview")
        assert personal is not None  # every topic: every article
        return Preview(subject, personal.html, personal.text)
    if name.startswith("inquiry_"):
        row = next(r for r in inquiry_emails(settings, _inquiry(settings), brand) if r["template"] == name)
        rendered = render_email(name, json.loads(row["context"]))
        return Preview(row["subject"], rendered.html, rendered.text)
    ctx: dict[str, Any] = {**brand_context(brand), "name": SAMPLE_NAME, "email": SAMPLE_EMAIL, "base_url": base}
    samples: dict[str, dict[str, Any]] = {
        "newsletter_confirm": {"confirm_url": f"{base}/confirm/preview"},
        "newsletter_already": {"preferences_url": f"{base}/unsubscribe/preview"},
        "newsletter_welcome": {"topics": list(settings.topics[:2]), "unsubscribe_url": f"{base}/unsubscribe/preview"},
        "staff_invite": {"link": f"{base}/admin/set-password/preview", "inviter": "admin@example.org",
                         "role": "staff", "hours": 72, "login_url": f"{base}/admin/login"},
        "staff_password_reset": {"link": f"{base}/admin/reset-password/preview", "minutes": 60},
        "privacy_access": {"access_url": f"{base}/access/preview", "hours": 24,
                           "included": ["your subscription", "your consent", "the emails we sent you"]},
    }
    ctx.update(samples[name])
    rendered = render_email(name, ctx)
    return Preview(f"{label} · {brand.name}", rendered.html, rendered.text)
