"""bounces: every bounce and complaint report once, the inquiry's "the address bounced" flag, and
indexes on the Message-IDs a provider's report names

Revision ID: 0008b
Revises: 0007g
Create Date: 2026-12-02 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008b"
down_revision: str | None = "0007g"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bounce_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("recipient_key", sa.String(length=320), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("diagnostic", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("outbox_message_id", sa.Integer(), nullable=True),
        sa.Column("inquiry_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name=op.f("fk_bounce_events_campaign_id_campaigns"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"],
                                name=op.f("fk_bounce_events_delivery_id_deliveries"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["inquiry_id"], ["inquiries.id"], name=op.f("fk_bounce_events_inquiry_id_inquiries"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["outbox_message_id"], ["outbox_messages.id"],
                                name=op.f("fk_bounce_events_outbox_message_id_outbox_messages"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"],
                                name=op.f("fk_bounce_events_subscriber_id_subscribers"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce_events")),
        sa.UniqueConstraint("event_key", name=op.f("uq_bounce_events_event_key")),
    )
    op.create_index(op.f("ix_bounce_events_received_at"), "bounce_events", ["received_at"], unique=False)
    op.create_index(op.f("ix_bounce_events_subscriber_id"), "bounce_events", ["subscriber_id"], unique=False)
    op.create_index(op.f("ix_bounce_events_campaign_id"), "bounce_events", ["campaign_id"], unique=False)
    op.create_index(op.f("ix_bounce_events_inquiry_id"), "bounce_events", ["inquiry_id"], unique=False)
    op.create_index("ix_bounce_events_recipient_key_kind_occurred_at", "bounce_events",
                    ["recipient_key", "kind", "occurred_at"], unique=False)
    # a provider's bounce or complaint names the message by its Message-ID
    op.create_index(op.f("ix_deliveries_message_id"), "deliveries", ["message_id"], unique=False)
    op.create_index(op.f("ix_outbox_messages_message_id"), "outbox_messages", ["message_id"], unique=False)
    with op.batch_alter_table("inquiries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bounced_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("bounce_diagnostic", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inquiries", schema=None) as batch_op:
        batch_op.drop_column("bounce_diagnostic")
        batch_op.drop_column("bounced_at")
    op.drop_index(op.f("ix_outbox_messages_message_id"), table_name="outbox_messages")
    op.drop_index(op.f("ix_deliveries_message_id"), table_name="deliveries")
    op.drop_index("ix_bounce_events_recipient_key_kind_occurred_at", table_name="bounce_events")
    op.drop_index(op.f("ix_bounce_events_inquiry_id"), table_name="bounce_events")
    op.drop_index(op.f("ix_bounce_events_campaign_id"), table_name="bounce_events")
    op.drop_index(op.f("ix_bounce_events_subscriber_id"), table_name="bounce_events")
    op.drop_index(op.f("ix_bounce_events_received_at"), table_name="bounce_events")
    op.drop_table("bounce_events")
