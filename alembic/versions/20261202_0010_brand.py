"""brand: the organisation's look set on the Settings page (name, accent colour, logo, footer
text, blog address); NULL keeps the environment's default

Revision ID: 0010_brand
Revises: 0010i
Create Date: 2026-12-02 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_brand"
down_revision: str | None = "0010i"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("org_name", sa.String(length=100)),
    ("accent_color", sa.String(length=7)),
    ("footer_text", sa.String(length=500)),
    ("blog_url", sa.String(length=2000)),
    ("logo", sa.LargeBinary()),
    ("logo_type", sa.String(length=32)),
    ("logo_sha", sa.String(length=64)),
    ("logo_width", sa.Integer()),
    ("logo_height", sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table("brand_settings") as batch:
        for name, type_ in _COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("brand_settings") as batch:
        for name, _type in reversed(_COLUMNS):
            batch.drop_column(name)
