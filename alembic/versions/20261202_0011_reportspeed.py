"""report pages: indexes so a year of data is counted from indexes alone

- deliveries (campaign_id, status, bounced): a campaign's attempted and bounced deliveries are
  counted per campaign in one grouped query (service.bounces.stats.campaigns_rates) by an
  index-only scan instead of visiting every delivery row;
- subscribers (signup_at, confirmed_at) replaces (signup_at): the audience report counts a
  week's signups and how many of them are confirmed in one index-only scan;
- inquiries (utm_campaign, status) replaces (utm_campaign): the inquiries of a page of campaigns,
  by funnel status, are counted from the index alone.

Revision ID: 0011_reportspeed
Revises: 0010_insight
Create Date: 2026-12-02 17:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011_reportspeed"
down_revision: str | None = "0010_insight"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.create_index("ix_deliveries_campaign_id_status_bounced", ["campaign_id", "status", "bounced"])
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_index("ix_subscribers_signup_at")
        batch.create_index("ix_subscribers_signup_at_confirmed_at", ["signup_at", "confirmed_at"])
    with op.batch_alter_table("inquiries") as batch:
        batch.drop_index("ix_inquiries_utm_campaign")
        batch.create_index("ix_inquiries_utm_campaign_status", ["utm_campaign", "status"])


def downgrade() -> None:
    with op.batch_alter_table("inquiries") as batch:
        batch.drop_index("ix_inquiries_utm_campaign_status")
        batch.create_index("ix_inquiries_utm_campaign", ["utm_campaign"])
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_index("ix_subscribers_signup_at_confirmed_at")
        batch.create_index("ix_subscribers_signup_at", ["signup_at"])
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_campaign_id_status_bounced")
