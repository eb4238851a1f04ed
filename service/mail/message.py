"""Building messages on `email.message.EmailMessage`: an HTML part and a plain-text part,
and header values that can never carry a line break (no header injection): the address headers
and the subject are encoded by `service.mail.headers`, every other value is checked, and
`serialise` checks the bytes once more."""

from __future__ import annotations

import datetime as dt
import email.policy
import functools
import time
import uuid
from collections.abc import Mapping
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from service.mail.headers import (
    AddressHeader,
    HeaderInjectionError,
    ListIdHeader,
    TextHeader,
    check_header_value,
    check_serialised,
    display_address,
    header_text,
)
from service.settings import Settings

__all__ = ["HeaderInjectionError", "check_header_value", "header_text"]


class _CachedHeaderRegistry(HeaderRegistry):
    """The stdlib registry builds a new header class for every header of every message; caching
    the class per header name makes building a message about a third cheaper."""

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one registry per process, kept forever
    def __getitem__(self, name: str) -> type[BaseHeader]:
        return super().__getitem__(name)


POLICY = email.policy.SMTP.clone(max_line_length=998, header_factory=_CachedHeaderRegistry())
POLICY_7BIT = POLICY.clone(cte_type="7bit")
ADDRESS_HEADERS = ("From", "To", "Reply-To")


@functools.lru_cache(maxsize=16)  # called with MAIL_FROM for every message queued
def domain_of(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "localhost"


def checked_headers(
    *,
    sender: str,
    to: str,
    subject: str,
    reply_to: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The message's header values in order (From, To, Subject, Reply-To, then `headers`), each
    checked for line breaks and control characters and the address headers for an address (the
    subject through `header_text`); raises HeaderInjectionError or ValueError naming the header."""
    values = {"From": sender, "To": to, "Subject": header_text(check_header_value("Subject", subject))}
    if reply_to:
        values["Reply-To"] = reply_to
    values.update(headers or {})
    for name, value in values.items():
        check_header_value(name, value)
    for name in ADDRESS_HEADERS:
        if name in values:
            values[name] = _address_value(name, values[name])
    return values


@functools.lru_cache(maxsize=256)  # MAIL_FROM, STAFF_INBOX, REPLY_TO: parsed once, not per message
def _address_value(name: str, value: str) -> str:
    return str(AddressHeader(name, value))


def new_message_id(sender: str) -> str:
    """A Message-ID unique across installs and time (122 random bits), fixed by the caller when
    the message is queued, so that a resend is the same message to the receiver."""
    return f"<{uuid.uuid4().hex}@{domain_of(sender)}>"


def mail_date(when: dt.datetime | None = None) -> str:
    """The Date header of RFC 5322 with a numeric zone (`+0000`), not the obsolete `GMT`; now
    when `when` is None (written once per second: a digest dates every message)."""
    if when is None:
        second = int(time.time())
        if second != _now[0][0]:
            _now[0] = (second, format_datetime(dt.datetime.fromtimestamp(second, dt.UTC)))
        return _now[0][1]
    return format_datetime(when.astimezone(dt.UTC).replace(microsecond=0))


_now: list[tuple[int, str]] = [(0, "")]  # the current second and its Date


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    reply_to: str | None = None,
    headers: Mapping[str, str] | None = None,
    message_id: str | None = None,
    date: str | None = None,
) -> EmailMessage:
    """A multipart/alternative message (text first, HTML preferred) with checked headers; the
    addresses and the subject encoded by us (RFC 2047 words of at most 75 characters)."""
    values = checked_headers(sender=sender, to=to, subject=subject, reply_to=reply_to, headers=headers)
    msg = EmailMessage(policy=POLICY)
    msg["Message-ID"] = check_header_value("Message-ID", message_id or new_message_id(sender))
    msg["Date"] = check_header_value("Date", date or mail_date())
    for name, value in values.items():
        if name in ADDRESS_HEADERS:
            msg[name] = AddressHeader(name, value)
        elif name == "Subject":
            msg[name] = TextHeader(name, value)
        elif name == "List-Id":
            msg[name] = ListIdHeader(value)
        else:
            msg[name] = value
    msg["MIME-Version"] = "1.0"
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    # A random boundary (122 bits) cannot occur in the parts; set here, it also spares the
    # generator its per-message regex compilation and scan of the whole body.
    msg.set_boundary(f"===============_{uuid.uuid4().hex}==")
    return msg


def list_headers(settings: Settings, unsubscribe_url: str, org_name: str | None = None) -> dict[str, str]:
    """The list headers of every newsletter email, the welcome and digests alike: List-Id in
    the RFC 2919 form `Org name <list.id>` (the name quoted as needed), List-Unsubscribe (RFC
    2369) and List-Unsubscribe-Post (RFC 8058 one-click). `org_name`: the brand's (`load_brand`)."""
    return {
        "List-Unsubscribe": list_unsubscribe(unsubscribe_url),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": display_address(settings.list_id, org_name or settings.org_name),
    }


def list_unsubscribe(unsubscribe_url: str) -> str:
    """The List-Unsubscribe value of `list_headers` (a digest writes it per recipient, the rest
    of the list headers once per campaign)."""
    return f"<{check_header_value('List-Unsubscribe', unsubscribe_url)}>"


def format_address(email: str, name: str = "") -> str:
    """'Name <email>': the name is a person's text, made safe by `header_text` (line breaks and
    encoded-word syntax neutralised, never refused) and quoted as needed."""
    return display_address(email, name)


def serialise(message: EmailMessage, *, seven_bit: bool = False) -> bytes:
    """The bytes to send (CRLF line ends), refused with HeaderInjectionError unless their header
    block holds exactly the headers set on `message`. `seven_bit` for a server without 8BITMIME."""
    raw = message.as_bytes(policy=POLICY_7BIT if seven_bit else POLICY)
    return check_serialised(raw, message.keys())


def message_parts(msg: EmailMessage) -> tuple[str, str]:
    """(text, html) bodies of a message built here."""
    text_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    text = text_part.get_content() if text_part is not None else ""
    html = html_part.get_content() if html_part is not None else ""
    return text, html


def parse_raw(raw: bytes) -> EmailMessage:
    from email import message_from_bytes

    parsed = message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed
