"""held inquiries, opaque receipts and single-use form tokens

An inquiry that looks automated is stored with status "held" and its reason (held_reason); every
stored submission keeps the opaque receipt its sender was given (receipt) and the nonce of the
form token it came with (form_nonce), unique, so a token stores one submission.

Revision ID: 0006h
Revises: 0005p
Create Date: 2026-12-02 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006h"
down_revision: str | None = "0005p"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("inquiries", sa.Column("receipt", sa.String(32), nullable=True))
    op.add_column("inquiries", sa.Column("form_nonce", sa.String(64), nullable=True))
    op.add_column("inquiries", sa.Column("held_reason", sa.String(32), nullable=True))
    op.create_index("ix_inquiries_receipt", "inquiries", ["receipt"], unique=True)
    op.create_index("ix_inquiries_form_nonce", "inquiries", ["form_nonce"], unique=True)


def downgrade() -> None:
    # the older code knows no "held": keep those rows, out of the way, as spam (never mailed)
    op.execute("UPDATE inquiries SET status = 'spam' WHERE status = 'held'")
    op.drop_index("ix_inquiries_form_nonce", table_name="inquiries")
    op.drop_index("ix_inquiries_receipt", table_name="inquiries")
    with op.batch_alter_table("inquiries") as batch:
        batch.drop_column("held_reason")
        batch.drop_column("form_nonce")
        batch.drop_column("receipt")
