"""What staff do to an inquiry, as action functions shared by the admin pages and the admin API
(/api/v1): each does the change (or the read of health data) in the caller's transaction and
writes its audit row for whoever acted (an `Actor`), so the trail is the same whichever way it
was done. A refused action raises (InquiryNotFoundError, HeldInquiryError, NoteError,
UnknownStatusError), changes nothing and records nothing. An event another system should hear
of (an outbound webhook's `inquiry.status_changed`) belongs in these functions too, queued in the
same transaction, so that every entry point emits it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from service.admin.audit import Actor, filter_detail, record_audit
from service.inquiries.models import Inquiry, InquiryEvent
from service.inquiries.queries import (
    InquiryFilter,
    InquiryNotFoundError,
    add_inquiry_note,
    change_inquiry_status,
)


async def view_inquiry(session: AsyncSession, *, inquiry_id: int, actor: Actor) -> Inquiry:
    """The inquiry, its reading audited (`inquiry_view`: it holds health data)."""
    inquiry = await session.get(Inquiry, inquiry_id)
    if inquiry is None:
        raise InquiryNotFoundError(f"no inquiry {inquiry_id}")
    await record_audit(session, by=actor, action="inquiry_view", target_type="inquiry", target_id=inquiry.id)
    return inquiry


async def record_inquiry_search(session: AsyncSession, *, actor: Actor, flt: InquiryFilter, first_page: bool,
                                matched: tuple[int, bool]) -> None:
    """A search shows inquiry data outside the detail page: record that one ran and how many
    inquiries matched (`matched`: a count and whether more than that did, as `count_inquiries`
    gives it), never the words (they may be a client's name)."""
    count, more = matched
    await record_audit(session, by=actor, action="inquiry_search", target_type="inquiry",
                       detail={"matched": count, **({"more": True} if more else {}), "first_page": first_page,
                               **filter_detail(flt.query_args())})


async def set_inquiry_status(session: AsyncSession, *, inquiry_id: int, status: str, actor: Actor,
                             bulk: bool = False) -> InquiryEvent | None:
    """Move the inquiry to `status` (`inquiry_status` audited, marked `bulk` when one of a
    selection); None when it already had it."""
    event = await change_inquiry_status(session, inquiry_id=inquiry_id, to_status=status, staff_id=actor.staff_id)
    if event is not None:
        await record_audit(session, by=actor, action="inquiry_status", target_type="inquiry", target_id=inquiry_id,
                           detail={"from": event.from_status, "to": status, **({"bulk": True} if bulk else {})})
    return event


async def note_inquiry(session: AsyncSession, *, inquiry_id: int, note: str, actor: Actor) -> InquiryEvent:
    """Add an internal note (`inquiry_note` audited with the event's id, never the text)."""
    event = await add_inquiry_note(session, inquiry_id=inquiry_id, note=note, staff_id=actor.staff_id)
    await record_audit(session, by=actor, action="inquiry_note", target_type="inquiry", target_id=inquiry_id,
                       detail={"event_id": event.id})
    return event
