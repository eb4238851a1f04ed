"""admin indexes: list filters, keyset pagination, dashboard series, inquiry full-text search

Revision ID: 0004a
Revises: 0003d
Create Date: 2026-11-28 07:35:24.426621
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004a"
down_revision: str | None = "0003d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same document as service.inquiries.models.inquiry_search_document(), as PostgreSQL reflects it.
SEARCH_DOCUMENT = (
    "to_tsvector('simple'::regconfig, (((name::text || ' '::text) || email::text) || ' '::text) || message)"
)


def upgrade() -> None:
    op.create_index("ix_audit_events_actor_email_created_at", "audit_events", ["actor_email", "created_at"])
    op.create_index("ix_inquiries_topic_created_at_id", "inquiries", ["topic", "created_at", "id"])
    op.create_index("ix_subscribers_confirmed_at", "subscribers", ["confirmed_at"])
    op.create_index("ix_subscribers_created_at_id", "subscribers", ["created_at", "id"])
    op.create_index("ix_subscribers_status_created_at_id", "subscribers", ["status", "created_at", "id"])
    op.create_index("ix_subscribers_unsubscribed_at", "subscribers", ["unsubscribed_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_inquiries_search", "inquiries", [sa.text(SEARCH_DOCUMENT)], postgresql_using="gin")
        _substring_search_indexes_postgresql()
    else:
        for name, table, column in SUBSTRING_SEARCH_INDEXES:
            op.create_index(name, table, [column])


SUBSTRING_SEARCH_INDEXES = (
    ("ix_inquiries_email_search", "inquiries", "email"),
    ("ix_subscribers_email_key_search", "subscribers", "email_key"),
    ("ix_subscribers_name_search", "subscribers", "name"),
)


def _substring_search_indexes_postgresql() -> None:
    """Trigram GIN indexes for ILIKE '%…%'; plain indexes when the database user may not create
    the pg_trgm extension (those searches then scan, and still work)."""
    bind = op.get_bind()
    savepoint = bind.begin_nested()
    try:
        bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError:
        savepoint.rollback()
        for name, table, column in SUBSTRING_SEARCH_INDEXES:
            op.create_index(name, table, [column])
        return
    savepoint.commit()
    for name, table, column in SUBSTRING_SEARCH_INDEXES:
        op.create_index(name, table, [column], postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})


def downgrade() -> None:
    for name, table, _column in SUBSTRING_SEARCH_INDEXES:
        op.drop_index(name, table_name=table)
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_inquiries_search", table_name="inquiries")
    op.drop_index("ix_subscribers_unsubscribed_at", table_name="subscribers")
    op.drop_index("ix_subscribers_status_created_at_id", table_name="subscribers")
    op.drop_index("ix_subscribers_created_at_id", table_name="subscribers")
    op.drop_index("ix_subscribers_confirmed_at", table_name="subscribers")
    op.drop_index("ix_inquiries_topic_created_at_id", table_name="inquiries")
    op.drop_index("ix_audit_events_actor_email_created_at", table_name="audit_events")
