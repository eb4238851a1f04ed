"""Webhook tables: the endpoints staff registered, and the outbox of deliveries to them (which
is also the delivery log the admin shows)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow

DELIVERY_STATUSES = ("queued", "sending", "delivered", "failed")


class WebhookEndpoint(Base):
    """A receiver of events. `events` is the chosen event types between commas (",a,b,"), so one
    LIKE finds the endpoints of an event in the statement that queues it."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    events: Mapped[str] = mapped_column(Text, default=",")
    # `whsec_` + base64 of the key, as the Standard Webhooks libraries take it. After a rotation
    # the previous secret signs too (a second signature) until `previous_secret_until`.
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Trusted with health data: `inquiry.created` carries the topic, message and contact details.
    trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The first failed attempt since the last delivery that went through; a day of failures disables.
    failing_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    def event_list(self) -> list[str]:
        return [e for e in self.events.split(",") if e]


class WebhookDelivery(Base):
    """One event for one endpoint: queued in the event's transaction, leased by a worker while
    it is sent, then delivered or failed. `msg_id` is the `webhook-id` header: the same on every
    attempt and every "send again", so a receiver can drop what it already has."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    msg_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)  # when the event happened
    # The JSON body sent (NULL once the delivery log's retention has passed: see `purge`).
    payload: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    retry_until: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # after this a failed attempt is final
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)  # the answer's first 500 characters
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Whose data the payload holds, for erasure: the inquiry, and/or an address key (lower case).
    inquiry_id: Mapped[int | None] = mapped_column(ForeignKey("inquiries.id", ondelete="CASCADE"), index=True)
    person: Mapped[str | None] = mapped_column(String(320), index=True)

    __table_args__ = (
        UniqueConstraint("endpoint_id", "msg_id"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_created_at", "created_at"),
    )
