"""newsletter: subscriber ids are never reused on SQLite

Revision ID: 0002n
Revises: 0001
Create Date: 2026-11-28 08:00:00

Confirmation and unsubscribe links carry the subscriber id (signed). SQLite without
AUTOINCREMENT hands the id of a deleted newest row (erased or purged) to the next signup, so an
old unsubscribe link of an erased person would open a stranger's preference centre. AUTOINCREMENT
never reuses an id. PostgreSQL sequences never do either: nothing to change there.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002n"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # Recreating the table drops the old one, which cascades to subscriber_topics: keep them aside.
    op.execute("CREATE TEMP TABLE _keep_subscriber_topics AS SELECT * FROM subscriber_topics")
    with op.batch_alter_table("subscribers", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}):
        pass
    op.execute("DELETE FROM subscriber_topics")
    op.execute("INSERT INTO subscriber_topics SELECT * FROM _keep_subscriber_topics")
    op.execute("DROP TABLE _keep_subscriber_topics")


def upgrade() -> None:
    _recreate(True)


def downgrade() -> None:
    _recreate(False)
