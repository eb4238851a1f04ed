"""deliveries: the claim index ends with the row id, so workers claim in queue order

A worker claims due deliveries ordered by (next_attempt_at, id). Every row of a campaign is
queued with the same next_attempt_at, so without `id` in the index PostgreSQL would sort all of
a campaign's queued rows on each claim; with it the claim reads its batch straight off the index.

Revision ID: 0010o
Revises: 0009c
Create Date: 2026-12-02 16:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010o"
down_revision: str | None = "0009c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_campaign_id_status_next_attempt_at")
        batch.create_index("ix_deliveries_claim_order", ["campaign_id", "status", "next_attempt_at", "id"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_claim_order")
        batch.create_index("ix_deliveries_campaign_id_status_next_attempt_at",
                           ["campaign_id", "status", "next_attempt_at"])
