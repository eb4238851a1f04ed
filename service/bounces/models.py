"""Bounce tables: every bounce and complaint report we accepted, once (unique `event_key`),
linked where known to the subscriber, the campaign delivery, the outbox message and the inquiry
it is about. Rows quote an address and a diagnostic: they go with the subscriber or inquiry
when that is erased."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow


class BounceEvent(Base):
    __tablename__ = "bounce_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # hard | soft | complaint
    source: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(320))
    recipient_key: Mapped[str] = mapped_column(String(320))  # lower-cased, for the soft-bounce count
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str | None] = mapped_column(String(16))
    message_id: Mapped[str | None] = mapped_column(String(255))
    # what recording it did: suppressed | counted | unsubscribed | flagged | recorded
    outcome: Mapped[str] = mapped_column(String(16))
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"), index=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"))
    outbox_message_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_messages.id", ondelete="SET NULL"))
    inquiry_id: Mapped[int | None] = mapped_column(ForeignKey("inquiries.id", ondelete="CASCADE"), index=True)

    __table_args__ = (Index("ix_bounce_events_recipient_key_kind_occurred_at", "recipient_key", "kind", "occurred_at"),)


class WebhookNonce(Base):
    """A one-time value a provider signed (Mailgun's token), kept while its timestamp is fresh so
    a captured request cannot be replayed (Mailgun's signature does not cover the body)."""

    __tablename__ = "webhook_nonces"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
