"""Mail tables: the durable outbox of transactional messages, and the local mailbox that stands
in for an SMTP server on the embedded default (read at /admin/outbox)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow

OUTBOX_STATUSES = ("queued", "sending", "sent", "failed")


class OutboxMessage(Base):
    """One transactional email, queued in the transaction of the event that caused it."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    message_id: Mapped[str] = mapped_column(String(255), index=True)  # a provider's bounce names it
    # Rendered and built by the worker at send time from `template`, `context` (JSON) and
    # `headers` (JSON: every header but Message-ID, in order); the bytes that went out are kept
    # here once sent. NULL until then (and always for a message queued before 0005p: raw only).
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    template: Mapped[str | None] = mapped_column(String(100))
    context: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    smtp_response: Mapped[str | None] = mapped_column(Text)
    # The inquiry this message is about (its staff notification and automatic reply): the copies
    # go with the inquiry when it is erased or reaches the end of its retention.
    inquiry_id: Mapped[int | None] = mapped_column(ForeignKey("inquiries.id", ondelete="CASCADE"), index=True)

    __table_args__ = (Index("ix_outbox_messages_status_next_attempt_at", "status", "next_attempt_at"),)


class MailboxMessage(Base):
    """A message 'delivered' by the local outbox transport (no SMTP_URL set)."""

    __tablename__ = "mailbox_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    sender: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(500))
    message_id: Mapped[str] = mapped_column(String(255))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
