"""CSV import of subscribers, shared by `tidings subscribers import` and the admin's upload.

The file is streamed: each row is checked in Python, and valid rows go in batches into a
temporary staging table (COPY on PostgreSQL, executemany on SQLite), so memory stays flat in
the size of the file. Then a handful of set-based statements decide and apply everything:
duplicates within the file, addresses that must never be revived, new rows, updates, topics.
The file may be another tool's export (layouts.py: Mailchimp, listmonk, Ghost, Substack) or a
zip of them (archive.py); each row is turned into our columns first. It all runs in the caller's
one transaction: a fatal error (no email column, a field over the csv module's size limit, a zip
bomb, a database failure) raises and the caller rolls back, so a bad file leaves
nothing behind; a dry run is the same import rolled back, so its summary is exact.

Rules (docs/newsletter.md): erased addresses (suppression hash) are skipped; existing
unsubscribed, bounced or complained rows are never revived; status "confirmed" needs a consent
date (signup_at), otherwise the row is pending; an import never downgrades a confirmed row to
pending; unsubscribed/bounced/complained in the file are honoured (the safe direction).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import IO, Any

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from service.csvfile import unescape_cell
from service.db import UTCDateTime, bulk_insert, utcnow
from service.newsletter.archive import is_zip, zip_members
from service.newsletter.csvrows import (
    COLUMNS,
    DATE_COLUMNS,
    TEXT_LIMITS,
    ImportFileError,
    RowChecker,
    import_clean_email,
    open_csv,
    plain_columns,
)
from service.newsletter.importreport import MAX_LISTED, ImportReport, Part
from service.newsletter.importsql import apply_staged, queue_confirmations
from service.newsletter.layouts import (
    LAYOUTS,
    PLAIN,
    SOURCES,
    Context,
    Layout,
    detect,
    normalise_header,
    read_columns,
    unused_columns,
)
from service.newsletter.models import Suppression
from service.settings import Settings
from service.tokens import Tokens
from service.validation import FieldError

__all__ = ["COLUMNS", "SOURCES", "ImportFileError", "ImportReport", "import_clean_email", "import_subscribers"]

BATCH = 1000

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


Progress = Callable[[int], None]  # bytes of the file read so far


async def import_subscribers(
    session: AsyncSession, binary: IO[bytes], *, settings: Settings, tokens: Tokens, source: str = "import",
    send_confirmation: bool = False, dry_run: bool = False, progress: Progress | None = None,
    layout: str | None = None, consented: bool = False,
) -> ImportReport:
    """Import a CSV file, another tool's export or a zip of them, in the caller's transaction (the
    caller rolls back on ImportFileError, any other exception, or a dry run). `layout` forces one
    of SOURCES instead of recognising the header; `consented` is the operator's declaration that
    they hold the consent records of readers whose export carries none. Returns the summary."""
    if layout is not None and layout not in SOURCES:
        raise ImportFileError(f"unknown source {layout!r} (expected one of {', '.join(SOURCES)})")
    now = utcnow()
    checker = RowChecker(settings, source, now)
    job = _Job(session, tokens, ImportReport(dry_run=dry_run), checker,
               Context(source=source, consented=consented, topics=checker.topics), layout)
    await _create_staging(session)
    job.check_suppression = (await session.scalar(select(Suppression.email_hash).limit(1))) is not None

    def position() -> int:
        try:
            return binary.tell()
        except (OSError, ValueError):
            return 0

    if is_zip(binary):
        for name, member in zip_members(binary):
            await job.read(member, name=name, position=position, progress=progress)
        if not job.report.parts:
            raise ImportFileError("the zip holds no Mailchimp, listmonk, Ghost or Substack subscriber list "
                                  f"({', '.join(job.report.ignored_files)}); nothing was imported")
    else:
        await job.read(binary, name=None, position=position, progress=progress)
    report = job.report
    await apply_staged(session, report, now)
    if send_confirmation:
        report.confirmations_queued = await queue_confirmations(session, settings=settings, tokens=tokens, now=now,
                                                                 count_only=dry_run)
    await _drop_staging(session)
    return report


class _Job:
    """One import's reading state: rows go to the staging table in batches, file after file."""

    def __init__(self, session: AsyncSession, tokens: Tokens, report: ImportReport, checker: RowChecker,
                 ctx: Context, forced: str | None) -> None:
        self.session, self.tokens, self.report, self.checker, self.ctx = session, tokens, report, checker, ctx
        self.forced = forced
        self.check_suppression = False
        self.base = 0  # lines of the files before this one

    def _layout(self, header: list[str], name: str | None) -> tuple[Layout | None, bool]:
        """The layout (None: our own columns), and whether to read the file at all."""
        if self.forced == PLAIN:
            return None, True
        if self.forced:
            forced = LAYOUTS[self.forced]
            missing = sorted(forced.required - set(header))
            if missing and name is not None:
                return forced, False  # in a zip: another file (Substack's posts), listed as not imported
            if missing:
                raise ImportFileError(f"{name + ': ' if name else ''}not a {forced.label} export: the header lacks "
                                      f"{', '.join(missing)}; nothing was imported")
            return forced, True
        tool = detect(header)
        return tool, tool is not None or name is None  # in a zip, only the tools' lists are read

    async def read(self, binary: IO[bytes], *, name: str | None, position: Callable[[], int],
                   progress: Progress | None) -> None:
        reader, raw, _ = open_csv(binary)
        try:
            header = [normalise_header(h) for h in raw]
            tool, wanted = self._layout(header, name)
            if not wanted:
                self.report.ignored_files.append(name or "")
                return
            if tool is None:
                columns, unused = plain_columns(raw)
            else:
                columns, unused = header, unused_columns(tool, header, raw)
            self.report.add_unused(unused)
            self.report.parts.append(Part(self.base, name, tool.label if tool else "our own columns"))
            await self._rows(reader, columns, tool, position, progress)
        finally:
            reader.stream.detach()  # the caller owns (and closes) the binary file

    async def _rows(self, reader: Any, columns: list[str], tool: Layout | None, position: Callable[[], int],
                    progress: Progress | None) -> None:
        report, checker, base = self.report, self.checker, self.base
        batch: list[dict[str, Any]] = []
        topic_batch: list[tuple[int, str]] = []
        line_no = 1
        width = len(columns)
        # Only the cells the conversion reads become the row's dict: another tool's export is wide
        # (Mailchimp: 22 columns and more) and most of it is not ours.
        kept = list(range(width)) if tool is None else read_columns(tool, columns)
        names = [columns[i] for i in kept]
        pick = itemgetter(*kept) if len(kept) > 1 else (lambda r: (r[kept[0]],) if kept else ())
        padding = [""] * width
        for record in reader:
            start = base + line_no + 1  # the line this record starts on (the header is line 1)
            line_no = reader.line_num + 1
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            report.rows += 1
            if len(record) > width:
                report.error(start, f"{len(record)} fields, but the header has {width}")
                continue
            if len(record) < width:
                record = record + padding[len(record):]  # a short row: its missing cells are empty
            values = pick(record)
            joined = "\x00" + "\x00".join(values)
            if "\x00'" in joined:  # any cell starting with ' (one scan, not one per cell: wide exports)
                values = [unescape_cell(cell) for cell in values]  # our exports' formula guard
            cells = dict(zip(names, values, strict=True))
            try:
                if tool is not None:
                    cells, named = tool.convert(cells, self.ctx)
                    if named:
                        cells["topics"], unmatched = checker.split_topics(named)
                        report.unmatched(unmatched)
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
                await _flush(self.session, self.tokens, report, batch, topic_batch, self.check_suppression)
                batch, topic_batch = [], []
                if progress:
                    progress(position())
        if batch:
            await _flush(self.session, self.tokens, report, batch, topic_batch, self.check_suppression)
        if progress:
            progress(position())
        self.base = base + line_no


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
        gone = {by_hash[h]["line"]: by_hash[h]["status"] for h in erased}
        if gone:
            for line in sorted(gone):
                _skip(report, "erased", line)
                report.count(gone[line], "erased")
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
