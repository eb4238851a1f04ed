"""Newsletter rules: double opt-in signup, confirmation, unsubscribe and preferences,
suppression (bounces, complaints) and erasure. Routes, the inquiry form, the admin and the
delivery engine all call these functions; none of them commits.

Signup never reveals whether an address is known: every path ends in the same answer, and
the only difference is which email (if any) is queued. See docs/newsletter.md for the rules.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.brand import brand_context, load_brand
from service.db import utcnow
from service.i18n import gettext, language, pick_language
from service.mail.message import format_address, list_headers
from service.mail.outbox import queue_email
from service.newsletter import queries
from service.newsletter.models import SUPPRESSED_STATUSES, Subscriber
from service.newsletter.tokens import CONFIRM_MAX_AGE, confirm_url, read_confirm_token, unsubscribe_url
from service.settings import Settings
from service.tokens import TokenError, Tokens
from service.validation import FieldError, clean_mailable_email, safe_http_url

log = logging.getLogger("tidings.newsletter")

RESEND_INTERVAL = dt.timedelta(minutes=10)
NAME_MAX = 200
UA_MAX = 500
SOURCE_MAX = 200


def consent_text(org_name: str) -> str:
    """The consent statement shown next to every signup form and stored with each signup, in
    the language of the form (`org_name`: the brand's, `service.admin.brand_web.brand_of`)."""
    return gettext(
        "Yes, I would like to receive the %(org)s newsletter by email. "
        "I can unsubscribe at any time with one click, and my address is never shared.", org=org_name)


def subscriber_language(settings: Settings, subscriber: Subscriber) -> str:
    """The language of every email and page for this subscriber: the one they signed up in."""
    return pick_language(subscriber.language, settings.language)


def normalise_topics(settings: Settings, topics: Iterable[str]) -> list[str]:
    """Known topics only, in TOPICS order; every topic chosen is stored as none (= all, new ones too)."""
    chosen = settings.in_topic_order(t for t in topics if t in settings.topics)
    return [] if set(chosen) == set(settings.topics) else chosen


def mask_email(email: str) -> str:
    """'a•••a@example.org': enough for a person to recognise their address, not to read it."""
    local, _, domain = email.rpartition("@")
    shown = local[0] + "•••" + local[-1] if len(local) > 2 else local[:1] + "•••"
    return f"{shown}@{domain}"


# -- signup -------------------------------------------------------------------------------


async def request_subscription(
    session: AsyncSession, *, settings: Settings, tokens: Tokens, email: str, name: str,
    topics: Iterable[str] | None, ip: str, user_agent: str, source: str, consent_text: str, page: str = "",
    language: str | None = None,
) -> None:
    """Record a signup (double opt-in) and queue what that address should get, whatever its state.
    `language` is the one the signup form spoke (None: keep the stored one).

    new, pending, unsubscribed, bounced, erased -> pending, a confirmation email
    confirmed -> unchanged, an "already subscribed" note with the preference link
    complained -> unchanged, nothing sent: a spam complaint (or staff's suppression) is for good
    Either email goes out at most once per RESEND_INTERVAL per address. `topics=None` keeps
    the topics already stored (the "send me a new link" form). Raises FieldError only for an
    invalid address (the caller shows that; it reveals nothing about anyone).
    """
    email = clean_mailable_email({"email": email})
    name = " ".join(name.split())  # one line, whatever the caller passed: it ends up in a To header
    now = utcnow()
    await queries.insert_pending_subscriber(session, email=email, now=now)
    sub = await queries.get_subscriber_by_email(session, email=email, for_update=True)
    assert sub is not None  # inserted or already there, and locked
    if sub.status == "complained":
        return
    # Throttled while the state the last email was about still holds: it is fresh in their inbox.
    # (Leaving the list and coming back is a new state, and can happen only once per unsubscribe.)
    recent = sub.confirmation_sent_at is not None and now - sub.confirmation_sent_at < RESEND_INTERVAL
    if recent and sub.status in ("pending", "confirmed"):
        return
    sub.confirmation_sent_at = now
    if sub.status == "confirmed":
        await _queue_already_subscribed(session, settings=settings, tokens=tokens, sub=sub)
        return
    # A fresh consent: store its evidence (replacing an older unconfirmed one). Earlier
    # unsubscribe/bounce/complaint times stay on the row as history.
    if sub.status != "pending":
        await queries.set_status(session, subscriber=sub, status="pending", now=now)
    if name or not sub.name:
        sub.name = name[:NAME_MAX]
    sub.signup_at = now
    sub.signup_ip = ip[:64]
    sub.signup_user_agent = user_agent[:UA_MAX]
    sub.signup_source = source[:SOURCE_MAX]
    sub.signup_page = signup_page(page)
    sub.consent_text = consent_text
    if language is not None:
        sub.language = language
    if topics is not None:
        await queries.set_topics(session, subscriber=sub, topics=normalise_topics(settings, topics))
    await queue_confirmation(session, settings=settings, tokens=tokens, subscriber=sub)


HELD_SOURCE = "held: "
PAGE_MAX = 2000


def signup_page(page: str) -> str | None:
    """The page a signup form was on (an http(s) URL, for Insight's content report), or None."""
    page = page.strip()
    return page if len(page) <= PAGE_MAX and safe_http_url(page) else None


async def hold_subscription(
    session: AsyncSession, *, settings: Settings, email: str, name: str, topics: Iterable[str] | None, ip: str,
    user_agent: str, source: str, consent_text: str, reason: str, page: str = "", language: str | None = None,
) -> None:
    """A signup that looked automated (see service.forms): nothing is sent, nothing a person
    sent is thrown away. An address not known yet is recorded as a pending subscriber whose
    source starts with "held: " and the reason, with its consent evidence; an ordinary signup of
    that address later sends the confirmation at once (none went out), and the worker deletes
    held signups still unconfirmed after HELD_RETENTION_DAYS. A known address is left as it is,
    so a bot can change nobody's state. Raises FieldError only for an invalid address."""
    email = clean_mailable_email({"email": email})
    now = utcnow()
    await queries.insert_pending_subscriber(session, email=email, now=now)
    sub = await queries.get_subscriber_by_email(session, email=email, for_update=True)
    assert sub is not None  # inserted or already there, and locked
    if sub.status == "complained":
        return
    if sub.status != "pending" or sub.signup_at is not None or sub.confirmation_sent_at is not None:
        return
    sub.name = " ".join(name.split())[:NAME_MAX]
    sub.signup_at = now
    sub.signup_ip = ip[:64]
    sub.signup_user_agent = user_agent[:UA_MAX]
    sub.signup_source = f"{HELD_SOURCE}{reason} ({source})"[:SOURCE_MAX]
    sub.signup_page = signup_page(page)
    sub.consent_text = consent_text
    sub.language = language
    if topics is not None:
        await queries.set_topics(session, subscriber=sub, topics=normalise_topics(settings, topics))


async def purge_held_signups(session: AsyncSession, *, settings: Settings, now: dt.datetime) -> int:
    """Delete held signups never confirmed after HELD_RETENTION_DAYS (the worker runs this)."""
    return await queries.purge_held_signups(
        session, source_prefix=HELD_SOURCE, before=now - dt.timedelta(days=settings.held_retention_days))


async def queue_confirmation(session: AsyncSession, *, settings: Settings, tokens: Tokens,
                             subscriber: Subscriber) -> None:
    """Queue the double opt-in email with a fresh confirmation link."""
    brand = await load_brand(session, settings)
    subscriber.confirmation_sent_at = utcnow()
    lang = subscriber_language(settings, subscriber)
    with language(lang):
        subject = gettext("Please confirm your subscription to %(org)s", org=brand.name)
    await queue_email(
        session, kind="newsletter_confirm", sender=settings.mail_from,
        to=format_address(subscriber.email, subscriber.name),
        subject=subject,
        template="newsletter_confirm",
        ctx={**brand_context(brand), "name": subscriber.name,
             "confirm_url": confirm_url(settings, tokens, subscriber.id, subscriber.signup_at),
             "base_url": settings.base_url, "lang": lang},
        headers={"Auto-Submitted": "auto-generated"},
    )


async def _queue_already_subscribed(session: AsyncSession, *, settings: Settings, tokens: Tokens,
                                    sub: Subscriber) -> None:
    brand = await load_brand(session, settings)
    lang = subscriber_language(settings, sub)
    with language(lang):
        subject = gettext("You are already subscribed to %(org)s", org=brand.name)
    await queue_email(
        session, kind="newsletter_already", sender=settings.mail_from, to=format_address(sub.email, sub.name),
        subject=subject, template="newsletter_already",
        ctx={**brand_context(brand), "name": sub.name,
             "preferences_url": unsubscribe_url(settings, tokens, sub.id), "lang": lang},
        headers={"Auto-Submitted": "auto-generated"},
    )


# -- confirmation -------------------------------------------------------------------------


class ConfirmProblem(enum.Enum):
    INVALID = "invalid"  # tampered, or another purpose: 400
    EXPIRED = "expired"  # older than 7 days: 410
    USED = "used"  # the subscriber is no longer pending (confirmed, left, erased): 410
    SUPERSEDED = "superseded"  # sent for an earlier signup of this address (or names none): 410
    ALREADY = "already"  # the address is subscribed already (a second click): a calm 200


@dataclass(frozen=True)
class ConfirmCheck:
    subscriber: Subscriber | None
    problem: ConfirmProblem | None


async def check_confirm_token(session: AsyncSession, *, tokens: Tokens, token: str,
                              for_update: bool = False) -> ConfirmCheck:
    """Whether `token` may confirm a subscription now (it counts only while its row is pending)."""
    try:
        claim = read_confirm_token(tokens, token)
    except TokenError as exc:
        return ConfirmCheck(None, ConfirmProblem.EXPIRED if exc.expired else ConfirmProblem.INVALID)
    except (TypeError, ValueError):
        return ConfirmCheck(None, ConfirmProblem.INVALID)
    sub = await queries.get_subscriber(session, subscriber_id=claim.subscriber_id, for_update=for_update)
    if sub is not None and sub.status == "confirmed":  # nothing went wrong: say so, calmly
        return ConfirmCheck(sub, ConfirmProblem.ALREADY)
    if sub is None or sub.status != "pending":
        return ConfirmCheck(None, ConfirmProblem.USED)
    if not claim.matches(sub.signup_at):  # a link from an earlier signup confirms only that one
        return ConfirmCheck(None, ConfirmProblem.SUPERSEDED)
    return ConfirmCheck(sub, None)


async def confirm_subscription(session: AsyncSession, *, settings: Settings, tokens: Tokens, token: str,
                               ip: str) -> ConfirmCheck:
    """Confirm the pending subscriber named by `token`, record time and IP, queue the welcome."""
    check = await check_confirm_token(session, tokens=tokens, token=token, for_update=True)
    sub = check.subscriber
    if sub is None or check.problem is not None:
        return check
    now = utcnow()
    await queries.set_status(session, subscriber=sub, status="confirmed", now=now)
    sub.confirmed_at = now
    sub.confirm_ip = ip[:64]
    # Verified, fresh consent from the person themselves outweighs an earlier erasure.
    await queries.remove_suppression(session, tokens=tokens, email=sub.email)
    await queue_welcome(session, settings=settings, tokens=tokens, subscriber=sub)
    return check


async def queue_welcome(session: AsyncSession, *, settings: Settings, tokens: Tokens, subscriber: Subscriber) -> None:
    url = unsubscribe_url(settings, tokens, subscriber.id)
    brand = await load_brand(session, settings)
    lang = subscriber_language(settings, subscriber)
    with language(lang):
        subject = gettext("Welcome to the %(org)s newsletter", org=brand.name)
    await queue_email(
        session, kind="newsletter_welcome", sender=settings.mail_from,
        to=format_address(subscriber.email, subscriber.name), subject=subject,
        template="newsletter_welcome",
        ctx={**brand_context(brand), "name": subscriber.name,
             "topics": settings.in_topic_order(subscriber.topics), "unsubscribe_url": url,
             "base_url": settings.base_url, "lang": lang},
        headers=list_headers(settings, url, brand.name),
    )


# -- unsubscribe, preferences, suppression, erasure ----------------------------------------


async def unsubscribe_subscriber(session: AsyncSession, *, subscriber_id: int, source: str) -> bool:
    """Unsubscribe at once (idempotent); False when there is no such subscriber.
    Bounced and complained rows keep their stronger status."""
    sub = await queries.get_subscriber(session, subscriber_id=subscriber_id, for_update=True)
    if sub is None:
        return False
    if sub.status in ("pending", "confirmed"):
        await queries.set_status(session, subscriber=sub, status="unsubscribed", now=utcnow())
        log.info("subscriber %s unsubscribed via %s", sub.id, source)
    return True


async def update_preferences(session: AsyncSession, *, settings: Settings, subscriber_id: int,
                             topics: Iterable[str]) -> bool:
    """Replace the subscriber's topics (none = every topic); False when not found."""
    sub = await queries.get_subscriber(session, subscriber_id=subscriber_id, for_update=True)
    if sub is None:
        return False
    await queries.set_topics(session, subscriber=sub, topics=normalise_topics(settings, topics))
    return True


async def mark_bounced(session: AsyncSession, *, subscriber_id: int | None = None, email: str | None = None,
                       reason: str) -> bool:
    """A hard bounce: never mailed again (until a fresh double opt-in); False when unknown."""
    return await queries.mark_status_by(session, subscriber_id=subscriber_id, email=email, status="bounced",
                                        reason=reason, now=utcnow())


async def mark_complained(session: AsyncSession, *, subscriber_id: int | None = None, email: str | None = None,
                          reason: str | None = None) -> bool:
    """A spam complaint (feedback loop): never mailed again; False when unknown."""
    return await queries.mark_status_by(session, subscriber_id=subscriber_id, email=email, status="complained",
                                        reason=reason, now=utcnow())


async def erase_subscriber(session: AsyncSession, *, tokens: Tokens, subscriber_id: int) -> str | None:
    """The newsletter's part of the right to be forgotten: delete the row, its topics (and, by
    foreign key, its campaign deliveries); keep only a keyed hash of the address so that no
    import can bring it back. Returns the erased address, None when not found. The whole erase
    (stored mail copies, the erasure ledger) is `service.privacy.erase.erase_subscriber`."""
    sub = await queries.get_subscriber(session, subscriber_id=subscriber_id, for_update=True)
    if sub is None:
        return None
    email = sub.email
    await queries.add_suppression(session, tokens=tokens, email=email, reason="erased")
    session.expunge(sub)
    await queries.delete_subscriber(session, subscriber_id=subscriber_id)
    return email


async def purge_unconfirmed(session: AsyncSession, *, now: dt.datetime) -> int:
    """Forget signups whose confirmation link expired unanswered (the worker runs this hourly)."""
    return await queries.purge_expired_pending(session, cutoff=now - dt.timedelta(seconds=CONFIRM_MAX_AGE))


__all__ = [
    "RESEND_INTERVAL", "SUPPRESSED_STATUSES", "ConfirmCheck", "ConfirmProblem", "FieldError",
    "check_confirm_token", "confirm_subscription", "consent_text", "erase_subscriber", "hold_subscription",
    "mark_bounced", "mark_complained", "mask_email", "purge_held_signups", "purge_unconfirmed",
    "queue_confirmation",
    "queue_welcome", "request_subscription", "subscriber_language", "unsubscribe_subscriber", "update_preferences",
]
