"""Building messages on `email.message.EmailMessage`: an HTML part and a plain-text part,
and header values that can never carry CR or LF (no header injection)."""

from __future__ import annotations

import email.policy
import functools
import re
import uuid
from collections.abc import Mapping
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr


class _CachedHeaderRegistry(HeaderRegistry):
    """The stdlib registry builds a new header class for every header of every message; caching
    the class per header name makes building a message about a third cheaper."""

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one registry per process, kept forever
    def __getitem__(self, name: str) -> type[BaseHeader]:
        return super().__getitem__(name)  # type: ignore[no-any-return]


POLICY = email.policy.SMTP.clone(max_line_length=998, header_factory=_CachedHeaderRegistry())
_BAD_HEADER_CHARS = re.compile(r"[\r\n\x00]")


class HeaderInjectionError(ValueError):
    """A header value contained CR, LF or NUL."""


def check_header_value(name: str, value: str) -> str:
    if _BAD_HEADER_CHARS.search(value):
        raise HeaderInjectionError(f"{name}: line breaks are not allowed in a mail header")
    return value


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
    checked for CR/LF/NUL and the address headers for an address; raises HeaderInjectionError or
    ValueError naming the header."""
    values = {"From": sender, "To": to, "Subject": subject}
    if reply_to:
        values["Reply-To"] = reply_to
    values.update(headers or {})
    for name, value in values.items():
        check_header_value(name, value)
    for name in ("From", "To", "Reply-To"):
        if name in values:
            _check_address(name, values[name])
    return values


def new_message_id(sender: str) -> str:
    return make_msgid(domain=domain_of(sender))


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
    """A multipart/alternative message (text first, HTML preferred) with checked headers."""
    values = checked_headers(sender=sender, to=to, subject=subject, reply_to=reply_to, headers=headers)
    msg = EmailMessage(policy=POLICY)
    msg["Message-ID"] = message_id or new_message_id(sender)
    msg["Date"] = date or formatdate(localtime=False, usegmt=True)
    for name, value in values.items():
        msg[name] = value
    msg["MIME-Version"] = "1.0"
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    # A random boundary (122 bits) cannot occur in the parts; set here, it also spares the
    # generator its per-message regex compilation and scan of the whole body.
    msg.set_boundary(f"===============_{uuid.uuid4().hex}==")
    return msg


def _check_address(name: str, value: str) -> None:
    addresses = getaddresses([value])
    if not addresses or any("@" not in addr for _display, addr in addresses):
        raise ValueError(f"{name}: not an email address")


def format_address(email: str, name: str = "") -> str:
    """'Name <email>' with the display name quoted as needed; CR/LF refused."""
    check_header_value("address", email)
    check_header_value("display name", name)
    if not name:
        return email
    local, _, domain = email.rpartition("@")
    return str(Address(display_name=name, username=local, domain=domain))


def message_parts(msg: EmailMessage) -> tuple[str, str]:
    """(text, html) bodies of a message built here."""
    text_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    text = text_part.get_content() if text_part is not None else ""  # type: ignore[attr-defined]
    html = html_part.get_content() if html_part is not None else ""  # type: ignore[attr-defined]
    return text, html


def parse_raw(raw: bytes) -> EmailMessage:
    from email import message_from_bytes

    parsed = message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed
