"""insight: click counters, distinct-reader hashes and their daily counts, the daily salt; the page a signup was made on

Revision ID: 0010_insight
Revises: 0010_brand
Create Date: 2026-12-02 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_insight"
down_revision: str | None = "0010_brand"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "click_counts",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("link", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "link", "hour", "kind", name=op.f("pk_click_counts")),
    )
    op.create_table(
        "click_readers",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("link", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reader", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "link", "day", "reader", name=op.f("pk_click_readers")),
    )
    op.create_table(
        "click_reader_counts",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("link", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("readers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "link", "day", name=op.f("pk_click_reader_counts")),
    )
    op.create_table(
        "click_salts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_click_salts")),
    )
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("signup_page", sa.String(length=2000), nullable=True))
    for column in ("signup_at", "bounced_at", "complained_at"):
        op.create_index(f"ix_subscribers_{column}", "subscribers", [column], unique=False)
    op.create_index("ix_inquiries_utm_campaign", "inquiries", ["utm_campaign"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_inquiries_utm_campaign", table_name="inquiries")
    for column in ("signup_at", "bounced_at", "complained_at"):
        op.drop_index(f"ix_subscribers_{column}", table_name="subscribers")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("signup_page")
    op.drop_table("click_salts")
    op.drop_table("click_reader_counts")
    op.drop_table("click_readers")
    op.drop_table("click_counts")
