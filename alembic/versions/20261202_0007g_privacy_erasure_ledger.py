"""privacy: the erasure ledger, and outbox messages linked to the inquiry they are about

Revision ID: 0007g
Revises: 0006h
Create Date: 2026-12-02 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007g"
down_revision: str | None = "0006h"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )
    op.create_index("ix_erasures_kind_subject_hash", "erasures", ["kind", "subject_hash"], unique=False)
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inquiry_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_outbox_messages_inquiry_id"), ["inquiry_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_outbox_messages_inquiry_id_inquiries"), "inquiries",
                                    ["inquiry_id"], ["id"], ondelete="CASCADE")
    # Link the messages already queued for an inquiry: the staff notification carries the id in
    # its context; the automatic reply was queued in the same statement (same created_at, same
    # recipient as the inquiry's address).
    op.execute("""
        UPDATE outbox_messages SET inquiry_id = (
            SELECT i.id FROM inquiries i
            WHERE outbox_messages.kind = 'inquiry_autoreply' AND i.created_at = outbox_messages.created_at
              AND lower(i.email) = lower(outbox_messages.recipient)
            ORDER BY i.id LIMIT 1)
        WHERE kind = 'inquiry_autoreply'""")
    op.execute("""
        UPDATE outbox_messages SET inquiry_id = (
            SELECT i.id FROM inquiries i
            WHERE outbox_messages.subject LIKE 'New inquiry #' || CAST(i.id AS VARCHAR) || ' %'
              AND i.created_at = outbox_messages.created_at
            ORDER BY i.id LIMIT 1)
        WHERE kind = 'inquiry_staff'""")


def downgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_outbox_messages_inquiry_id_inquiries"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_outbox_messages_inquiry_id"))
        batch_op.drop_column("inquiry_id")
    op.drop_index("ix_erasures_kind_subject_hash", table_name="erasures")
    op.drop_table("erasures")
