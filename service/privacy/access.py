"""Right of access: a subscriber asks, from the preference centre, for what Tidings holds about
them; a link valid for ACCESS_MAX_AGE is emailed to their address, and it downloads the data as
JSON or CSV.

The preference link never expires and may be forwarded, so it only *asks*: the data goes to
whoever can read the subscriber's mailbox. The request gets the same answer whatever happens
(unknown, throttled or sent) and at most one email per ACCESS_RESEND per subscriber.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.brand import brand_context, load_brand
from service.campaigns.queries import campaigns_sent_to
from service.csvfile import CsvWriter
from service.db import utcnow
from service.i18n import N_, gettext, language
from service.mail.message import format_address
from service.mail.outbox import messages_to, queue_email
from service.newsletter.flows import subscriber_language
from service.newsletter.models import Subscriber
from service.newsletter.queries import get_subscriber
from service.ratelimit import hit_rate_limit
from service.settings import RateLimit, Settings
from service.tokens import Tokens

ACCESS_PURPOSE = "access"
ACCESS_MAX_AGE = 24 * 60 * 60
ACCESS_RESEND = RateLimit(1, 10 * 60)  # one email per subscriber per ten minutes

# What the download holds, as told on the pages and in the email.
# (In English, marked for the catalogue: the templates translate each item with `_()`.)
INCLUDED = (
    N_("your address, name and subscription status, and the topics you chose"),
    N_("the evidence of your consent: when, from which IP address and browser, through which form and with "
       "which wording you signed up, and when and from where you confirmed"),
    N_("when you unsubscribed, bounced or complained, if you did"),
    N_("the newsletters (campaigns) we sent you, with the time each went out"),
    N_("the automatic emails we sent you (confirmations and the like): their subject and when they went out"),
)


def access_token(tokens: Tokens, subscriber_id: int) -> str:
    return tokens.dumps(ACCESS_PURPOSE, subscriber_id)


def read_access_token(tokens: Tokens, token: str) -> int:
    """The subscriber id; raises TokenError (`.expired` when older than ACCESS_MAX_AGE)."""
    return int(tokens.loads(ACCESS_PURPOSE, token, max_age=ACCESS_MAX_AGE))


def access_url(settings: Settings, tokens: Tokens, subscriber_id: int) -> str:
    return f"{settings.base_url}/access/{access_token(tokens, subscriber_id)}"


async def request_access(session: AsyncSession, *, settings: Settings, tokens: Tokens, subscriber_id: int) -> bool:
    """Queue the email with the download link to the subscriber's own address; False (and nothing
    queued) when there is no such subscriber or one was sent within ACCESS_RESEND."""
    sub = await get_subscriber(session, subscriber_id=subscriber_id)
    if sub is None:
        return False
    if not await hit_rate_limit(session, key=f"privacy-access:{sub.id}", limit=ACCESS_RESEND):
        return False
    brand = await load_brand(session, settings)
    lang = subscriber_language(settings, sub)
    with language(lang):
        subject = gettext("Your data at %(org)s", org=brand.name)
    await queue_email(
        session, kind="privacy_access", sender=settings.mail_from, to=format_address(sub.email, sub.name),
        subject=subject, template="privacy_access",
        ctx={**brand_context(brand), "name": sub.name, "access_url": access_url(settings, tokens, sub.id),
             "included": list(INCLUDED), "hours": ACCESS_MAX_AGE // 3600, "lang": lang},
        headers={"Auto-Submitted": "auto-generated"},
    )
    return True


def _when(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


async def subscriber_data(session: AsyncSession, *, settings: Settings, subscriber: Subscriber) -> dict[str, Any]:
    """Everything Tidings holds about one subscriber, as plain JSON values."""
    campaigns = await campaigns_sent_to(session, subscriber_id=subscriber.id)
    emails = await messages_to(session, address=subscriber.email)
    s = subscriber
    return {
        "generated_at": utcnow().isoformat(),
        "organisation": (await load_brand(session, settings)).name,
        "subscription": {
            "email": s.email, "name": s.name, "status": s.status, "created_at": _when(s.created_at),
            "status_changed_at": _when(s.status_changed_at), "topics": s.topics or ["every topic"],
            "language": subscriber_language(settings, s),
        },
        "consent": {
            "signup_at": _when(s.signup_at), "signup_ip": s.signup_ip, "signup_user_agent": s.signup_user_agent,
            "signup_source": s.signup_source, "consent_text": s.consent_text, "confirmed_at": _when(s.confirmed_at),
            "confirm_ip": s.confirm_ip, "unsubscribed_at": _when(s.unsubscribed_at),
            "bounced_at": _when(s.bounced_at), "complained_at": _when(s.complained_at),
            "last_bounce": s.last_bounce,
        },
        "campaigns_sent": [{"subject": c["subject"], "sent_at": _when(c["sent_at"]),
                            "web_version": f"{settings.base_url}/archive/{c['slug']}"} for c in campaigns],
        "emails": [{"kind": e["kind"], "subject": e["subject"], "status": e["status"],
                    "queued_at": _when(e["queued_at"]), "sent_at": _when(e["sent_at"])} for e in emails],
    }


def as_json(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def as_csv(data: dict[str, Any]) -> str:
    """One row per value: section, item (the row number in a list, else empty), field, value."""
    out = io.StringIO()
    writer = CsvWriter(out)  # the one formula-safe writer of every export
    writer.writerow(["section", "item", "field", "value"])
    for section in ("subscription", "consent"):
        for field, value in data[section].items():
            writer.writerow([section, "", field, "; ".join(value) if isinstance(value, list) else value])
    for section in ("campaigns_sent", "emails"):
        for n, row in enumerate(data[section], 1):
            for field, value in row.items():
                writer.writerow([section, n, field, value])
    return out.getvalue()
