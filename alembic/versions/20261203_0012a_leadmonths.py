"""lead sources: inquiries counted per month and source, kept by PostgreSQL triggers

The lead-sources report grouped every inquiry of its months by source page, referrer, utm
source and campaign, topic, month and status: a scan of the whole inquiries table (80,000 rows,
37 MB, about half of it the grouping) for each view. `lead_source_months` holds those counts per
calendar month (UTC), so the report reads a few thousand counters for its whole months and groups
only the inquiries of its first, partial month.

On PostgreSQL three statement-level triggers on `inquiries` (insert, update, delete) append
each statement's changes, summed per month, status and source, as new rows (+n or -n), whatever
wrote them (the app, an import, a bench, a manual fix). Appending, never updating a shared
counter row, keeps two transactions that change inquiries of the same source (two retention
workers, two submissions) from waiting on each other; the worker folds the rows into one per
counter every few minutes (`service.insight.queries.compact_lead_source_months`). `source_key`
is an md5 of the five text dimensions (page and referrer may each be 2,000 characters). SQLite
(the embedded, single-node default) has the table but no triggers and leaves it empty: its report
groups the inquiries themselves (`service.db.keeps_lead_source_months`).

Revision ID: 0012a_leadmonths
Revises: 0011_reportspeed
Create Date: 2026-12-03 08:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012a_leadmonths"
down_revision: str | None = "0012w_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIMENSIONS = "source_page, referrer, utm_source, utm_campaign, topic"
# One changed row's month, status and dimensions; `rows` is a transition table, `n` +1 or -1.
ROWS = (
    "SELECT date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month, status, "
    "md5(concat_ws(chr(31), source_page, referrer, utm_source, utm_campaign, topic)) AS source_key, "
    f"{DIMENSIONS}, {{n}} AS n FROM {{rows}}"
)


def _apply(changes: str) -> str:
    """Append `changes` (rows with n = +1 or -1), summed per counter, as new rows."""
    return f"""
        INSERT INTO lead_source_months (month, status, source_key, {DIMENSIONS}, inquiries)
        SELECT month, status, source_key, {DIMENSIONS}, sum(n) FROM ({changes}) c
        GROUP BY month, status, source_key, {DIMENSIONS} HAVING sum(n) <> 0;"""


ADDED, REMOVED = ROWS.format(n=1, rows="new_rows"), ROWS.format(n=-1, rows="old_rows")
APPLY = f"""
CREATE FUNCTION lead_source_months_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN {_apply(ADDED)}
    ELSIF TG_OP = 'DELETE' THEN {_apply(REMOVED)}
    ELSE {_apply(f"{ADDED} UNION ALL {REMOVED}")}
    END IF;
    RETURN NULL;
END
$$
"""
TRIGGERS = {
    "insert": "REFERENCING NEW TABLE AS new_rows",
    "update": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "REFERENCING OLD TABLE AS old_rows",
}


def upgrade() -> None:
    op.create_table(
        "lead_source_months",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source_key", sa.String(32), nullable=False),
        sa.Column("source_page", sa.String(2000), nullable=False),
        sa.Column("referrer", sa.String(2000), nullable=False),
        sa.Column("utm_source", sa.String(200), nullable=False),
        sa.Column("utm_campaign", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(40), nullable=False),
        sa.Column("inquiries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_source_months")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(APPLY)
    for event, referencing in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER lead_source_months_{event} AFTER {event.upper()} ON inquiries {referencing} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION lead_source_months_apply()")
    op.execute(f"INSERT INTO lead_source_months (month, status, source_key, {DIMENSIONS}, inquiries) "
               f"SELECT month, status, source_key, {DIMENSIONS}, sum(n) FROM ({ROWS.format(n=1, rows='inquiries')}) r "
               f"GROUP BY month, status, source_key, {DIMENSIONS}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for event in TRIGGERS:
            op.execute(f"DROP TRIGGER lead_source_months_{event} ON inquiries")
        op.execute("DROP FUNCTION lead_source_months_apply()")
    op.drop_table("lead_source_months")
