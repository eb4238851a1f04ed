"""Newsletter tables: subscribers with their consent evidence, their topics, and the
suppression list of erased addresses (a keyed hash only, so an import cannot bring them back)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, UTCDateTime, postgresql_only, utcnow

SUBSCRIBER_STATUSES = ("pending", "confirmed", "unsubscribed", "bounced", "complained")
# Statuses a campaign never mails.
SUPPRESSED_STATUSES = ("unsubscribed", "bounced", "complained")


class Subscriber(Base):
    __tablename__ = "subscribers"
    # Links carry the id: on SQLite, AUTOINCREMENT keeps an erased row's id from being handed out again.
    __table_args__ = (
        # The admin list (keyset pages, the status filter), the dashboard's growth series, and the
        # substring search of address and name (trigram GIN on PostgreSQL, plain on SQLite; see
        # migration 0004a).
        Index("ix_subscribers_created_at_id", "created_at", "id"),
        Index("ix_subscribers_status_created_at_id", "status", "created_at", "id"),
        Index("ix_subscribers_confirmed_at", "confirmed_at"),
        Index("ix_subscribers_unsubscribed_at", "unsubscribed_at"),
        # Insight's audience report counts by week (migrations 0010_insight, 0011_reportspeed)
        Index("ix_subscribers_signup_at_confirmed_at", "signup_at", "confirmed_at"),
        Index("ix_subscribers_bounced_at", "bounced_at"),
        Index("ix_subscribers_complained_at", "complained_at"),
        Index("ix_subscribers_email_key_search", "email_key", postgresql_using="gin",
              postgresql_ops={"email_key": "gin_trgm_ops"}),
        Index("ix_subscribers_name_search", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The address as given (domain lower-cased); `email_key` is the fully lower-cased form that
    # makes addresses unique case-insensitively on both databases.
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    status_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # consent evidence
    signup_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    signup_ip: Mapped[str | None] = mapped_column(String(64))
    signup_user_agent: Mapped[str | None] = mapped_column(String(500))
    signup_source: Mapped[str | None] = mapped_column(String(200))
    # the page the signup form was on (the blog article, for the content report), not a visit history
    signup_page: Mapped[str | None] = mapped_column(String(2000))
    consent_text: Mapped[str | None] = mapped_column(Text)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    confirm_ip: Mapped[str | None] = mapped_column(String(64))
    confirmation_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    bounced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    complained_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_bounce: Mapped[str | None] = mapped_column(Text)
    # The language they signed up in (service/i18n.py); None = the install's LANGUAGE.
    language: Mapped[str | None] = mapped_column(String(16))

    topic_rows: Mapped[list[SubscriberTopic]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="SubscriberTopic.topic"
    )

    @property
    def topics(self) -> list[str]:
        """Chosen topics; an empty list means every topic."""
        return [row.topic for row in self.topic_rows]


# PostgreSQL only: the domain of the address, for a search by domain (`service.db.email_domain`;
# migration 0014k_admincounts). Written as PostgreSQL reflects it, like ix_inquiries_search.
postgresql_only(Index("ix_subscribers_email_domain", text("split_part(email_key::text, '@'::text, 2)"),
                      _table=Subscriber.__table__))


class SubscriberTopic(Base):
    __tablename__ = "subscriber_topics"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class SubscriberCount(Base):
    """Subscribers per status, as rows of +n/-n appended by triggers on `subscribers` (migration
    0013m_counters) and folded by the worker (`service.newsletter.counts`): the sum per status is
    exact in any transaction."""

    __tablename__ = "subscriber_counts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(Integer)


class SubscriberDay(Base):
    """Per UTC day, the subscribers confirmed and unsubscribed on it (by `confirmed_at` and
    `unsubscribed_at`), as rows of +n/-n appended by triggers on `subscribers` (migration
    0014k_admincounts) and folded by the worker: the dashboard's growth chart sums them."""

    __tablename__ = "subscriber_days"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    confirmed: Mapped[int] = mapped_column(Integer)
    unsubscribed: Mapped[int] = mapped_column(Integer)


class Suppression(Base):
    """An erased address: HMAC of its normalised form under the secret key, never the address."""

    __tablename__ = "suppressions"

    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
