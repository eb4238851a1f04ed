"""`tidings subscribers import|export`: the newsletter's import and export actions (audited as
`cli:<user>`), with a progress bar on a terminal."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import IO, Any

from service.admin.audit import Actor
from service.command import CommandError, load_settings, run, with_database
from service.db import transaction
from service.newsletter.actions import file_sha256, import_subscribers_as, record_subscriber_export
from service.newsletter.exporter import export_subscribers
from service.newsletter.importer import SOURCES, ImportFileError, ImportReport
from service.newsletter.models import SUBSCRIBER_STATUSES
from service.settings import Settings
from service.tokens import Tokens


async def _import_subscribers(settings: Settings, args: argparse.Namespace) -> list[str]:
    path = args.file
    try:
        handle = open(path, "rb")  # noqa: ASYNC230, SIM115 - streamed in small reads by the csv reader
    except OSError as exc:
        raise CommandError(f"cannot open {path}: {exc.strerror}") from exc
    with handle:
        sha256 = file_sha256(handle) if handle.seekable() else ""
        report = await _import_file(settings, args, handle, sha256)
    lines = report.summary_lines()
    if args.dry_run:
        lines.insert(0, "dry run: nothing was changed")
    return lines


async def _import_file(settings: Settings, args: argparse.Namespace, handle: IO[bytes], sha256: str) -> ImportReport:
    """One transaction: rolled back for a dry run or a bad file, committed (with the audit row) otherwise."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), transient=True,
                  disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("importing", total=os.fstat(handle.fileno()).st_size)
        async with with_database(settings) as db, db.sessions() as session:
            await session.begin()
            try:
                report = await import_subscribers_as(
                    session, handle, actor=Actor.cli(), filename=Path(args.file).name[:200], sha256=sha256,
                    settings=settings, tokens=Tokens(settings), source=args.source,
                    send_confirmation=args.send_confirmation, dry_run=args.dry_run, layout=args.layout,
                    consented=args.consented,
                    progress=lambda done: bar.update(task, completed=done),
                )
            except ImportFileError as exc:
                await session.rollback()
                raise CommandError(f"{args.file}: {exc}") from exc
            except BaseException:
                await session.rollback()
                raise
            if args.dry_run:
                await session.rollback()
            else:
                await session.commit()
    return report


def cmd_subscribers_import(args: argparse.Namespace) -> None:
    settings = load_settings()
    for line in run(_import_subscribers(settings, args)):
        print(line)


async def _export_subscribers(settings: Settings, args: argparse.Namespace) -> int:
    """Audit the export (`cli:<user>`), then write the CSV to standard output or a new file."""
    to_stdout = args.output in (None, "-")
    try:
        out = contextlib.nullcontext(sys.stdout) if to_stdout else open(  # noqa: ASYNC230, SIM115
            args.output, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise CommandError(f"cannot write {args.output}: {exc.strerror}") from exc
    async with with_database(settings) as db:
        with out as stream:
            async with transaction(db.sessions) as session:
                await record_subscriber_export(session, actor=Actor.cli(), detail={
                    "filter": {"status": args.status} if args.status else {},
                    "to": "stdout" if to_stdout else "file"})
            async with db.sessions() as session:
                return await export_subscribers(session, stream, status=args.status)


def cmd_subscribers_export(args: argparse.Namespace) -> None:
    settings = load_settings()
    count = run(_export_subscribers(settings, args))
    if args.output not in (None, "-"):
        print(f"{count} subscribers written to {args.output}", file=sys.stderr)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """`tidings subscribers import|export`."""
    subs = sub.add_parser("subscribers", help="import or export newsletter subscribers (CSV)")
    subs_sub = subs.add_subparsers(dest="subcommand", metavar="ACTION", required=True)
    p = subs_sub.add_parser("import", help="import subscribers from a CSV file (columns by header name), or a "
                            "Mailchimp, listmonk, Ghost or Substack export (CSV or zip) as it is")
    p.add_argument("file", metavar="FILE", help="CSV with an 'email' column (comma or semicolon separated), another "
                   "tool's export, or its zip")
    p.add_argument("--from", dest="layout", choices=SOURCES,
                   help="read the file as this tool's export (default: recognised by its header)")
    p.add_argument("--consented", action="store_true",
                   help="declare you hold the consent records of readers whose export carries none (listmonk, "
                   "Ghost, Substack): they import as confirmed, and this is recorded as the evidence's source")
    p.add_argument("--dry-run", action="store_true", help="check the file and print the summary; change nothing")
    p.add_argument("--send-confirmation", action="store_true",
                   help="queue a double opt-in email to every imported address that is pending")
    p.add_argument("--source", default="import", help="recorded as the signup source of rows without one")
    p.set_defaults(handler=cmd_subscribers_import)
    p = subs_sub.add_parser("export", help="write subscribers with consent evidence as CSV")
    p.add_argument("--status", choices=SUBSCRIBER_STATUSES, help="only subscribers with this status")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(handler=cmd_subscribers_export)
