"""The audit log: who did what, when, from where. Every domain records through `record_audit`.

Actions in use: sign_in, sign_in_failed, sign_out, password_change, password_set, password_reset_request,
password_reset, user_unlock, two_factor_enable, two_factor_disable, two_factor_reset (an admin or the CLI),
two_factor_recovery_used, two_factor_recovery_regenerate, two_factor_require,
inquiry_view, inquiry_search, inquiry_export, inquiry_status, inquiry_note, inquiry_release,
inquiry_delete_held, inquiry_erase (the id only), inquiry_retention (by the worker: how many went,
never who), outbox_view, outbox_list,
outbox_retry, user_invite,
user_role, user_deactivate, user_reactivate, user_password_link, campaign_test_send, campaign_send,
campaign_schedule, campaign_approve, campaign_pause, campaign_resume, campaign_cancel, campaign_create,
campaign_edit, campaign_delete, campaign_duplicate,
digest_rule_save, digest_rule_activate, digest_rule_deactivate, articles_import,
subscriber_unsubscribe, subscriber_suppress, subscriber_erase (never the address),
subscriber_create (a signup made through the API), subscriber_import, subscriber_export,
api_token_create, api_token_revoke (name, prefix, scopes; never the token),
brand_change (the fields changed), brand_reset;
by `bounce:<source>` (service.bounces.policy):
subscriber_bounced, subscriber_complained, inquiry_bounced; bounce_retention (by the worker: how many reports
about no subscriber or inquiry went, never whose). Details never hold a password or message text, nor the
words of a search (they may be a client's name or address: `filter_detail` keeps only that
there was one).

Who acted is an `Actor`: a signed-in staff user with the client's IP (`Actor.of(request)`), or
the person at the command line (`Actor.cli()`, recorded as `cli:<OS user name>`). The domains'
action functions (e.g. `service.campaigns.actions`) take one and write the row themselves, so
the admin and the CLI audit the same things the same way.
"""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from service.admin.models import AuditEvent, StaffUser
from service.db import utcnow
from service.web import client_ip


@dataclass(frozen=True)
class Actor:
    """Who did something, as plain values taken when the action starts (an import expires the
    session's objects, so no ORM object is kept): a staff user's id and address, or a non-staff
    name such as `cli:alice`; and where from (`ip`: the client's address, or "cli")."""

    staff_id: int | None = None
    name: str = ""
    ip: str = ""

    @classmethod
    def staff(cls, user: StaffUser | None, ip: str = "") -> Actor:
        return cls(staff_id=user.id, name=user.email, ip=ip) if user is not None else cls(ip=ip)

    @classmethod
    def of(cls, request: HTTPConnection) -> Actor:
        """The signed-in staff user of an admin request and the client's IP."""
        return cls.staff(getattr(request.state, "staff", None), client_ip(request))

    @classmethod
    def cli(cls) -> Actor:
        """The person running a `tidings` command: `cli:<OS user name>`."""
        return cls(name=f"cli:{_os_user()}", ip="cli")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. a bare container user)
        return "unknown"


async def record_audit(
    session: AsyncSession,
    *,
    action: str,
    request: HTTPConnection | None = None,
    actor: StaffUser | None = None,
    by: Actor | None = None,
    target_type: str = "",
    target_id: str | int = "",
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Add one audit event in the caller's transaction. Who acted is `by`, or else taken from
    `request` (the signed-in staff user, request.state.staff, and the client IP); `actor`/`ip`
    override either."""
    who = by or (Actor.of(request) if request is not None and actor is None else Actor())
    if actor is not None:
        who = Actor.staff(actor, client_ip(request) if request is not None else who.ip)
    event = AuditEvent(
        created_at=utcnow(),
        actor_id=who.staff_id,
        actor_email=who.name,
        action=action[:64],
        target_type=target_type[:32],
        target_id=str(target_id)[:64],
        ip=(ip if ip is not None else who.ip)[:64],
        detail=detail or {},
    )
    session.add(event)
    await session.flush()
    return event


def filter_detail(args: Mapping[str, str]) -> dict[str, Any]:
    """A list filter as an audit detail: the search words left out, only that there were some."""
    kept: dict[str, Any] = {k: v for k, v in args.items() if k not in ("q", "after", "before")}
    if args.get("q"):
        kept["search"] = True
    return {"filter": kept}


def _audit_where(*, action: str | None, actor: str | None, since: dt.datetime | None,
                 until: dt.datetime | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if action:
        where.append(AuditEvent.action == action)
    if actor:
        where.append(AuditEvent.actor_email == actor.strip().lower())
    if since:
        where.append(AuditEvent.created_at >= since)
    if until:
        where.append(AuditEvent.created_at < until)
    return where


async def list_audit_events(
    session: AsyncSession,
    *,
    action: str | None = None,
    actor: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    before: tuple[dt.datetime, int] | None = None,
    limit: int = 50,
) -> list[AuditEvent]:
    """Newest first; `before` is the (created_at, id) keyset cursor of the last row shown."""
    stmt = select(AuditEvent).where(*_audit_where(action=action, actor=actor, since=since, until=until))
    if before:
        stmt = stmt.where(tuple_(AuditEvent.created_at, AuditEvent.id) < tuple_(*before))
    stmt = stmt.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


async def count_audit_events(session: AsyncSession, *, action: str | None = None, actor: str | None = None,
                             since: dt.datetime | None = None, until: dt.datetime | None = None) -> int:
    """How many events the same filter matches (all pages)."""
    where = _audit_where(action=action, actor=actor, since=since, until=until)
    return int(await session.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0)


async def audit_actions(session: AsyncSession) -> Sequence[str]:
    """The actions present in the log, for the filter menu."""
    return (await session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))).all()


_INSERT_AUDIT = insert(AuditEvent.__table__)  # built once: Core executemany, no ORM bulk path


async def insert_audits(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Add many audit events at once (the columns of `AuditEvent` as dicts), in the caller's
    transaction: a batch that changed many rows writes its trail in one statement."""
    if rows:  # Core (executemany): the ORM's bulk path costs more than the INSERT
        await (await session.connection()).execute(_INSERT_AUDIT, rows)
