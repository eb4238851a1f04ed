"""The set-based half of a subscriber import: once the rows are in the staging tables
(importer.py), a handful of statements classify each row (duplicate, not revived, unchanged, add,
update), count them per status, apply them, and queue confirmations. Kept apart from the reading
so each module stays readable; the rules are those of importer.py's docstring."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from service.db import UTCDateTime, analyze
from service.newsletter.flows import RESEND_INTERVAL, queue_confirmation
from service.newsletter.importreport import MAX_LISTED, ImportReport
from service.newsletter.models import Subscriber
from service.settings import Settings
from service.tokens import Tokens

_SUPPRESSED_SQL = "('unsubscribed', 'bounced', 'complained')"

# Applied in order; each statement is set-based over the staging table.
_CLASSIFY = [
    "CREATE INDEX ix_import_staging_email_key ON import_staging (email_key, line)",
    "CREATE INDEX ix_import_topics_line ON import_topics (line)",
    # Every line of an address after its first. Grouped once, not "an earlier line exists" per row,
    # which PostgreSQL runs as a nested loop over all copies: quadratic for a file holding one
    # address many times.
    """UPDATE import_staging SET action = 'duplicate'
       FROM (SELECT email_key, min(line) AS first FROM import_staging
             GROUP BY email_key HAVING count(*) > 1) AS repeated
       WHERE import_staging.email_key = repeated.email_key AND import_staging.line > repeated.first""",
    """UPDATE import_staging SET subscriber_id = s.id, old_status = s.status
       FROM subscribers AS s WHERE s.email_key = import_staging.email_key AND import_staging.action IS NULL""",
    f"""UPDATE import_staging SET action = 'not_revived'
        WHERE action IS NULL AND old_status IN {_SUPPRESSED_SQL}""",
]
# A row whose update would change nothing (a re-import) is 'unchanged': not rewritten, not counted
# as updated. Conservative: anything it cannot prove equal stays an update.
_FILLS = ("signup_at", "signup_ip", "signup_user_agent", "signup_source", "consent_text", "confirmed_at", "confirm_ip")
_OVERRIDES = ("unsubscribed_at", "bounced_at", "complained_at", "last_bounce")
_CLASSIFY.append(f"""UPDATE import_staging SET action = 'unchanged'
    WHERE action IS NULL AND EXISTS (SELECT 1 FROM subscribers AS s WHERE s.id = import_staging.subscriber_id
      AND (import_staging.name = '' OR import_staging.name = s.name)
      AND (import_staging.status = 'pending' OR import_staging.status = s.status)
      AND {" AND ".join(f"(import_staging.{c} IS NULL OR s.{c} IS NOT NULL)" for c in _FILLS)}
      AND {" AND ".join(f"(import_staging.{c} IS NULL OR import_staging.{c} = s.{c})" for c in _OVERRIDES)}
      AND (import_staging.has_topics = 0 OR (
        NOT EXISTS (SELECT 1 FROM import_topics AS t WHERE t.line = import_staging.line AND NOT EXISTS (
          SELECT 1 FROM subscriber_topics AS st WHERE st.subscriber_id = s.id AND st.topic = t.topic))
        AND NOT EXISTS (SELECT 1 FROM subscriber_topics AS st WHERE st.subscriber_id = s.id AND NOT EXISTS (
          SELECT 1 FROM import_topics AS t WHERE t.line = import_staging.line AND t.topic = st.topic)))))""")
# After _CLASSIFY, a row with no action is applied: an update when it names a subscriber, else an add
# (left implicit: marking 100,000 rows 'add' would rewrite every staging row once more).
_ADD = "action IS NULL AND subscriber_id IS NULL"
_UPDATE = "action IS NULL AND subscriber_id IS NOT NULL"

_APPLY = [
    """INSERT INTO subscribers (email, email_key, name, status, created_at, status_changed_at, signup_at, signup_ip,
         signup_user_agent, signup_source, consent_text, confirmed_at, confirm_ip, unsubscribed_at, bounced_at,
         complained_at, last_bounce)
       SELECT email, email_key, COALESCE(name, ''), status, COALESCE(created_at, :now),
         COALESCE(status_changed_at, :now), signup_at, signup_ip, signup_user_agent, signup_source, consent_text,
         confirmed_at, confirm_ip, unsubscribed_at, bounced_at, complained_at, last_bounce
       FROM import_staging WHERE {add} ORDER BY line""",
    f"""UPDATE subscribers SET
         name = CASE WHEN st.name <> '' THEN st.name ELSE subscribers.name END,
         status = CASE WHEN st.status IN {_SUPPRESSED_SQL} THEN st.status
                       WHEN st.status = 'confirmed' THEN 'confirmed' ELSE subscribers.status END,
         status_changed_at = CASE WHEN st.status IN {_SUPPRESSED_SQL}
                                    OR (st.status = 'confirmed' AND subscribers.status = 'pending')
                                  THEN :now ELSE subscribers.status_changed_at END,
         signup_at = COALESCE(subscribers.signup_at, st.signup_at),
         signup_ip = COALESCE(subscribers.signup_ip, st.signup_ip),
         signup_user_agent = COALESCE(subscribers.signup_user_agent, st.signup_user_agent),
         signup_source = CASE WHEN st.status = 'confirmed' AND subscribers.status = 'pending'
                              THEN COALESCE(st.signup_source, subscribers.signup_source)
                              ELSE COALESCE(subscribers.signup_source, st.signup_source) END,
         consent_text = COALESCE(subscribers.consent_text, st.consent_text),
         confirmed_at = COALESCE(subscribers.confirmed_at, st.confirmed_at),
         confirm_ip = COALESCE(subscribers.confirm_ip, st.confirm_ip),
         unsubscribed_at = COALESCE(st.unsubscribed_at, subscribers.unsubscribed_at),
         bounced_at = COALESCE(st.bounced_at, subscribers.bounced_at),
         complained_at = COALESCE(st.complained_at, subscribers.complained_at),
         last_bounce = COALESCE(st.last_bounce, subscribers.last_bounce)
       FROM import_staging AS st WHERE st.subscriber_id = subscribers.id AND st.action IS NULL""",
    """DELETE FROM subscriber_topics WHERE subscriber_id IN (
         SELECT subscriber_id FROM import_staging WHERE {update} AND has_topics = 1)""",
    """INSERT INTO subscriber_topics (subscriber_id, topic)
       SELECT s.id, t.topic FROM import_topics AS t
       JOIN import_staging AS st ON st.line = t.line
       JOIN subscribers AS s ON s.email_key = st.email_key
       WHERE st.action IS NULL""",
]


async def apply_staged(session: AsyncSession, report: ImportReport, now: dt.datetime) -> None:
    await analyze(session, "import_staging", "import_topics")
    for sql in _CLASSIFY:
        await session.execute(text(sql))
    counted = await session.execute(text(
        "SELECT status, COALESCE(action, CASE WHEN subscriber_id IS NULL THEN 'add' ELSE 'update' END) AS a, "
        "COUNT(*) FROM import_staging GROUP BY status, a"))
    for status, action, count in counted.all():
        report.count(status, action, int(count))
        if action == "add":
            report.added += int(count)
        elif action == "update":
            report.updated += int(count)
        elif action == "unchanged":
            report.unchanged += int(count)
        else:
            report.skipped[action] = report.skipped.get(action, 0) + int(count)
    for reason in ("duplicate", "not_revived"):
        lines = (await session.scalars(text(
            "SELECT line FROM import_staging WHERE action = :a ORDER BY line LIMIT :n"
        ).bindparams(a=reason, n=MAX_LISTED))).all()
        if lines:
            report.skipped_lines[reason] = list(lines)
    now_param = bindparam("now", now, type_=UTCDateTime())
    for sql in _APPLY:
        sql = sql.replace("{add}", _ADD).replace("{update}", _UPDATE)
        if sql.startswith("INSERT INTO subscriber_topics"):
            await analyze(session, "subscribers")  # its statistics predate the insert
        await session.execute(text(sql).bindparams(now_param) if ":now" in sql else text(sql))
    session.expire_all()


_TO_CONFIRM = """FROM subscribers AS s JOIN import_staging AS st ON st.email_key = s.email_key
    WHERE (st.action IS NULL OR st.action = 'unchanged') AND s.status = 'pending'
      AND (s.confirmation_sent_at IS NULL OR s.confirmation_sent_at < :cutoff)"""


async def queue_confirmations(session: AsyncSession, *, settings: Settings, tokens: Tokens,
                               now: dt.datetime, count_only: bool) -> int:
    """A confirmation email for every pending row this import added or updated (not one that
    got one within the resend interval); with `count_only`, how many that would be."""
    cutoff = bindparam("cutoff", now - RESEND_INTERVAL, type_=UTCDateTime())
    if count_only:
        return int(await session.scalar(text(f"SELECT COUNT(*) {_TO_CONFIRM}").bindparams(cutoff)) or 0)
    queued = 0
    last_id = 0
    while True:
        ids = (await session.scalars(text(
            f"SELECT s.id {_TO_CONFIRM} AND s.id > :last ORDER BY s.id LIMIT 500"
        ).bindparams(cutoff, bindparam("last", last_id)))).all()
        if not ids:
            return queued
        subs = (await session.scalars(select(Subscriber).where(Subscriber.id.in_(ids)))).all()
        for sub in subs:
            await queue_confirmation(session, settings=settings, tokens=tokens, subscriber=sub)
            queued += 1
        await session.flush()
        session.expunge_all()
        last_id = max(ids)
