"""deliveries: a partial index of the skipped ones, by campaign and reason

The campaign page counts a campaign's skipped deliveries per reason on every view. Read through
the claim index it fetched every skipped row from the table; with a million recipients and
55,000 skipped, PostgreSQL scanned all deliveries instead (1.3 s). This index holds only the
skipped rows with their reason, so the count is read from it alone (queueing writes an entry
for the skipped rows only).

Revision ID: 0014q_skipped_index
Revises: 0014k_admincounts
Create Date: 2026-12-03 15:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014q_skipped_index"
down_revision: str | None = "0014k_admincounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SKIPPED = sa.text("status = 'skipped'")


def upgrade() -> None:
    op.create_index("ix_deliveries_skipped", "deliveries", ["campaign_id", "skip_reason"],
                    postgresql_where=SKIPPED, sqlite_where=SKIPPED)


def downgrade() -> None:
    op.drop_index("ix_deliveries_skipped", table_name="deliveries")
