"""Held inquiries: submissions that looked automated (too fast, honeypot filled, token missing,
tampered or replayed; see service.forms). They are stored and mail nothing until staff release
them (they become new inquiries and their emails go out then) or delete them; the worker purges
those still held after HELD_RETENTION_DAYS. Release and delete are staff actions: each checks
that the inquiry is still held and writes its audit row."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from service.admin.audit import record_audit
from service.admin.models import StaffUser
from service.db import utcnow
from service.inquiries.flows import after_inquiry_stored, queue_inquiry_emails
from service.inquiries.models import HELD, Inquiry, InquiryEvent
from service.inquiries.queries import InquiryNotFoundError, count_held_inquiries, purge_held_inquiries
from service.settings import Settings

__all__ = ["NotHeldError", "count_held_inquiries", "delete_held_inquiry", "purge_held", "release_held_inquiry"]


class NotHeldError(ValueError):
    """Only a held inquiry can be released or deleted that way."""


async def _held(session: AsyncSession, inquiry_id: int) -> Inquiry:
    inquiry = await session.get(Inquiry, inquiry_id, with_for_update=True)
    if inquiry is None:
        raise InquiryNotFoundError(f"no inquiry {inquiry_id}")
    if inquiry.status != HELD:
        raise NotHeldError(f"inquiry {inquiry_id} is not held (it is {inquiry.status})")
    return inquiry


async def release_held_inquiry(session: AsyncSession, *, settings: Settings, inquiry_id: int,
                               actor: StaffUser, request: HTTPConnection | None = None) -> Inquiry:
    """Staff judged a held inquiry genuine: it becomes a new inquiry and its emails go out now
    (the staff notification, the auto-reply, and the newsletter opt-in if its box was ticked)."""
    inquiry = await _held(session, inquiry_id)
    now = utcnow()
    session.add(InquiryEvent(inquiry_id=inquiry.id, created_at=now, kind="status", from_status=HELD,
                             to_status="new", staff_id=actor.id))
    inquiry.status = "new"
    inquiry.status_changed_at = now
    await session.flush()
    await queue_inquiry_emails(session, settings=settings, inquiry=inquiry)
    await after_inquiry_stored(session, settings=settings, inquiry=inquiry)
    await record_audit(session, request=request, actor=actor, action="inquiry_release", target_type="inquiry",
                       target_id=inquiry.id, detail={"held_reason": inquiry.held_reason or ""})
    return inquiry


async def delete_held_inquiry(session: AsyncSession, *, inquiry_id: int, actor: StaffUser,
                              request: HTTPConnection | None = None) -> None:
    """Staff judged a held inquiry automated: it is deleted, and nothing was ever mailed."""
    inquiry = await _held(session, inquiry_id)
    reason = inquiry.held_reason or ""
    await session.delete(inquiry)
    await session.flush()
    await record_audit(session, request=request, actor=actor, action="inquiry_delete_held", target_type="inquiry",
                       target_id=inquiry_id, detail={"held_reason": reason})


async def purge_held(session: AsyncSession, *, settings: Settings, now: dt.datetime) -> int:
    """Delete held inquiries older than HELD_RETENTION_DAYS (run by the worker)."""
    return await purge_held_inquiries(session, before=now - dt.timedelta(days=settings.held_retention_days))
