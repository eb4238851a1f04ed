"""What staff do to subscribers, as action functions shared by the admin pages, the admin API
(/api/v1) and `tidings subscribers import|export`: unsubscribe, suppress, erase, a signup on
someone's behalf, import and export. Each writes its audit row for whoever acted (an `Actor`: a
staff user, or `cli:<user>`), so the trail is the same however it was done, and the list's
consent evidence leaves and arrives on the record."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import IO, Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.audit import Actor, record_audit
from service.newsletter.flows import consent_text, mark_complained, request_subscription, unsubscribe_subscriber
from service.newsletter.importer import ImportReport, Progress, import_subscribers
from service.newsletter.models import Subscriber
from service.newsletter.queries import get_subscriber_by_email
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


# -- what staff do to one subscriber ----------------------------------------------------------

SUPPRESS_PREFIX = "suppressed by staff: "


class SubscriberStateError(ValueError):
    """The subscriber's state does not allow this (already unsubscribed, already suppressed)."""


async def unsubscribe_as(session: AsyncSession, *, subscriber: Subscriber, actor: Actor, bulk: bool = False
                         ) -> None:
    """Unsubscribe a pending or confirmed subscriber (`subscriber_unsubscribe` audited, marked
    `bulk` when one of a selection)."""
    if subscriber.status not in ("pending", "confirmed"):
        raise SubscriberStateError(f"This subscriber is already {subscriber.status}: they get no campaigns.")
    before = subscriber.status
    await unsubscribe_subscriber(session, subscriber_id=subscriber.id, source="admin")
    await record_audit(session, by=actor, action="subscriber_unsubscribe", target_type="subscriber",
                       target_id=subscriber.id, detail={"from": before, **({"bulk": True} if bulk else {})})


async def suppress_as(session: AsyncSession, *, subscriber: Subscriber, reason: str, actor: Actor,
                      bulk: bool = False) -> None:
    """Stop mailing without it being their own unsubscribe: the complaint status (the strongest
    do-not-mail state), the staff's reason kept as the last note (`subscriber_suppress` audited)."""
    if subscriber.status == "complained":
        raise SubscriberStateError("This subscriber is already suppressed (complained).")
    before = subscriber.status
    await mark_complained(session, subscriber_id=subscriber.id, reason=SUPPRESS_PREFIX + reason)
    await record_audit(session, by=actor, action="subscriber_suppress", target_type="subscriber",
                       target_id=subscriber.id,
                       detail={"from": before, "reason": reason, **({"bulk": True} if bulk else {})})


async def erase_as(session: AsyncSession, *, tokens: Tokens, subscriber_id: int, status: str, actor: Actor) -> None:
    """Erase on the person's request (service.privacy.erase); the audit row (`subscriber_erase`)
    keeps the status it had and never the address: the point of erasing is that it is gone."""
    from service.privacy.erase import erase_subscriber

    await erase_subscriber(session, tokens=tokens, subscriber_id=subscriber_id)
    await record_audit(session, by=actor, action="subscriber_erase", target_type="subscriber",
                       target_id=subscriber_id, detail={"status": status})


async def subscribe_as(session: AsyncSession, *, settings: Settings, tokens: Tokens, actor: Actor, email: str,
                       name: str, topics: Sequence[str], user_agent: str) -> Subscriber:
    """A signup made by staff on someone's behalf through the API: the same double opt-in as the
    public form (pending, a confirmation email; a confirmed or suppressed address is left as it
    is), its consent evidence naming the API and the staff member (`subscriber_create` audited)."""
    await request_subscription(session, settings=settings, tokens=tokens, email=email, name=name, topics=topics,
                               ip=actor.ip, user_agent=user_agent, source=f"api: {actor.name}"[:200],
                               consent_text=consent_text(settings.org_name))
    sub = await get_subscriber_by_email(session, email=email)
    assert sub is not None
    await record_audit(session, by=actor, action="subscriber_create", target_type="subscriber", target_id=sub.id,
                       detail={"status": sub.status})
    return sub
