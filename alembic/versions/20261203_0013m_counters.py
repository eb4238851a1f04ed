"""counters: subscribers per status and deliveries per campaign and status, kept by triggers

With a million subscribers, counting them per status for the dashboard and the subscriber list
(a scan of the whole table, ~100 ms) and a campaign's deliveries per status for its live figures
(a million index entries) on every request is too slow. Two tables of counters hold those
figures instead, kept by triggers in the very transaction of the change, whatever wrote it (the
app, an import, the sender, a cascade, a manual fix), so they are exact: a reader sees the
counters of exactly the rows its snapshot sees.

Like `lead_source_months` (0012a_leadmonths) the triggers only ever append rows (+n or -n),
never update a shared counter row, so two transactions that change subscribers or deliveries
never wait on each other; the worker folds the rows into one per counter every few seconds
(`service.newsletter.counts`, `service.campaigns.counts`).

- `subscriber_counts (status, n)`.
- `delivery_counts (campaign_id, status, bounced, second, n)`: status is 'queued' for queued
  and being sent (a claim changes no counter), else sent, failed or skipped; `second` is the
  Unix second of the change (the send rate of the last minute is read from the recent ones;
  the fold keeps the last two minutes apart and sets older ones to NULL). No foreign key: the
  deletes a campaign's deletion cascades to append rows for it; the fold drops them.

PostgreSQL: statement-level triggers with transition tables for inserts and deletes (queueing a
million deliveries, an import of a million subscribers: one grouped INSERT each), and for
updates of subscribers; a row-level trigger for updates of deliveries, only when one reaches,
leaves or changes a final status or its bounce flag (the sender marks results with one
statement per row; a claim fires nothing). SQLite: row-level triggers.

Revision ID: 0013m_counters
Revises: 0013w_webactivity
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013m_counters"
down_revision: str | None = "0013w_webactivity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINAL = "('sent', 'failed', 'skipped')"
PG_NOW = "CAST(extract(epoch FROM now()) AS bigint)"
SQLITE_NOW = "CAST(strftime('%s', 'now') AS INTEGER)"


def _open(column: str) -> str:
    """Queued and being sent count as one: 'queued'."""
    return f"CASE WHEN {column} IN {FINAL} THEN {column} ELSE 'queued' END"


PG_SUBSCRIBERS = """
CREATE FUNCTION subscriber_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO subscriber_counts (status, n) SELECT status, count(*) FROM new_rows GROUP BY status;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO subscriber_counts (status, n) SELECT status, -count(*) FROM old_rows GROUP BY status;
    ELSE
        INSERT INTO subscriber_counts (status, n)
        SELECT status, sum(n) FROM (SELECT status, 1 AS n FROM new_rows UNION ALL SELECT status, -1 FROM old_rows) c
        GROUP BY status HAVING sum(n) <> 0;
    END IF;
    RETURN NULL;
END
$$
"""
PG_DELIVERIES = f"""
CREATE FUNCTION delivery_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO delivery_counts (campaign_id, status, bounced, second, n)
        SELECT campaign_id, {_open('status')}, bounced, {PG_NOW}, count(*) FROM new_rows GROUP BY 1, 2, 3;
    ELSE
        INSERT INTO delivery_counts (campaign_id, status, bounced, second, n)
        SELECT campaign_id, {_open('status')}, bounced, {PG_NOW}, -count(*) FROM old_rows GROUP BY 1, 2, 3;
    END IF;
    RETURN NULL;
END
$$
"""
PG_DELIVERY_ROW = f"""
CREATE FUNCTION delivery_counts_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_counts (campaign_id, status, bounced, second, n) VALUES
        (OLD.campaign_id, {_open('OLD.status')}, OLD.bounced, {PG_NOW}, -1),
        (NEW.campaign_id, {_open('NEW.status')}, NEW.bounced, {PG_NOW}, 1);
    RETURN NULL;
END
$$
"""
# Only when a delivery reaches, leaves or changes a final status, or its bounce flag changes.
DELIVERY_CHANGED = (f"(OLD.status <> NEW.status AND (OLD.status IN {FINAL} OR NEW.status IN {FINAL})) "
                    "OR OLD.bounced <> NEW.bounced OR OLD.campaign_id <> NEW.campaign_id")

SQLITE_TRIGGERS = [
    "CREATE TRIGGER subscriber_counts_insert AFTER INSERT ON subscribers BEGIN "
    "INSERT INTO subscriber_counts (status, n) VALUES (NEW.status, 1); END",
    "CREATE TRIGGER subscriber_counts_update AFTER UPDATE OF status ON subscribers "
    "WHEN OLD.status <> NEW.status BEGIN "
    "INSERT INTO subscriber_counts (status, n) VALUES (OLD.status, -1), (NEW.status, 1); END",
    "CREATE TRIGGER subscriber_counts_delete AFTER DELETE ON subscribers BEGIN "
    "INSERT INTO subscriber_counts (status, n) VALUES (OLD.status, -1); END",
    "CREATE TRIGGER delivery_counts_insert AFTER INSERT ON deliveries BEGIN "
    "INSERT INTO delivery_counts (campaign_id, status, bounced, second, n) "
    f"VALUES (NEW.campaign_id, {_open('NEW.status')}, NEW.bounced, {SQLITE_NOW}, 1); END",
    f"CREATE TRIGGER delivery_counts_update AFTER UPDATE ON deliveries WHEN {DELIVERY_CHANGED} BEGIN "
    "INSERT INTO delivery_counts (campaign_id, status, bounced, second, n) VALUES "
    f"(OLD.campaign_id, {_open('OLD.status')}, OLD.bounced, {SQLITE_NOW}, -1), "
    f"(NEW.campaign_id, {_open('NEW.status')}, NEW.bounced, {SQLITE_NOW}, 1); END",
    "CREATE TRIGGER delivery_counts_delete AFTER DELETE ON deliveries BEGIN "
    "INSERT INTO delivery_counts (campaign_id, status, bounced, second, n) "
    f"VALUES (OLD.campaign_id, {_open('OLD.status')}, OLD.bounced, {SQLITE_NOW}, -1); END",
]
SQLITE_NAMES = ["subscriber_counts_insert", "subscriber_counts_update", "subscriber_counts_delete",
                "delivery_counts_insert", "delivery_counts_update", "delivery_counts_delete"]


def upgrade() -> None:
    op.create_table(
        "subscriber_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriber_counts")),
    )
    op.create_table(
        "delivery_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("bounced", sa.Boolean(), nullable=False),
        sa.Column("second", sa.BigInteger(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_counts")),
    )
    op.create_index("ix_delivery_counts_campaign_id", "delivery_counts", ["campaign_id"])
    # Counted by the triggers now: the index for the bounce rates (0011_reportspeed) goes, and the
    # message id's index keeps no entry for the NULL of a delivery not yet sent. Queueing a
    # million deliveries writes two million index entries fewer.
    op.drop_index("ix_deliveries_campaign_id_status_bounced", table_name="deliveries")
    op.drop_index("ix_deliveries_message_id", table_name="deliveries")
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"],
                    postgresql_where=sa.text("message_id IS NOT NULL"), sqlite_where=sa.text("message_id IS NOT NULL"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_SUBSCRIBERS)
        op.execute(PG_DELIVERIES)
        op.execute(PG_DELIVERY_ROW)
        for event, referencing in (("insert", "NEW TABLE AS new_rows"),
                                   ("update", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                                   ("delete", "OLD TABLE AS old_rows")):
            op.execute(f"CREATE TRIGGER subscriber_counts_{event} AFTER {event.upper()} ON subscribers "
                       f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION subscriber_counts_apply()")
        for event, referencing in (("insert", "NEW TABLE AS new_rows"), ("delete", "OLD TABLE AS old_rows")):
            op.execute(f"CREATE TRIGGER delivery_counts_{event} AFTER {event.upper()} ON deliveries "
                       f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION delivery_counts_apply()")
        op.execute(f"CREATE TRIGGER delivery_counts_update AFTER UPDATE ON deliveries FOR EACH ROW "
                   f"WHEN ({DELIVERY_CHANGED}) EXECUTE FUNCTION delivery_counts_change()")
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    op.execute("INSERT INTO subscriber_counts (status, n) SELECT status, count(*) FROM subscribers GROUP BY status")
    op.execute("INSERT INTO delivery_counts (campaign_id, status, bounced, second, n) "
               f"SELECT campaign_id, {_open('status')}, bounced, NULL, count(*) FROM deliveries "
               f"GROUP BY campaign_id, {_open('status')}, bounced")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER subscriber_counts_{event} ON subscribers")
            op.execute(f"DROP TRIGGER delivery_counts_{event} ON deliveries")
        for function in ("subscriber_counts_apply", "delivery_counts_apply", "delivery_counts_change"):
            op.execute(f"DROP FUNCTION {function}()")
    else:
        for name in SQLITE_NAMES:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_index("ix_deliveries_message_id", table_name="deliveries")
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"])
    op.create_index("ix_deliveries_campaign_id_status_bounced", "deliveries", ["campaign_id", "status", "bounced"])
    op.drop_index("ix_delivery_counts_campaign_id", table_name="delivery_counts")
    op.drop_table("delivery_counts")
    op.drop_table("subscriber_counts")
