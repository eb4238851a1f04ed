"""Inquiry pages: the filtered, searchable list; the detail page (audit-logged: health data)
with status changes and notes; Release and Delete of a held inquiry; erasure on the person's
request (after typing ERASE or the address); the CSV export of the current filter (streamed,
audit-logged)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from service.admin.audit import Actor, filter_detail, record_audit
from service.admin.filters import FilterError, format_cursor, parse_cursor, parse_day, text_param
from service.admin.guard import admin_error, get_or_404, no_such, page, staff_of
from service.admin.paging import list_total, paginate
from service.csvfile import stream_csv
from service.db import get_session
from service.forms import tokens_of
from service.inquiries import actions
from service.inquiries.held import NotHeldError, delete_held_inquiry, release_held_inquiry
from service.inquiries.models import HELD, INQUIRY_STATUSES, Inquiry
from service.inquiries.queries import (
    HeldInquiryError,
    InquiryFilter,
    InquiryNotFoundError,
    NoteError,
    UnknownStatusError,
    count_inquiries,
    inquiry_history,
    iter_inquiries,
    list_inquiries,
)
from service.validation import safe_http_url
from service.web import settings_of

FILTER_STATUSES = (*INQUIRY_STATUSES, HELD)  # "any" means every status but held


def inquiry_filter(params: Mapping[str, str]) -> InquiryFilter:
    """The list's filter from query parameters (the admin page's and the API's); FilterError
    names the field."""
    status = params.get("status", "")
    if status and status not in FILTER_STATUSES:
        raise FilterError(f"Status: expected one of {', '.join(FILTER_STATUSES)}.", field="status")
    topic = text_param(params, "topic", "Topic", 40)
    q = text_param(params, "q", "Search", 200)
    since = parse_day(params.get("from"), "From", field="from")
    until = parse_day(params.get("to"), "To", field="to")
    if since and until and since > until:
        raise FilterError("To: the end date is before the start date.", field="to")
    return InquiryFilter(status=status, topic=topic, since=since, until=until, q=q)


def _filter(request: Request) -> InquiryFilter:
    return inquiry_filter(request.query_params)


async def inquiry_list(request: Request) -> Response:
    ctx: dict[str, Any] = {"statuses": FILTER_STATUSES, "topics": settings_of(request).topics,
                           "params": request.query_params, "rows": [], "error": None,
                           "deleted": request.query_params.get("deleted") == "1"}
    try:
        flt = _filter(request)
        after = parse_cursor(request.query_params.get("after"))
    except FilterError as exc:
        return page(request, "admin/inquiries.html", {**ctx, "error": str(exc), "flt": InquiryFilter()}, 400)
    paging = await paginate(
        request, lambda limit: list_inquiries(get_session(request), flt=flt, after=after, limit=limit),
        cursor=lambda i: format_cursor(i.created_at, i.id), cursor_param="after")
    total, more = await list_total(paging, lambda: count_inquiries(get_session(request), flt=flt))
    if flt.q:
        await _audit_search(request, flt, first_page=after is None, matched=(total, more))
    export_url = "/admin/inquiries/export.csv" + ("?" + urlencode(flt.query_args()) if flt.query_args() else "")
    return page(request, "admin/inquiries.html", {**ctx, "rows": paging.rows, "flt": flt, "paging": paging,
                                                  "export_url": export_url, "total": total, "more": more})


async def _audit_search(request: Request, flt: InquiryFilter, *, first_page: bool,
                        matched: tuple[int, bool]) -> None:
    """A search shows inquiry data outside the detail page: record that one ran and how many
    inquiries matched, never the words (they may be a client's name)."""
    await actions.record_inquiry_search(get_session(request), actor=Actor.of(request), flt=flt,
                                        first_page=first_page, matched=matched)


def clickable(url: str) -> bool:
    """Only plain web addresses become links (never javascript:, data: and the like)."""
    return safe_http_url(url) is not None


def mailto_link(email: str, subject: str) -> str:
    return f"mailto:{quote(email, safe='@')}?subject={quote(subject, safe='')}"


async def _load(request: Request) -> Inquiry:
    return await get_or_404(get_session(request), Inquiry, request.path_params["inquiry_id"], what="inquiry")


async def inquiry_detail(request: Request) -> Response:
    session = get_session(request)
    try:
        inquiry = await actions.view_inquiry(session, inquiry_id=request.path_params["inquiry_id"],
                                             actor=Actor.of(request))
    except InquiryNotFoundError:
        raise no_such("inquiry") from None
    org = settings_of(request).org_name
    return page(request, "admin/inquiry.html", {
        "inquiry": inquiry, "events": await inquiry_history(session, inquiry_id=inquiry.id),
        "statuses": INQUIRY_STATUSES, "clickable": clickable,
        "mailto": mailto_link(inquiry.email, f"Re: your inquiry to {org}"),
        "error": request.query_params.get("error"), "saved": request.query_params.get("saved"),
    })


async def inquiry_status(request: Request) -> Response:
    inquiry_id = request.path_params["inquiry_id"]
    async with request.form() as form:
        status = str(form.get("status") or "")
    if status not in INQUIRY_STATUSES:
        return admin_error(request, 422, f"Status: expected one of {', '.join(INQUIRY_STATUSES)}.")
    try:
        await actions.set_inquiry_status(get_session(request), inquiry_id=inquiry_id, status=status,
                                         actor=Actor.of(request))
    except InquiryNotFoundError:
        raise no_such("inquiry") from None
    except UnknownStatusError:
        return admin_error(request, 422, f"Status: expected one of {', '.join(INQUIRY_STATUSES)}.")
    except HeldInquiryError:
        return admin_error(request, 409, "This inquiry is held: release it (its emails go out then) or delete it.")
    return RedirectResponse(f"/admin/inquiries/{inquiry_id}?saved=status", status_code=303)


async def inquiry_note(request: Request) -> Response:
    inquiry_id = request.path_params["inquiry_id"]
    async with request.form() as form:
        note = str(form.get("note") or "")
    try:
        await actions.note_inquiry(get_session(request), inquiry_id=inquiry_id, note=note, actor=Actor.of(request))
    except InquiryNotFoundError:
        raise no_such("inquiry") from None
    except NoteError as exc:
        return admin_error(request, 422, str(exc))
    return RedirectResponse(f"/admin/inquiries/{inquiry_id}?saved=note", status_code=303)


ERASE_WORD = "ERASE"


def erase_confirmed(typed: str, email: str) -> bool:
    """The typed confirmation: the word ERASE, or the inquiry's address (any case)."""
    typed = typed.strip()
    return typed == ERASE_WORD or (bool(typed) and typed.lower() == email.strip().lower())


async def inquiry_erase(request: Request) -> Response:
    """GET: what erasing removes, and the confirmation field; POST: erase when it was typed."""
    inquiry = await _load(request)
    ctx = {"inquiry": inquiry, "erase_word": ERASE_WORD, "error": None}
    if request.method == "GET":
        return page(request, "admin/inquiry_erase.html", ctx)
    async with request.form() as form:
        typed = str(form.get("confirm") or "")
    if not erase_confirmed(typed, inquiry.email):
        error = f"Confirm: type {ERASE_WORD} or the inquiry's email address exactly. Nothing was erased."
        return page(request, "admin/inquiry_erase.html", {**ctx, "error": error}, 422)
    from service.privacy.erase import erase_inquiry

    await erase_inquiry(get_session(request), tokens=tokens_of(request), inquiry_id=inquiry.id, request=request)
    return RedirectResponse("/admin/inquiries?notice=erased", status_code=303)
async def inquiry_release(request: Request) -> Response:
    """A held inquiry is genuine: it becomes a new inquiry and its emails go out now."""
    inquiry_id = request.path_params["inquiry_id"]
    try:
        await release_held_inquiry(get_session(request), settings=settings_of(request), inquiry_id=inquiry_id,
                                   actor=staff_of(request), request=request)
    except InquiryNotFoundError:
        raise no_such("inquiry") from None
    except NotHeldError:
        return admin_error(request, 409, "This inquiry is not held: only a held inquiry can be released.")
    return RedirectResponse(f"/admin/inquiries/{inquiry_id}?saved=released", status_code=303)


async def inquiry_delete_held(request: Request) -> Response:
    """A held inquiry is automated: it is deleted (nothing was ever mailed for it)."""
    try:
        await delete_held_inquiry(get_session(request), inquiry_id=request.path_params["inquiry_id"],
                                  actor=staff_of(request), request=request)
    except InquiryNotFoundError:
        raise no_such("inquiry") from None
    except NotHeldError:
        return admin_error(request, 409, "This inquiry is not held: only a held inquiry can be deleted here.")
    return RedirectResponse("/admin/inquiries?status=held&deleted=1", status_code=303)


CSV_COLUMNS = ("id", "created_at", "status", "name", "email", "phone", "topic", "contact_method", "message",
               "consent", "newsletter_optin", "source_page", "referrer", "utm_source", "utm_medium",
               "utm_campaign", "utm_term", "utm_content")


async def inquiry_export(request: Request) -> Response:
    try:
        flt = _filter(request)
    except FilterError as exc:
        return admin_error(request, 400, str(exc))
    await record_audit(get_session(request), request=request, action="inquiry_export", target_type="inquiry",
                       detail=filter_detail(flt.query_args()))
    sessions = request.app.state.sessions

    async def rows() -> AsyncIterator[list[Any]]:
        yield list(CSV_COLUMNS)
        async for inquiry in iter_inquiries(sessions, flt=flt):
            yield [getattr(inquiry, column) for column in CSV_COLUMNS]

    return StreamingResponse(stream_csv(rows()), media_type="text/csv; charset=utf-8", headers={
        "content-disposition": 'attachment; filename="inquiries.csv"', "cache-control": "no-store"})


routes: list[BaseRoute] = [
    Route("/inquiries", inquiry_list, name="admin_inquiries"),
    Route("/inquiries/export.csv", inquiry_export, name="admin_inquiries_export"),
    Route("/inquiries/{inquiry_id:int}", inquiry_detail, name="admin_inquiry"),
    Route("/inquiries/{inquiry_id:int}/status", inquiry_status, methods=["POST"], name="admin_inquiry_status"),
    Route("/inquiries/{inquiry_id:int}/notes", inquiry_note, methods=["POST"], name="admin_inquiry_note"),
    Route("/inquiries/{inquiry_id:int}/erase", inquiry_erase, methods=["GET", "POST"], name="admin_inquiry_erase"),
    Route("/inquiries/{inquiry_id:int}/release", inquiry_release, methods=["POST"], name="admin_inquiry_release"),
    Route("/inquiries/{inquiry_id:int}/delete-held", inquiry_delete_held, methods=["POST"],
          name="admin_inquiry_delete_held"),
]
