"""Subscriber import and export as action functions shared by the admin pages and `tidings
subscribers import|export`: each writes its audit row for whoever acted (an `Actor`: a staff
user, or `cli:<user>`), so the list's consent evidence leaves and arrives on the record however
it was done."""

from __future__ import annotations

import hashlib
from typing import IO, Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.audit import Actor, record_audit
from service.newsletter.importer import ImportReport, Progress, import_subscribers
from service.settings import Settings
from service.tokens import Tokens


def file_sha256(binary: IO[bytes]) -> str:
    """The SHA-256 of a seekable file, read in chunks and rewound (the audit names the file by it)."""
    h = hashlib.sha256()
    for chunk in iter(lambda: binary.read(1 << 16), b""):
        h.update(chunk)
    binary.seek(0)
    return h.hexdigest()


async def import_subscribers_as(
    session: AsyncSession, binary: IO[bytes], *, actor: Actor, filename: str, sha256: str, settings: Settings,
    tokens: Tokens, source: str, send_confirmation: bool = False, dry_run: bool = False,
    progress: Progress | None = None, layout: str | None = None, consented: bool = False,
) -> ImportReport:
    """Import the CSV in the caller's transaction (see `import_subscribers`: the caller rolls back
    on an error or a dry run) and, unless it is a dry run, audit it as `subscriber_import`."""
    report = await import_subscribers(session, binary, settings=settings, tokens=tokens, source=source,
                                      send_confirmation=send_confirmation, dry_run=dry_run, progress=progress,
                                      layout=layout, consented=consented)
    if not dry_run:
        await record_audit(session, by=actor, action="subscriber_import", target_type="subscriber", detail={
            "file": filename, "sha256": sha256, "rows": report.rows, "added": report.added,
            "updated": report.updated, "skipped": sum(report.skipped.values()), "errors": report.error_count,
            "confirmations": report.confirmations_queued, "layouts": sorted({p.layout for p in report.parts}),
            "consented": consented})
    return report


async def record_subscriber_export(session: AsyncSession, *, actor: Actor, detail: dict[str, Any]) -> None:
    """Audit an export (`subscriber_export`) before the rows are written: what was asked for
    (the filter, never search words), not the addresses."""
    await record_audit(session, by=actor, action="subscriber_export", target_type="subscriber", detail=detail)
