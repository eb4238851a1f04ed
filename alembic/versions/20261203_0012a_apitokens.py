"""api tokens: staff members' personal access tokens for the admin API (/api/v1)

Only the SHA-256 of each token is stored (unique: the API finds a token by it), with a short
visible prefix, its scopes, expiry, last use and revocation.

Revision ID: 0012a_apitokens
Revises: 0011_reportspeed
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012a_apitokens"
down_revision: str | None = "0011_reportspeed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.ForeignKeyConstraint(["staff_user_id"], ["staff_users.id"], ondelete="CASCADE",
                                name=op.f("fk_api_tokens_staff_user_id_staff_users")),
        sa.ForeignKeyConstraint(["revoked_by_id"], ["staff_users.id"], ondelete="SET NULL",
                                name=op.f("fk_api_tokens_revoked_by_id_staff_users")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_staff_user_id"), "api_tokens", ["staff_user_id"])


def downgrade() -> None:
    op.drop_index("ix_api_tokens_staff_user_id", table_name="api_tokens")
    op.drop_table("api_tokens")
