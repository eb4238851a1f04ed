"""webhook nonces: Mailgun's signed tokens, each accepted once while fresh

Revision ID: 0009w
Revises: 0008s
Create Date: 2026-12-02 13:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009w"
down_revision: str | None = "0008s"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_nonces",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_webhook_nonces")),
    )
    op.create_index(op.f("ix_webhook_nonces_seen_at"), "webhook_nonces", ["seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_nonces_seen_at"), table_name="webhook_nonces")
    op.drop_table("webhook_nonces")
