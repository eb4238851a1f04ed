"""/api/v1/inquiries: the admin's list (same filters and search, the search audited), one
inquiry with its history (reading it audited: health data), a status change and a note, each
through the same action as the admin page (service.inquiries.actions). The list carries no
message: the text of an inquiry leaves only through the audited read of that one inquiry."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.admin.filters import FilterError, format_cursor, parse_cursor
from service.admin.pages_inquiries import inquiry_filter
from service.api.core import (
    ApiError,
    actor_of,
    bad_cursor,
    cursor_param,
    invalid,
    iso,
    json_body,
    needs,
    page_limit,
    page_of,
    path_id,
    text_field,
)
from service.db import get_session
from service.inquiries import actions
from service.inquiries.models import INQUIRY_STATUSES, Inquiry, InquiryEvent
from service.inquiries.queries import (
    HeldInquiryError,
    InquiryNotFoundError,
    NoteError,
    count_inquiries,
    inquiry_history,
    list_inquiries,
)

_NO_SUCH = "There is no such inquiry."


def summary_json(i: Inquiry) -> dict[str, Any]:
    return {"id": i.id, "created_at": iso(i.created_at), "status": i.status, "status_changed_at":
            iso(i.status_changed_at), "name": i.name, "email": i.email, "topic": i.topic,
            "contact_method": i.contact_method}


def event_json(e: InquiryEvent, by: str | None) -> dict[str, Any]:
    return {"id": e.id, "created_at": iso(e.created_at), "kind": e.kind, "from_status": e.from_status,
            "to_status": e.to_status, "note": e.note, "by": by}


@needs("inquiries", "read")
async def list_(request: Request) -> Response:
    try:
        flt = inquiry_filter(request.query_params)
        after = parse_cursor(cursor_param(request))
    except FilterError as exc:
        if exc.field == "cursor":
            raise bad_cursor() from None
        raise invalid(exc.field or "", str(exc)) from None
    limit = page_limit(request)
    session = get_session(request)
    rows = await list_inquiries(session, flt=flt, after=after, limit=limit + 1)
    if flt.q:
        await actions.record_inquiry_search(session, actor=actor_of(request), flt=flt, first_page=after is None,
                                            matched=await count_inquiries(session, flt=flt))
    return page_of(rows, limit, item=summary_json, cursor=lambda i: format_cursor(i.created_at, i.id))


@needs("inquiries", "read")
async def read(request: Request) -> Response:
    session = get_session(request)
    try:
        inquiry = await actions.view_inquiry(session, inquiry_id=path_id(request, "inquiry_id"),
                                             actor=actor_of(request))
    except InquiryNotFoundError:
        raise ApiError(404, _NO_SUCH) from None
    fields = ("phone", "message", "consent", "newsletter_optin", "source_page", "referrer", "utm_source",
              "utm_medium", "utm_campaign", "utm_term", "utm_content", "bounced_at", "language")
    body = {**summary_json(inquiry), **{f: getattr(inquiry, f) for f in fields}}
    body["bounced_at"] = iso(inquiry.bounced_at)
    body["events"] = [event_json(e, by) for e, by in await inquiry_history(session, inquiry_id=inquiry.id)]
    return JSONResponse(body)


@needs("inquiries", "write")
async def change_status(request: Request) -> Response:
    data = await json_body(request)
    status = text_field(data, "status", required=True)
    if status not in INQUIRY_STATUSES:
        raise invalid("status", f"status: expected one of {', '.join(INQUIRY_STATUSES)}.")
    inquiry_id = path_id(request, "inquiry_id")
    session = get_session(request)
    try:
        event = await actions.set_inquiry_status(session, inquiry_id=inquiry_id, status=status,
                                                 actor=actor_of(request))
    except InquiryNotFoundError:
        raise ApiError(404, _NO_SUCH) from None
    except HeldInquiryError:
        raise ApiError(409, "This inquiry is held: release it or delete it in the admin.") from None
    return JSONResponse({"id": inquiry_id, "status": status, "changed": event is not None})


@needs("inquiries", "write")
async def add_note(request: Request) -> Response:
    data = await json_body(request)
    note = text_field(data, "note", required=True)
    try:
        event = await actions.note_inquiry(get_session(request), inquiry_id=path_id(request, "inquiry_id"),
                                           note=note, actor=actor_of(request))
    except InquiryNotFoundError:
        raise ApiError(404, _NO_SUCH) from None
    except NoteError as exc:
        raise invalid("note", str(exc)) from None
    return JSONResponse(event_json(event, actor_of(request).name), status_code=201)


routes = [
    Route("/inquiries", list_, methods=["GET"]),
    Route("/inquiries/{inquiry_id:int}", read, methods=["GET"]),
    Route("/inquiries/{inquiry_id:int}/status", change_status, methods=["POST"]),
    Route("/inquiries/{inquiry_id:int}/notes", add_note, methods=["POST"]),
]
