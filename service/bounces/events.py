"""`MailEvent`: one thing the mail world said about one message to one recipient, whichever
route it came by (a DSN over LMTP or a pipe, a bounce mailbox, a provider's webhook). Every
intake turns what it received into these and hands them to `service.bounces.policy.record`."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

KINDS = ("hard", "soft", "complaint")
SOURCES = ("lmtp", "pipe", "mailbox", "ses", "postmark", "mailgun", "sendgrid", "webhook")
# Routes where anybody can write to us: an event from them counts only with a verified return token.
EMAIL_SOURCES = ("lmtp", "pipe", "mailbox")
DIAGNOSTIC_MAX = 1000
MESSAGE_ID_MAX = 255  # bounce_events.message_id


@dataclass(frozen=True)
class MailEvent:
    kind: str  # "hard" | "soft" | "complaint"
    recipient: str  # the address the report is about
    source: str  # one of SOURCES
    event_key: str  # idempotency key: the provider's event id, or `report_key(...)`
    occurred_at: dt.datetime  # aware
    diagnostic: str = ""  # short, one line, header-safe
    status: str | None = None  # enhanced status code such as "5.1.1"
    return_token: str | None = None  # our VERP token, unverified
    message_id: str | None = None  # our Message-ID, from the returned headers or the provider

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"MailEvent.kind: expected one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.source not in SOURCES:
            raise ValueError(f"MailEvent.source: expected one of {', '.join(SOURCES)}, got {self.source!r}")
        if not self.event_key or len(self.event_key) > 200:
            raise ValueError("MailEvent.event_key: expected 1 to 200 characters")
        if self.occurred_at.tzinfo is None:
            raise ValueError("MailEvent.occurred_at: expected an aware datetime")
        if any(c in self.diagnostic for c in "\r\n\0"):
            raise ValueError("MailEvent.diagnostic: expected one line")
        if self.message_id is not None:
            # Whatever a report quotes as our Message-ID is matched and stored: a NUL or a line
            # break in it (PostgreSQL refuses a NUL in text) must not make the report unstorable.
            object.__setattr__(self, "message_id", one_line(self.message_id, MESSAGE_ID_MAX) or None)


def report_key(*, report_message_id: str | None, recipient: str, kind: str, fallback: bytes = b"") -> str:
    """The idempotency key of an emailed report: a hash of its own Message-ID, the recipient and
    the kind (the same report delivered twice counts once); `fallback` (e.g. the report's bytes)
    stands in for a report without a Message-ID."""
    h = hashlib.sha256()
    for part in (report_message_id.strip() if report_message_id else "", recipient.strip().lower(), kind):
        h.update(part.encode("utf-8", "replace") + b"\0")
    if not report_message_id:
        h.update(hashlib.sha256(fallback).digest())
    return "report:" + h.hexdigest()


def one_line(text: str, limit: int = DIAGNOSTIC_MAX) -> str:
    """Text made safe for `MailEvent.diagnostic`: whitespace runs (line breaks too) become one
    space, control characters go, cut to `limit`."""
    cleaned = " ".join(text.split())
    if not cleaned.isprintable():  # rare: only then look at each character
        cleaned = "".join(c for c in cleaned if c.isprintable())
    return cleaned[:limit]
