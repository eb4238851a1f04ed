"""admin counters: subscribers confirmed and unsubscribed per day, inquiries per status

With a million subscribers the dashboard's 90-day growth chart grouped every confirmation and
unsubscription of those days on each view (~400,000 rows, about a second), and with a million
inquiries the dashboard and the inquiry list counted them per status (a scan of the table). Two
tables of counters, kept by triggers like `subscriber_counts` (0013m_counters), hold those
figures instead, exact in any transaction whatever wrote the rows:

- `subscriber_days (day, confirmed, unsubscribed)`: per UTC calendar day, the subscribers whose
  `confirmed_at`, and those whose `unsubscribed_at`, falls on it (what the chart showed).
- `inquiry_counts (status, n)`: inquiries per status (held included).

And on PostgreSQL an index on the domain of the subscribers' addresses (`split_part(email_key,
'@', 2)`, what `service.db.email_domain` compiles to): a search for a domain matched it through
the trigram index on `email_key`, whose entries for a domain's trigrams cover most addresses
(half a second for 1 in 80 of a million). SQLite scans.

The triggers only ever append rows (+n or -n); the worker folds them into one per counter
(`service.newsletter.counts`, `service.inquiries.counts`). PostgreSQL: statement-level
triggers with transition tables (an import of a million rows appends one grouped INSERT);
SQLite: row-level triggers, only when a counted column changes.

Revision ID: 0014k_admincounts
Revises: 0013m_counters
Create Date: 2026-12-03 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014k_admincounts"
down_revision: str | None = "0013m_counters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _days(rows: str, n: str) -> str:
    """The (day, confirmed, unsubscribed) of the rows of `rows`, each counted `n` (+1 or -1)."""
    return (f"SELECT CAST(confirmed_at AT TIME ZONE 'UTC' AS date) AS day, {n} AS c, 0 AS u FROM {rows} "
            f"WHERE confirmed_at IS NOT NULL UNION ALL "
            f"SELECT CAST(unsubscribed_at AT TIME ZONE 'UTC' AS date), 0, {n} FROM {rows} "
            f"WHERE unsubscribed_at IS NOT NULL")


def _append_days(changes: str) -> str:
    return (f"INSERT INTO subscriber_days (day, confirmed, unsubscribed) SELECT day, sum(c), sum(u) "
            f"FROM ({changes}) d GROUP BY day HAVING sum(c) <> 0 OR sum(u) <> 0;")


PG_DAYS = f"""
CREATE FUNCTION subscriber_days_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN {_append_days(_days("new_rows", "1"))}
    ELSIF TG_OP = 'DELETE' THEN {_append_days(_days("old_rows", "-1"))}
    ELSE {_append_days(_days("new_rows", "1") + " UNION ALL " + _days("old_rows", "-1"))}
    END IF;
    RETURN NULL;
END
$$
"""
PG_INQUIRIES = """
CREATE FUNCTION inquiry_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO inquiry_counts (status, n) SELECT status, count(*) FROM new_rows GROUP BY status;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO inquiry_counts (status, n) SELECT status, -count(*) FROM old_rows GROUP BY status;
    ELSE
        INSERT INTO inquiry_counts (status, n)
        SELECT status, sum(n) FROM (SELECT status, 1 AS n FROM new_rows UNION ALL SELECT status, -1 FROM old_rows) c
        GROUP BY status HAVING sum(n) <> 0;
    END IF;
    RETURN NULL;
END
$$
"""
EVENTS = (("insert", "NEW TABLE AS new_rows"), ("update", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
          ("delete", "OLD TABLE AS old_rows"))


def _sqlite_day(row: str, column: str, confirmed: int, unsubscribed: int) -> str:
    return (f"INSERT INTO subscriber_days (day, confirmed, unsubscribed) SELECT date({row}.{column}), "
            f"{confirmed}, {unsubscribed} WHERE {row}.{column} IS NOT NULL;")


SQLITE_TRIGGERS = [
    "CREATE TRIGGER subscriber_days_insert AFTER INSERT ON subscribers "
    "WHEN NEW.confirmed_at IS NOT NULL OR NEW.unsubscribed_at IS NOT NULL BEGIN "
    f"{_sqlite_day('NEW', 'confirmed_at', 1, 0)} {_sqlite_day('NEW', 'unsubscribed_at', 0, 1)} END",
    "CREATE TRIGGER subscriber_days_confirmed AFTER UPDATE OF confirmed_at ON subscribers "
    "WHEN OLD.confirmed_at IS NOT NEW.confirmed_at BEGIN "
    f"{_sqlite_day('OLD', 'confirmed_at', -1, 0)} {_sqlite_day('NEW', 'confirmed_at', 1, 0)} END",
    "CREATE TRIGGER subscriber_days_unsubscribed AFTER UPDATE OF unsubscribed_at ON subscribers "
    "WHEN OLD.unsubscribed_at IS NOT NEW.unsubscribed_at BEGIN "
    f"{_sqlite_day('OLD', 'unsubscribed_at', 0, -1)} {_sqlite_day('NEW', 'unsubscribed_at', 0, 1)} END",
    "CREATE TRIGGER subscriber_days_delete AFTER DELETE ON subscribers "
    "WHEN OLD.confirmed_at IS NOT NULL OR OLD.unsubscribed_at IS NOT NULL BEGIN "
    f"{_sqlite_day('OLD', 'confirmed_at', -1, 0)} {_sqlite_day('OLD', 'unsubscribed_at', 0, -1)} END",
    "CREATE TRIGGER inquiry_counts_insert AFTER INSERT ON inquiries BEGIN "
    "INSERT INTO inquiry_counts (status, n) VALUES (NEW.status, 1); END",
    "CREATE TRIGGER inquiry_counts_update AFTER UPDATE OF status ON inquiries "
    "WHEN OLD.status <> NEW.status BEGIN "
    "INSERT INTO inquiry_counts (status, n) VALUES (OLD.status, -1), (NEW.status, 1); END",
    "CREATE TRIGGER inquiry_counts_delete AFTER DELETE ON inquiries BEGIN "
    "INSERT INTO inquiry_counts (status, n) VALUES (OLD.status, -1); END",
]
SQLITE_NAMES = ["subscriber_days_insert", "subscriber_days_confirmed", "subscriber_days_unsubscribed",
                "subscriber_days_delete", "inquiry_counts_insert", "inquiry_counts_update", "inquiry_counts_delete"]


def upgrade() -> None:
    op.create_table(
        "subscriber_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("confirmed", sa.Integer(), nullable=False),
        sa.Column("unsubscribed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriber_days")),
    )
    op.create_index("ix_subscriber_days_day", "subscriber_days", ["day"])
    op.create_table(
        "inquiry_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inquiry_counts")),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.create_index("ix_subscribers_email_domain", "subscribers", [sa.text("split_part(email_key, '@', 2)")])
        op.execute(PG_DAYS)
        op.execute(PG_INQUIRIES)
        for event, referencing in EVENTS:
            op.execute(f"CREATE TRIGGER subscriber_days_{event} AFTER {event.upper()} ON subscribers "
                       f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION subscriber_days_apply()")
            op.execute(f"CREATE TRIGGER inquiry_counts_{event} AFTER {event.upper()} ON inquiries "
                       f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION inquiry_counts_apply()")
        op.execute(_append_days(_days("subscribers", "1")))
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
        op.execute("INSERT INTO subscriber_days (day, confirmed, unsubscribed) SELECT day, sum(c), sum(u) FROM ("
                   "SELECT date(confirmed_at) AS day, 1 AS c, 0 AS u FROM subscribers WHERE confirmed_at IS NOT NULL "
                   "UNION ALL SELECT date(unsubscribed_at), 0, 1 FROM subscribers WHERE unsubscribed_at IS NOT NULL"
                   ") d GROUP BY day")
    op.execute("INSERT INTO inquiry_counts (status, n) SELECT status, count(*) FROM inquiries GROUP BY status")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for event, _referencing in EVENTS:
            op.execute(f"DROP TRIGGER subscriber_days_{event} ON subscribers")
            op.execute(f"DROP TRIGGER inquiry_counts_{event} ON inquiries")
        op.execute("DROP FUNCTION subscriber_days_apply()")
        op.execute("DROP FUNCTION inquiry_counts_apply()")
        op.drop_index("ix_subscribers_email_domain", table_name="subscribers")
    else:
        for name in SQLITE_NAMES:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("inquiry_counts")
    op.drop_index("ix_subscriber_days_day", table_name="subscriber_days")
    op.drop_table("subscriber_days")
