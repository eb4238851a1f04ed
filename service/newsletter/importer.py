"""CSV import of subscribers, shared by `tidings subscribers import` and the admin's upload.

The file is streamed: each row is checked in Python, and valid rows go in batches into a
temporary staging table (COPY on PostgreSQL, executemany on SQLite), so memory stays flat in
the size of the file. Then a handful of set-based statements decide and apply everything:
duplicates within the file, addresses that must never be revived, new rows, updates, topics.
It all runs in the caller's one transaction: a fatal error (unknown columns, a field over the csv
module's size limit, a database failure) raises and the caller rolls back, so a bad file leaves
nothing behind; a dry run is the same import rolled back, so its summary is exact.

Rules (docs/newsletter.md): erased addresses (suppression hash) are skipped; existing
unsubscribed, bounced or complained rows are never revived; status "confirmed" needs a consent
date (signup_at), otherwise the row is pending; an import never downgrades a confirmed row to
pending; unsubscribed/bounced/complained in the file are honoured (the safe direction).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from service.csvfile import unescape_cell
from service.db import UTCDateTime, analyze, bulk_insert, utcnow
from service.newsletter.csvrows import (
    COLUMNS,
    DATE_COLUMNS,
    TEXT_LIMITS,
    ImportFileError,
    RowChecker,
    import_clean_email,
    open_csv,
)
from service.newsletter.flows import RESEND_INTERVAL, queue_confirmation
from service.newsletter.models import Subscriber, Suppression
from service.settings import Settings
from service.tokens import Tokens
from service.validation import FieldError

if TYPE_CHECKING:
    pass

__all__ = ["COLUMNS", "ImportFileError", "ImportReport", "import_clean_email", "import_subscribers"]

BATCH = 1000
MAX_LISTED = 20  # line numbers listed per skip reason; the count is always complete
MAX_ERRORS = 100

SKIP_REASONS = {
    "duplicate": "duplicate of an earlier line in the file",
    "erased": "suppressed: the address was erased (right to be forgotten)",
    "not_revived": "already unsubscribed, bounced or complained: an import never revives it",
}

_staging_meta = MetaData()
STAGING = Table(
    "import_staging", _staging_meta,
    Column("line", Integer, primary_key=True),
    Column("email", String(320)), Column("email_key", String(320)), Column("name", String(200)),
    Column("has_topics", Integer), Column("status", String(16)),
    *(Column(c, UTCDateTime) for c in DATE_COLUMNS),
    *(Column(c, Text) for c in TEXT_LIMITS),
    Column("action", String(16)), Column("subscriber_id", Integer), Column("old_status", String(16)),
    prefixes=["TEMPORARY"],
)
STAGING_TOPICS = Table("import_topics", _staging_meta, Column("line", Integer), Column("topic", String(40)),
                       prefixes=["TEMPORARY"])
_STAGING_COLS = [c.name for c in STAGING.columns if c.name not in ("action", "subscriber_id", "old_status")]


@dataclass
class ImportReport:
    rows: int = 0
    added: int = 0
    updated: int = 0
    confirmations_queued: int = 0
    pending_without_consent_date: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_lines: dict[str, list[int]] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)
    error_count: int = 0
    dry_run: bool = False

    def error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append((line, message))

    def summary_lines(self) -> list[str]:
        """A human summary (the CLI prints it; the admin shows it)."""
        verb = "would be" if self.dry_run else "were"
        out = [f"{self.rows} rows read: {self.added} {verb} added, {self.updated} {verb} updated, "
               f"{sum(self.skipped.values())} skipped, {self.error_count} with errors"]
        if self.pending_without_consent_date:
            out.append(f"{self.pending_without_consent_date} rows marked confirmed had no consent date "
                       "and were imported as pending")
        if self.confirmations_queued:
            out.append(f"{self.confirmations_queued} confirmation emails {verb} queued")
        for reason, count in self.skipped.items():
            lines = ", ".join(map(str, self.skipped_lines.get(reason, [])))
            more = " …" if count > len(self.skipped_lines.get(reason, [])) else ""
            out.append(f"skipped {count}: {SKIP_REASONS[reason]} (lines {lines}{more})")
        for line, message in self.errors:
            out.append(f"line {line}: {message}")
        if self.error_count > len(self.errors):
            out.append(f"… and {self.error_count - len(self.errors)} more errors")
        return out


Progress = Callable[[int], None]  # bytes of the file read so far


async def import_subscribers(
    session: AsyncSession, binary: IO[bytes], *, settings: Settings, tokens: Tokens, source: str = "import",
    send_confirmation: bool = False, dry_run: bool = False, progress: Progress | None = None,
) -> ImportReport:
    """Import a CSV file in the caller's transaction (the caller rolls back on ImportFileError,
    any other exception, or a dry run). Returns the summary."""
    reader, columns, position = open_csv(binary)
    try:
        return await _import(session, reader, columns, position, settings=settings, tokens=tokens, source=source,
                             send_confirmation=send_confirmation, dry_run=dry_run, progress=progress)
    finally:
        reader.stream.detach()  # the caller owns (and closes) the binary file


async def _import(
    session: AsyncSession, reader: Any, columns: list[str], position: Callable[[], int], *, settings: Settings,
    tokens: Tokens, source: str, send_confirmation: bool, dry_run: bool, progress: Progress | None,
) -> ImportReport:
    report = ImportReport(dry_run=dry_run)
    now = utcnow()
    checker = RowChecker(settings, source, now)
    await _create_staging(session)
    check_suppression = (await session.scalar(select(Suppression.email_hash).limit(1))) is not None
    batch: list[dict[str, Any]] = []
    topic_batch: list[tuple[int, str]] = []
    line_no = 1
    width = len(columns)
    for record in reader:
        start = line_no + 1  # the line this record starts on (the header is line 1)
        line_no = reader.line_num + 1
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        report.rows += 1
        if len(record) > width:
            report.error(start, f"{len(record)} fields, but the header has {width}")
            continue
        if any(cell.startswith("'") for cell in record):
            record = [unescape_cell(cell) for cell in record]  # our exports' formula guard
        cells = dict(zip(columns, record, strict=False))
        try:
            row, topics, downgraded = checker.check(cells)
        except FieldError as exc:
            report.error(start, exc.message)
            continue
        row["line"] = start
        report.pending_without_consent_date += downgraded
        batch.append(row)
        if topics:
            topic_batch.extend((start, t) for t in topics)
        if len(batch) >= BATCH:
            await _flush(session, tokens, report, batch, topic_batch, check_suppression)
            batch, topic_batch = [], []
            if progress:
                progress(position())
    if batch:
        await _flush(session, tokens, report, batch, topic_batch, check_suppression)
    if progress:
        progress(position())
    await _apply(session, report, now)
    if send_confirmation:
        report.confirmations_queued = await _queue_confirmations(session, settings=settings, tokens=tokens, now=now,
                                                                 count_only=dry_run)
    await _drop_staging(session)
    return report


async def _create_staging(session: AsyncSession) -> None:
    await _drop_staging(session)
    conn = await session.connection()
    await conn.run_sync(lambda sync: _staging_meta.create_all(sync))


async def _drop_staging(session: AsyncSession) -> None:
    await session.execute(text("DROP TABLE IF EXISTS import_topics"))
    await session.execute(text("DROP TABLE IF EXISTS import_staging"))


async def _flush(session: AsyncSession, tokens: Tokens, report: ImportReport,
                 batch: list[dict[str, Any]], topic_batch: list[tuple[int, str]], check_suppression: bool) -> None:
    if check_suppression:
        by_hash: dict[str, dict[str, Any]] = {}
        for row in batch:
            for h in tokens.keyed_hashes("suppression", row["email_key"]):
                by_hash[h] = row
        erased = (await session.scalars(select(Suppression.email_hash).where(
            Suppression.email_hash.in_(list(by_hash))))).all()
        gone = {by_hash[h]["line"] for h in erased}
        if gone:
            for line in sorted(gone):
                _skip(report, "erased", line)
            batch = [r for r in batch if r["line"] not in gone]
            topic_batch = [t for t in topic_batch if t[0] not in gone]
    if not batch:
        return
    await bulk_insert(session, STAGING, _STAGING_COLS, [tuple(r[c] for c in _STAGING_COLS) for r in batch])
    await bulk_insert(session, STAGING_TOPICS, ("line", "topic"), topic_batch)


def _skip(report: ImportReport, reason: str, line: int) -> None:
    report.skipped[reason] = report.skipped.get(reason, 0) + 1
    listed = report.skipped_lines.setdefault(reason, [])
    if len(listed) < MAX_LISTED:
        listed.append(line)


_SUPPRESSED_SQL = "('unsubscribed', 'bounced', 'complained')"

# Applied in order; each statement is set-based over the staging table.
_CLASSIFY = [
    "CREATE INDEX ix_import_staging_email_key ON import_staging (email_key, line)",
    "CREATE INDEX ix_import_topics_line ON import_topics (line)",
    """UPDATE import_staging SET action = 'duplicate' WHERE EXISTS (
         SELECT 1 FROM import_staging AS earlier
         WHERE earlier.email_key = import_staging.email_key AND earlier.line < import_staging.line)""",
    """UPDATE import_staging SET subscriber_id = s.id, old_status = s.status
       FROM subscribers AS s WHERE s.email_key = import_staging.email_key AND import_staging.action IS NULL""",
    f"""UPDATE import_staging SET action = 'not_revived'
        WHERE action IS NULL AND old_status IN {_SUPPRESSED_SQL}""",
]
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
         signup_source = COALESCE(subscribers.signup_source, st.signup_source),
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


async def _apply(session: AsyncSession, report: ImportReport, now: dt.datetime) -> None:
    await analyze(session, "import_staging", "import_topics")
    for sql in _CLASSIFY:
        await session.execute(text(sql))
    counted = await session.execute(text(
        "SELECT COALESCE(action, CASE WHEN subscriber_id IS NULL THEN 'add' ELSE 'update' END) AS a, COUNT(*) "
        "FROM import_staging GROUP BY a"))
    for action, count in counted.all():
        if action == "add":
            report.added = int(count)
        elif action == "update":
            report.updated = int(count)
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
    WHERE st.action IS NULL AND s.status = 'pending'
      AND (s.confirmation_sent_at IS NULL OR s.confirmation_sent_at < :cutoff)"""


async def _queue_confirmations(session: AsyncSession, *, settings: Settings, tokens: Tokens,
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

