"""web_activity: how busy each app process is, for the workers to give way

Each app process writes the share of the last second it spent with a request in flight to its
own row (service/activity.py); the campaign sender reads the fresh rows and slows down while the
web is busy (SEND_YIELD). One row per app process; rows nobody refreshed for an hour are deleted.

Revision ID: 0013w_webactivity
Revises: 0012a_leadmonths
Create Date: 2026-12-03 12:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.db import UTCDateTime

revision: str = "0013w_webactivity"
down_revision: str | None = "0012a_leadmonths"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_activity",
        sa.Column("process", sa.String(length=200), nullable=False),
        sa.Column("busy", sa.Float(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("process", name=op.f("pk_web_activity")),
    )


def downgrade() -> None:
    op.drop_table("web_activity")
