"""Digest campaigns: the campaign, its ordered articles, one delivery row per recipient (the
unique (campaign, subscriber) key makes a second send impossible) and recurring digest rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, UTCDateTime, utcnow

CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "paused", "sent", "cancelled")
DELIVERY_STATUSES = ("queued", "sending", "sent", "failed", "skipped")


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    intro: Mapped[str] = mapped_column(Text, default="")
    # The campaign's own text in Markdown (an announcement), shown after the intro and before any
    # articles; with a body a campaign goes to its whole audience, articles or none.
    body: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Topics of the audience; empty = every confirmed subscriber.
    audience_topics: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Made by a recurring rule that wants a staff approval before it goes out.
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("digest_rules.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)

    article_rows: Mapped[list[CampaignArticle]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="CampaignArticle.position"
    )


class CampaignArticle(Base):
    __tablename__ = "campaign_articles"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True,
                                            index=True)
    position: Mapped[int] = mapped_column(Integer)


class Delivery(Base):
    """One recipient of one campaign; leased by a worker while it is being sent."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # indexed (partial, migration 0013m_counters: queueing writes no entry for the NULL of a row
    # not yet sent): a provider's bounce or complaint names the message by it (service.bounces)
    message_id: Mapped[str | None] = mapped_column(String(255))
    # A 5xx on the recipient: the address was suppressed as bounced.
    bounced: Mapped[bool] = mapped_column(Boolean, default=False)
    smtp_response: Mapped[str | None] = mapped_column(Text)
    # Why a 'skipped' delivery was not sent: one of SKIP_REASONS (service.campaigns.skips).
    skip_reason: Mapped[str | None] = mapped_column(String(32))
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id"),
        # the claim's order (due first, then queue order): a worker reads its batch off the index
        Index("ix_deliveries_claim_order", "campaign_id", "status", "next_attempt_at", "id"),
        Index("ix_deliveries_message_id", "message_id", postgresql_where=text("message_id IS NOT NULL"),
              sqlite_where=text("message_id IS NOT NULL")),
        # the campaign page's skips per reason, read from the index alone (migration 0014q_skipped_index)
        Index("ix_deliveries_skipped", "campaign_id", "skip_reason", postgresql_where=text("status = 'skipped'"),
              sqlite_where=text("status = 'skipped'")),
    )


class DeliveryCount(Base):
    """A campaign's deliveries per status ('queued' = queued or being sent, sent, failed,
    skipped) and bounce flag, as rows of +n/-n appended by triggers on `deliveries` (migration
    0013m_counters) at Unix `second`, folded by the worker (`service.campaigns.counts`; rows
    older than two minutes lose their second). No foreign key: a deleted campaign's rows are
    dropped by the fold."""

    __tablename__ = "delivery_counts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer, index=True)
    status: Mapped[str] = mapped_column(String(16))
    bounced: Mapped[bool] = mapped_column(Boolean)
    second: Mapped[int | None] = mapped_column(BigInteger)
    n: Mapped[int] = mapped_column(Integer)


class DigestRule(Base):
    """A recurring digest: every `weekday` (0 = Monday) at `at_time` (HH:MM) in `timezone`."""

    __tablename__ = "digest_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    weekday: Mapped[int] = mapped_column(Integer)
    at_time: Mapped[str] = mapped_column(String(5))
    timezone: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(300), default="")
    audience_topics: Mapped[list[Any]] = mapped_column(JSON, default=list)
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
