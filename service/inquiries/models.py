"""Inquiry tables: what a prospective client sent through the contact form, where they came
from, and every status change and internal note staff made on it. Treat as health data."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, func, literal_column, text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnClause, ColumnElement

from service.db import Base, UTCDateTime, postgresql_only, utcnow

# The statuses staff move an inquiry through.
INQUIRY_STATUSES = ("new", "contacted", "qualified", "closed", "spam")
# A submission that looked automated: stored, mailed nothing, until staff release or delete it.
HELD = "held"
CONTACT_METHODS = ("email", "phone", "either")


def new_receipt() -> str:
    """The opaque id a submitter is given (never the row id: it would reveal earlier inquiries)."""
    return secrets.token_urlsafe(16)


class Inquiry(Base):
    __tablename__ = "inquiries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str] = mapped_column(String(40), default="")
    topic: Mapped[str] = mapped_column(String(40))
    contact_method: Mapped[str] = mapped_column(String(16), default="email")
    message: Mapped[str] = mapped_column(Text)
    consent: Mapped[bool] = mapped_column(Boolean, default=False)
    newsletter_optin: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="new")
    status_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # attribution
    source_page: Mapped[str] = mapped_column(String(2000), default="")
    referrer: Mapped[str] = mapped_column(String(2000), default="")
    utm_source: Mapped[str] = mapped_column(String(200), default="")
    utm_medium: Mapped[str] = mapped_column(String(200), default="")
    utm_campaign: Mapped[str] = mapped_column(String(200), default="")
    utm_term: Mapped[str] = mapped_column(String(200), default="")
    utm_content: Mapped[str] = mapped_column(String(200), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(500), default="")
    # sha256 of the normalised email and message: a resubmission within minutes is stored once
    dedupe_key: Mapped[str] = mapped_column(String(64))
    # the receipt the submitter was given; rows stored before receipts existed have none
    receipt: Mapped[str | None] = mapped_column(String(32), default=new_receipt)
    # the nonce of the form token it came with: a token is good for one stored submission
    form_nonce: Mapped[str | None] = mapped_column(String(64))
    # why it was held (see service.forms.HOLD_REASONS); kept after a release, as history
    held_reason: Mapped[str | None] = mapped_column(String(32))
    # the automatic answer bounced: the address does not work, staff should call (service.bounces)
    bounced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    bounce_diagnostic: Mapped[str | None] = mapped_column(Text)
    # The language of the form it was sent from (its automatic reply's); None = the install's.
    language: Mapped[str | None] = mapped_column(String(16))

    events: Mapped[list[InquiryEvent]] = relationship(
        back_populates="inquiry", cascade="all, delete-orphan", order_by="InquiryEvent.id", lazy="raise"
    )

    __table_args__ = (
        Index("ix_inquiries_created_at_id", "created_at", "id"),
        Index("ix_inquiries_status_created_at_id", "status", "created_at", "id"),
        Index("ix_inquiries_dedupe_key_created_at", "dedupe_key", "created_at"),
        Index("ix_inquiries_receipt", "receipt", unique=True),
        Index("ix_inquiries_form_nonce", "form_nonce", unique=True),
        # The admin list: the topic filter, and the address search (trigram GIN on PostgreSQL, which
        # answers ILIKE '%…%' without a scan; a plain index on SQLite, and on PostgreSQL too when
        # migration 0004a could not create the pg_trgm extension).
        Index("ix_inquiries_topic_created_at_id", "topic", "created_at", "id"),
        # Insight's campaign reports count campaigns' inquiries by slug and status (0010_insight, 0011_reportspeed).
        Index("ix_inquiries_utm_campaign_status", "utm_campaign", "status"),
        Index("ix_inquiries_email_search", "email", postgresql_using="gin", postgresql_ops={"email": "gin_trgm_ops"}),
    )


# -- full-text search of the admin's inquiry list (PostgreSQL) ---------------------------------

# Constants are literal SQL (never bound parameters) so that the query's expression is exactly the
# indexed one and the planner uses it.
SEARCH_CONFIG: ColumnClause[Any] = literal_column("'simple'::regconfig")


def inquiry_search_document() -> ColumnElement[Any]:
    """to_tsvector over name, email and message: the expression of ix_inquiries_search."""
    space: ColumnClause[Any] = literal_column("' '")
    return func.to_tsvector(SEARCH_CONFIG, Inquiry.name + space + Inquiry.email + space + Inquiry.message)


# PostgreSQL only (a GIN index over a tsvector; the migration makes it there only). Written as
# PostgreSQL reflects it, so that the schema comparison finds no difference; SQLite cannot reflect
# expression indexes, and Alembic skips it there with a warning that tests/test_migrations.py expects.
SEARCH_INDEX_SQL = (
    "to_tsvector('simple'::regconfig, (((name::text || ' '::text) || email::text) || ' '::text) || message)"
)
postgresql_only(Index("ix_inquiries_search", text(SEARCH_INDEX_SQL), postgresql_using="gin",
                      _table=Inquiry.__table__))

class InquiryEvent(Base):
    """A status change (from_status -> to_status) or an internal note, by a staff member."""

    __tablename__ = "inquiry_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inquiry_id: Mapped[int] = mapped_column(ForeignKey("inquiries.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # "status" or "note"
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))

    inquiry: Mapped[Inquiry] = relationship(back_populates="events")


class InquiryCount(Base):
    """Inquiries per status (held included), as rows of +n/-n appended by triggers on
    `inquiries` (migration 0014k_admincounts) and folded by the worker
    (`service.inquiries.counts`): the sum per status is exact in any transaction."""

    __tablename__ = "inquiry_counts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(Integer)
