"""The inquiry flow: clean a submission, store it once, and queue the staff notification and the
client's automatic reply in the same transaction (the outbox delivers them later, so a request
never waits on SMTP and an SMTP outage loses nothing).

Privacy: an inquiry may hold health information. The message itself is never put in an email:
the staff notification says who wrote, about which topic and links to the admin; the subject
carries neither the topic nor the message. The automatic reply echoes nothing else the visitor
typed, and the name only when it looks like one (`greeting_name`), so the form cannot be used to
send someone else text of a spammer's choice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.brand import Brand, brand_context, effective_brand, load_brand
from service.forms import REPLAYED
from service.i18n import N_, gettext, language
from service.inquiries.models import CONTACT_METHODS, HELD, Inquiry, new_receipt
from service.inquiries.queries import (
    add_inquiry_note,
    change_inquiry_status,
    find_earlier,
    insert_inquiry,
    lock_submission,
)
from service.mail.message import format_address, header_text
from service.mail.outbox import email_values, queue_emails
from service.settings import Settings
from service.validation import (
    Errors,
    FieldError,
    clean_bool,
    clean_choice,
    clean_email,
    clean_phone,
    clean_text,
    email_key,
    mail_address,
    raw_value,
)

__all__ = [
    "ATTRIBUTION_FIELDS", "DEDUPE_WINDOW", "Attribution", "InquiryInput", "Submission", "add_inquiry_note",
    "after_inquiry_stored", "change_inquiry_status", "clean_attribution", "clean_inquiry", "inquiry_emails",
    "queue_inquiry_emails", "submit_inquiry",
]

NAME_MAX = 200
MESSAGE_MAX = 5000
PHONE_MAX = 40
UTM_MAX = 200
URL_MAX = 2000
USER_AGENT_MAX = 500
DEDUPE_WINDOW = dt.timedelta(minutes=10)
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
ATTRIBUTION_FIELDS = ("source_page", "referrer", *UTM_FIELDS)
# Shown beside the inquiry form's newsletter checkbox (templates/inquiries/contact.html) and
# stored as the consent evidence of a signup made through it.
NEWSLETTER_CONSENT_TEXT = N_(
    "Also send me the newsletter. We will email you a link to confirm first. "
    "You can unsubscribe at any time."
)
CONTACT_METHOD_LABELS = {"email": N_("Email"), "phone": N_("Phone"), "either": N_("Either is fine")}


@dataclass(frozen=True)
class InquiryInput:
    name: str
    email: str
    phone: str
    topic: str
    contact_method: str
    message: str
    consent: bool
    newsletter_optin: bool


@dataclass(frozen=True)
class Attribution:
    source_page: str = ""
    referrer: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    ip: str = ""
    user_agent: str = ""
    language: str | None = None  # of the form (service/i18n.py): the automatic reply's


@dataclass(frozen=True)
class Submission:
    receipt: str  # what the sender is told: opaque, fresh for a duplicate too
    created: bool  # False: a duplicate (or a double click) of an inquiry stored moments ago
    held: bool = False
    inquiry_id: int | None = None  # the row stored, when one was


def clean_inquiry(data: Mapping[str, Any], settings: Settings) -> tuple[InquiryInput | None, Errors]:
    """The cleaned inquiry, or None and an error message per field."""
    errors = Errors()
    name = errors.collect("name", clean_text, data, "name", label=N_("Your name"), max_length=NAME_MAX, required=True)
    email = errors.collect("email", clean_email, data, "email")
    phone = errors.collect("phone", _clean_phone, data)
    topic = errors.collect("topic", clean_choice, data, "topic", label=N_("A topic"), choices=settings.topics)
    method = errors.collect("contact_method", clean_choice, data, "contact_method",
                            label=N_("How we should contact you"), choices=CONTACT_METHODS, default="email")
    if method == "phone" and phone == "" and "phone" not in errors:
        errors["phone"] = gettext("Please enter your phone number so that we can call you")
    message = errors.collect("message", clean_text, data, "message", label=N_("Your message"),
                             max_length=MESSAGE_MAX, required=True, multiline=True)
    consent = clean_bool(data, "consent")
    if not consent:
        errors["consent"] = gettext("Please tick this box so that we may contact you about your inquiry")
    if errors:
        return None, errors
    return InquiryInput(
        name=name, email=email, phone=phone, topic=topic, contact_method=method, message=message,
        consent=True, newsletter_optin=clean_bool(data, "newsletter"),
    ), errors


def _clean_phone(data: Mapping[str, Any]) -> str:
    if len(raw_value(data, "phone")) > PHONE_MAX:
        raise FieldError("phone", gettext("Phone number is too long (at most %(max)s characters)", max=PHONE_MAX))
    return clean_phone(data, "phone")


_FLATTEN = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")


def _flatten(value: Any, limit: int) -> str:
    if not isinstance(value, str):
        return ""
    value = value.encode("utf-8", "replace").decode("utf-8")
    return _FLATTEN.sub(" ", value).strip()[:limit]


def clean_attribution(data: Mapping[str, Any], *, ip: str, user_agent: str, language: str | None = None) -> Attribution:
    """Where the visitor came from. Best effort: these hidden values are flattened to one line and
    cut to length, never refused, since a person cannot correct a field they cannot see."""
    values = {f: _flatten(data.get(f), URL_MAX if f in ("source_page", "referrer") else UTM_MAX)
              for f in ATTRIBUTION_FIELDS}
    return Attribution(**values, ip=_flatten(ip, 64), user_agent=_flatten(user_agent, USER_AGENT_MAX),
                       language=language)


def dedupe_key(email: str, message: str) -> str:
    """Same address and same words (whitespace and case aside) make the same key."""
    words = " ".join(message.split()).casefold()
    return hashlib.sha256(f"{email_key(email)}\n{words}".encode()).hexdigest()


async def submit_inquiry(
    session: AsyncSession, *, settings: Settings, inquiry: InquiryInput, attribution: Attribution,
    now: dt.datetime, nonce: str | None = None, hold_reason: str | None = None, brand: Brand | None = None,
) -> Submission:
    """Store a submission once and, unless it is held (`hold_reason`), queue its two emails.

    `nonce` is its form token's: a token stores one submission. The same token again with the
    same words is a double click (answered, not stored); with other words it is held as a replay.
    A submission with the words of one stored within DEDUPE_WINDOW is not stored again either.
    Every answer carries a fresh receipt, so a duplicate reveals nothing about the earlier one.
    `brand`: the one the emails get (the request's, `brand_of`); None reads it now."""
    key = dedupe_key(inquiry.email, inquiry.message)
    await lock_submission(session, dedupe_key=key, nonce=nonce)
    # vars(), not asdict(): the fields are plain values, and asdict deep-copies each one
    values = {**vars(inquiry), **vars(attribution), "dedupe_key": key, "created_at": now, "form_nonce": nonce}
    since = now - DEDUPE_WINDOW
    row = await _insert(session, values, hold_reason, since)
    if row is None:  # the token or the words were seen before: which?
        earlier = await find_earlier(session, dedupe_key=key, nonce=nonce, since=since)
        if earlier.by_token is not None and earlier.by_token[0] == key:  # a double click
            return Submission(new_receipt(), created=False, held=earlier.by_token[1] == HELD)
        if earlier.by_token is None and earlier.twin:
            return Submission(new_receipt(), created=False)
        # the token already stored other words: held as a replay (or the row it clashed with
        # is gone since, deleted by staff or the purge: stored as it came)
        replay = earlier.by_token is not None
        row = await _insert(session, {**values, "form_nonce": None} if replay else values,
                            REPLAYED if replay else hold_reason, since)
        if row is None:
            return Submission(new_receipt(), created=False)
    if row.status != HELD:
        await queue_inquiry_emails(session, settings=settings, inquiry=row, brand=brand)
        await after_inquiry_stored(session, settings=settings, inquiry=row)
    return Submission(row.receipt or "", created=True, held=row.status == HELD, inquiry_id=row.id)


async def _insert(session: AsyncSession, values: dict[str, Any], hold_reason: str | None,
                  since: dt.datetime) -> Inquiry | None:
    """A held submission is stored unless its token stored one before; any other unless a
    twin not held was stored since `since`, too."""
    if hold_reason is not None:
        return await insert_inquiry(session, values={**values, "status": HELD, "held_reason": hold_reason})
    return await insert_inquiry(session, values=values, unless_twin_since=since)


async def after_inquiry_stored(session: AsyncSession, *, settings: Settings, inquiry: Inquiry) -> None:
    """Runs once per stored inquiry, in its transaction: the `inquiry.created` webhooks are
    queued, and a ticked newsletter box starts the newsletter's double opt-in, with this
    inquiry's request as the consent evidence."""
    from service.webhooks.events import queue_inquiry_created

    await queue_inquiry_created(session, settings=settings, inquiry=inquiry)
    if not inquiry.newsletter_optin:
        return
    from service.newsletter.flows import request_subscription
    from service.tokens import Tokens

    if mail_address(inquiry.email) is None:
        return  # cannot be mailed (see mail_address); the choice stays recorded on the inquiry
    lang = inquiry.language or settings.language
    with language(lang):
        consent = gettext(NEWSLETTER_CONSENT_TEXT)  # as the form showed it
    try:
        await request_subscription(
            session, settings=settings, tokens=Tokens(settings), email=inquiry.email, name=inquiry.name,
            topics=[], ip=inquiry.ip, user_agent=inquiry.user_agent, source="form:contact",
            consent_text=consent, language=lang,
        )
    except FieldError:
        return  # the inquiry's address passed the inquiry's own validation; nothing more to do


def inquiry_admin_url(settings: Settings, inquiry_id: int) -> str:
    return f"{settings.base_url}/admin/inquiries/{inquiry_id}"


STAFF_SUBJECT_BEFORE = N_("New inquiry #")


def staff_subject_before(settings: Settings) -> str:
    """The start of a staff notice's subject, "New inquiry #", in the install's LANGUAGE."""
    with language(settings.language):
        return gettext(STAFF_SUBJECT_BEFORE)
GREETING_NAME_MAX = 40
_NAME_LIKE = re.compile(r"[^\W\d_]+(?:(?:\.? |['\u2019-])[^\W\d_]+)*\.?")  # a dot only before a space


def greeting_name(name: str) -> str:
    """The name to greet the sender by in the automatic reply, or '' for a plain "Hello,".

    Only something that looks like a name (words of letters joined by single spaces, hyphens or
    apostrophes, a dot only to end a word; at most 40 characters) is echoed: no digits, links, addresses or other
    words of a spammer's choice reach a stranger's inbox through our form."""
    name = " ".join(name.split())
    if len(name) > GREETING_NAME_MAX or not _NAME_LIKE.fullmatch(name):
        return ""
    return name


def inquiry_emails(settings: Settings, inquiry: Inquiry, brand: Brand | None = None) -> list[dict[str, Any]]:
    """Outbox rows (`email_values`, headers checked) for the staff notification (Reply-To: the
    client) and the client's automatic reply, in `brand` (the one in force, `load_brand`; None:
    the environment's defaults): the notice in the install's LANGUAGE, the reply in the language
    of the form the client used."""
    brand = brand or effective_brand(None, settings)
    with language(settings.language):
        method = gettext(CONTACT_METHOD_LABELS.get(inquiry.contact_method, inquiry.contact_method))
    client = mail_address(inquiry.email)
    now = inquiry.created_at
    # user text in a header: only the name, made safe by header_text (encoded words, line breaks)
    with language(settings.language):
        subject_after = gettext(" from %(name)s", name=header_text(inquiry.name))
    staff = email_values(
        kind="inquiry_staff", sender=settings.mail_from, to=settings.staff_inbox,
        subject=f"{staff_subject_before(settings)}{inquiry.id}{subject_after}",
        template="inquiry_staff",
        ctx={
            **brand_context(brand), "inquiry_id": inquiry.id, "name": inquiry.name,
            "email": inquiry.email, "phone": inquiry.phone, "topic": inquiry.topic,
            "contact_method": method, "newsletter_optin": inquiry.newsletter_optin,
            "source_page": inquiry.source_page, "admin_url": inquiry_admin_url(settings, inquiry.id),
            "received_at": inquiry.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            "lang": settings.language,
        },
        reply_to=format_address(client, inquiry.name) if client else None,
        headers={"Auto-Submitted": "auto-generated", "X-Tidings-Kind": "inquiry_staff"},
        now=now,
    )
    if client is None:  # stored and notified; staff answer from their own mail client
        return [staff]
    lang = inquiry.language or settings.language
    with language(lang):
        subject = gettext("We have received your message \u2013 %(org)s", org=brand.name)
    return [staff, email_values(
        kind="inquiry_autoreply", sender=settings.mail_from, to=client,
        subject=subject,
        template="inquiry_autoreply",
        ctx={
            **brand_context(brand), "contact_method": inquiry.contact_method,
            "name": greeting_name(inquiry.name),
            "base_url": settings.base_url, "lang": lang,
        },
        reply_to=settings.reply_address,  # it says "simply reply to this email": replies reach staff
        headers={"Auto-Submitted": "auto-replied", "X-Tidings-Kind": "inquiry_autoreply"},
        now=now,
    )]


async def queue_inquiry_emails(session: AsyncSession, *, settings: Settings, inquiry: Inquiry,
                               brand: Brand | None = None) -> None:
    """Queue both emails of a stored inquiry with one INSERT; the outbox worker renders them.
    Each row is linked to the inquiry, so its copies go when the inquiry is erased or expires.
    `brand` None: the one in force, read now (`load_brand`)."""
    rows = inquiry_emails(settings, inquiry, brand or await load_brand(session, settings))
    await queue_emails(session, [{**row, "inquiry_id": inquiry.id} for row in rows])
