"""Admin tables: staff accounts and the audit log of who did what, when, from where.

Also the indexes the admin pages need on other domains' tables (list filters, keyset
pagination, dashboard series, inquiry full-text search). They are declared here, beside the
queries that use them, so that the owning domain's models stay about that domain.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, func, literal_column, text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from service.db import Base, UTCDateTime, utcnow
from service.inquiries.models import Inquiry
from service.newsletter.models import Subscriber

ROLES = ("admin", "staff")


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16), default="staff")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped on logout and password change: every cookie carrying an older version stops working.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def label(self) -> str:
        return self.name or self.email


class BrandSettings(Base):
    """The organisation's settings that staff change at run time (one row, id 1): the postal
    address of the newsletter footers (NULL: ORG_POSTAL_ADDRESS), and the install id that makes
    this install's Message-IDs differ from every other install's (random, set once)."""

    __tablename__ = "brand_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    install_id: Mapped[str] = mapped_column(String(32))
    postal_address: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    actor_email: Mapped[str] = mapped_column(String(320), default="")
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32), default="")
    target_id: Mapped[str] = mapped_column(String(64), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        Index("ix_audit_events_created_at_id", "created_at", "id"),
        Index("ix_audit_events_action_created_at", "action", "created_at"),
        Index("ix_audit_events_actor_email_created_at", "actor_email", "created_at"),
    )


# -- indexes for the admin pages on other domains' tables --------------------------------------

# The document searched by the inquiry list on PostgreSQL. Constants are literal SQL (never bound
# parameters) so that the query's expression is exactly the indexed one and the planner uses it.
SEARCH_CONFIG = literal_column("'simple'::regconfig")


def inquiry_search_document() -> ColumnElement[Any]:
    """to_tsvector over name, email and message: the expression of ix_inquiries_search."""
    space = literal_column("' '")
    return func.to_tsvector(SEARCH_CONFIG, Inquiry.name + space + Inquiry.email + space + Inquiry.message)


# PostgreSQL only (a GIN index over a tsvector; the migration makes it there only). Written as
# PostgreSQL reflects it, so that the schema comparison finds no difference; SQLite cannot reflect
# expression indexes, and Alembic skips it there with a warning that tests/test_migrations.py expects.
SEARCH_INDEX_SQL = (
    "to_tsvector('simple'::regconfig, (((name::text || ' '::text) || email::text) || ' '::text) || message)"
)
Index(
    "ix_inquiries_search", text(SEARCH_INDEX_SQL), postgresql_using="gin", _table=Inquiry.__table__,
).ddl_if(dialect="postgresql")
# Substring searches (inquiry email; subscriber email and name): trigram GIN indexes on PostgreSQL, which answers
# ILIKE '%…%' without a scan; plain indexes on SQLite (see migration 0004a; it falls back to
# plain indexes on PostgreSQL too when the pg_trgm extension cannot be created).
Index("ix_inquiries_email_search", Inquiry.email, postgresql_using="gin", postgresql_ops={"email": "gin_trgm_ops"})
Index("ix_subscribers_email_key_search", Subscriber.email_key, postgresql_using="gin",
      postgresql_ops={"email_key": "gin_trgm_ops"})
Index("ix_subscribers_name_search", Subscriber.name, postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"})
Index("ix_inquiries_topic_created_at_id", Inquiry.topic, Inquiry.created_at, Inquiry.id)
Index("ix_subscribers_created_at_id", Subscriber.created_at, Subscriber.id)
Index("ix_subscribers_status_created_at_id", Subscriber.status, Subscriber.created_at, Subscriber.id)
Index("ix_subscribers_confirmed_at", Subscriber.confirmed_at)
Index("ix_subscribers_unsubscribed_at", Subscriber.unsubscribed_at)
